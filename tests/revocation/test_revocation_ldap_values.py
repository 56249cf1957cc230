"""An LDAP distribution point whose entry holds several CRL values (a CA that publishes its
new CRL beside the old one): the device takes the newest complete CRL that verifies against
the issuer, whatever order the directory returns them in, so neither a stale value nor a
bogus one numbered past the genuine CRL hides it. Against a real slapd
(../shared/peers/ldap-server.sh) and its openssl test CA (the device runs on the system
clock, as the peer CA is made now), and through `fetch_crl` with a fake port."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ldap3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine import Engine
from engine.ports import FakeClock
from engine.revocation.fetch import fetch_crl
from engine.revocation.ldap import CrlValues, ranked
from events.revocation import CrlFetched, CrlFetchFailed
from tests.revocation.revocation_support import configure, device, ok, record
from tests.support.crl_support import (
    DAY_US,
    CrlSpec,
    FakeCrlFetcher,
    key,
    make_ca,
    make_crl,
    make_leaf,
)
from tests.support.slapd_support import ADMIN_DN, ADMIN_PASSWORD, CRL_ATTRIBUTE, running_slapd
from tests.trustpoint.tp_support import pem_lines

ENTRY = "cn=Root CA,dc=example,dc=com"


def _newer_crl(ca_dir: Path, revoked: x509.Certificate, signer: object = None) -> bytes:
    """A CRL in the name of the peer's test CA numbered past its own (4096) that also revokes
    `revoked`, signed by the CA's key (or by `signer`: a bogus one)."""
    key = signer or serialization.load_pem_private_key((ca_dir / "root-ca.key").read_bytes(),
                                                        None)
    ca = x509.load_pem_x509_certificate((ca_dir / "root-ca.pem").read_bytes())
    now = dt.datetime.now(dt.UTC)
    entry = (x509.RevokedCertificateBuilder().serial_number(revoked.serial_number)
             .revocation_date(now - dt.timedelta(minutes=10))
             .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), False).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
           .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=30))
           .add_extension(x509.CRLNumber(5000), False).add_revoked_certificate(entry)
           .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
    return crl.public_bytes(serialization.Encoding.DER)


@pytest.mark.integration
def test_of_two_values_the_newer_crl_is_taken_though_the_directory_lists_it_second(
        tmp_path: Path) -> None:
    with running_slapd(tmp_path / "ldap") as slapd:
        ca_dir = tmp_path / "ldap" / "slapd" / "ca"
        good = x509.load_pem_x509_certificate((ca_dir / "good.pem").read_bytes())
        old = (ca_dir / "root-ca.crl").read_bytes()
        new = _newer_crl(ca_dir, good)
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE),
                                ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
        assert conn.modify(ENTRY, {CRL_ATTRIBUTE: [(ldap3.MODIFY_REPLACE, [old, new])]})
        conn.unbind()
        assert [bytes(v) for v in (slapd.read(ENTRY) or {})[CRL_ATTRIBUTE]] == [old, new]

        device = Engine.in_memory()
        configure(device, "crypto ca trustpoint peer", "enrollment terminal")
        ca_der = (ca_dir / "root-ca.der").read_bytes()
        ok(device, "crypto ca authenticate peer", *pem_lines(ca_der), "yes")
        out = ok(device, f"crypto ca crl request {slapd.url(ENTRY)}")
        assert "number 5000, 1 entry" in out, out
        verdict = device.validate_peer([(ca_dir / "good.pem").read_bytes()], "any",
                                       device.ports.clock.now_us())
        assert not verdict.ok and verdict.reasons == ("REVOKED",), verdict.detail


def test_the_choice_among_values_prefers_a_complete_crl_then_the_higher_number() -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Values CA")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def crl(number: int, days: int, delta: bool = False) -> bytes:
        b = (x509.CertificateRevocationListBuilder().issuer_name(name)
             .last_update(t0 + dt.timedelta(days=days))
             .next_update(t0 + dt.timedelta(days=days + 7))
             .add_extension(x509.CRLNumber(number), False))
        if delta:
            b = b.add_extension(x509.DeltaCRLIndicator(number - 1), True)
        return b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    old, new, delta = crl(7, 0), crl(8, 1), crl(9, 2, delta=True)
    assert ranked([old, new]) == (new, old) and ranked([new, old]) == (new, old)
    assert ranked([delta, old]) == (old, delta)  # a delta never hides a complete CRL
    assert ranked([b"junk", old]) == (old, b"junk")
    assert ranked([b"junk", b"more"]) == (b"junk", b"more")  # equals: the directory's order



@pytest.mark.integration
def test_a_bogus_value_numbered_past_the_genuine_crl_does_not_hide_it(tmp_path: Path) -> None:
    with running_slapd(tmp_path / "ldap") as slapd:
        ca_dir = tmp_path / "ldap" / "slapd" / "ca"
        good = x509.load_pem_x509_certificate((ca_dir / "good.pem").read_bytes())
        genuine = (ca_dir / "root-ca.crl").read_bytes()
        bogus = _newer_crl(ca_dir, good, signer=ec.generate_private_key(ec.SECP256R1()))
        conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE),
                                ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
        assert conn.modify(ENTRY, {CRL_ATTRIBUTE: [(ldap3.MODIFY_REPLACE, [bogus, genuine])]})
        conn.unbind()

        device = Engine.in_memory()
        configure(device, "crypto ca trustpoint peer", "enrollment terminal")
        ok(device, "crypto ca authenticate peer", *pem_lines((ca_dir / "root-ca.der").read_bytes()),
           "yes")
        out = ok(device, f"crypto ca crl request {slapd.url(ENTRY)}")
        assert "number 4096" in out, out  # the genuine CRL, not "signature does not verify"


CA = make_ca(now=FakeClock().us)
LDAP = "ldap://127.0.0.1:3899/cn=Root%20CA,dc=example,dc=com?certificateRevocationList;binary"


def _spec(clock: FakeClock, number: int, **kw: object) -> CrlSpec:
    return CrlSpec(this_update=clock.us - 60_000_000, next_update=clock.us + DAY_US,
                   number=number, **kw)  # type: ignore[arg-type]


def test_validation_takes_the_newest_value_that_verifies() -> None:
    clock = FakeClock()
    bogus = make_crl(CA, _spec(clock, 9999, signer=key(5)))  # in CA's name, another key
    genuine = make_crl(CA, _spec(clock, 7, revoked=[(0x42, "key_compromise")]))
    values = CrlValues(ranked([genuine, bogus]))
    assert values.values == (bogus, genuine)  # the bogus one ranks first
    e = device(clock, FakeCrlFetcher({LDAP: values}))
    (ev,) = record(e, fetch_crl(e.state, make_leaf(CA, 0x42, [LDAP], clock.us), CA.cert,
                                clock.us))
    assert isinstance(ev, CrlFetched) and ev.number == "7" and ev.count == 1
    assert ev.attempts == ()


def test_when_no_value_verifies_the_newest_ones_refusal_is_the_cause() -> None:
    clock = FakeClock()
    values = CrlValues(ranked([make_crl(CA, _spec(clock, 9999, signer=key(5))),
                               make_crl(CA, _spec(clock, 7, signer=key(6)))]))
    e = device(clock, FakeCrlFetcher({LDAP: values}))
    (ev,) = record(e, fetch_crl(e.state, make_leaf(CA, 0x42, [LDAP], clock.us), CA.cert,
                                clock.us))
    assert isinstance(ev, CrlFetchFailed)
    assert ev.attempts == ((LDAP, "none of the entry's 2 CRL values is usable; the newest: "
                                  "the CRL's signature does not verify with the issuer's key"),)
