"""A device whose state holds every type a snapshot can carry: configuration commits and a
rollback, RSA general and usage key pairs, ECDSA and Ed25519 pairs, an imported public key, an
enrolled trustpoint (CA certificate, router certificate) and one with an enrollment in flight.
Cut-and-paste enrollment keeps it offline: a CA made here signs the printed requests."""

from __future__ import annotations

import base64
import functools
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine import Engine
from engine.keys import PrivateKey
from engine.keystore import KeyPool
from engine.ports import FakeClock
from engine.scep_client import HttpReply, TransportError
from engine.state import DeviceState
from events.rollover import ShadowCAFetchFailed
from events.store import PendingEvent
from tests.support.crl_support import DAY_US, CrlSpec, FakeCrlFetcher, Issuer, make_crl

SHOWS = ("show running-config", "show configuration commit list",
         "show crypto ca certificates", "show crypto ca trustpoint",
         "show crypto key mypubkey rsa", "show crypto key mypubkey ecdsa",
         "show crypto key mypubkey ed25519", "show crypto key authentication rsa",
         "show logging", "show crypto ca crls")
PW = "snapshot-challenge-77"


@functools.cache
def _keys() -> tuple[PrivateKey, ...]:
    return (*(rsa.generate_private_key(65537, 1024) for _ in range(5)),
            ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate())


@functools.cache
def _ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(65537, 1024)
    now = datetime.fromtimestamp(FakeClock().us / 1e6, UTC)
    name = x509.Name.from_rfc4514_string("CN=snapshot test CA,O=Example")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x5A)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=900))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def pem_lines(der: bytes, kind: str = "CERTIFICATE") -> list[str]:
    body = textwrap.wrap(base64.b64encode(der).decode(), 64)
    return [f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----", ""]


def _printed_request(output: str) -> x509.CertificateSigningRequest:
    lines = output.splitlines()
    start = lines.index("-----BEGIN CERTIFICATE REQUEST-----")
    end = lines.index("-----END CERTIFICATE REQUEST-----")
    return x509.load_der_x509_csr(base64.b64decode("".join(lines[start + 1:end])))


def _sign(csr: x509.CertificateSigningRequest, clock: FakeClock) -> bytes:
    key, ca = _ca()
    now = datetime.fromtimestamp(clock.us / 1e6, UTC)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
            .public_key(csr.public_key()).serial_number(0x77)
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def open_device(root: Path, clock: FakeClock, **kw: object) -> Engine:
    e = Engine.open(root, clock=clock, user="tester", **kw)  # type: ignore[arg-type]
    e.ports.keygen = KeyPool(_keys())
    return e


def ok(e: Engine, line: str, *answers: str) -> str:
    r = e.execute(line, answers=list(answers))
    assert r.ok, (line, r.output)
    return r.output


def build_rich(e: Engine, clock: FakeClock) -> None:
    """Drive `e` through every feature whose state a snapshot carries."""
    for line in ("configure", "hostname r1", "domain name example.com", "commit",
                 "hostname r2", "commit", "end"):
        ok(e, line, "yes")
    ok(e, "rollback configuration last 1")
    ok(e, "crypto key generate rsa mykey", "1024")
    ok(e, "crypto key generate rsa usage-keys vpn", "1024", "1024")
    ok(e, "crypto key generate ecdsa nistp256 ec1")
    ok(e, "crypto key generate ed25519 ed1")
    peer = rsa.generate_private_key(65537, 1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ok(e, "crypto key import authentication rsa general-keys peer",
       *peer.decode().splitlines(), "")
    for tp in ("myca", "other"):
        for line in ("configure", f"crypto ca trustpoint {tp}", "enrollment terminal",
                     "rsakeypair mykey", "subject-name CN=r2.example.com,O=Example",
                     "enrollment retry count 7", "commit", "end"):
            ok(e, line)
        clock.advance(60)
        ok(e, f"crypto ca authenticate {tp}", *pem_lines(_ca()[1].public_bytes(
            serialization.Encoding.DER)), "yes")
    clock.advance(60)
    csr = _printed_request(ok(e, "crypto ca enroll myca", PW, PW))
    clock.advance(60)
    ok(e, "crypto ca import myca certificate", *pem_lines(_sign(csr, clock)))
    ok(e, "crypto ca enroll other", PW, PW)  # left in flight: an Enrollment in the state
    # auto-enroll: a renewal attempt (it fails: the CA cannot be reached) leaves a
    # RenewalState, retrying, in the state
    for line in ("configure", "crypto ca trustpoint myca", "enrollment url http://ca.invalid",
                 "auto-enroll 5", "commit", "end"):
        ok(e, line)
    e.ports.scep = _Unreachable()
    clock.advance(5 * 86_400)
    assert [[r.type for r in job.events] for job in e.run_due()] == [
        ["RenewalRequested", "RenewalFailed"]]
    # CA rollover: a failed GetNextCACert leaves a RolloverState (appended as the shadow job
    # records it: this offline device reaches no CA)
    e.fold(e.store.append([PendingEvent(ShadowCAFetchFailed(
        "myca", "Unable to reach the CA", clock.us + 86_400_000_000), "device", clock.us,
        "scheduler")]))
    assert e.data_dir is not None
    bundle = e.data_dir.parent / "pool.pem"  # a downloaded trustpool: PoolCert, UpdateRecord
    bundle.write_bytes(_ca()[1].public_bytes(serialization.Encoding.PEM))
    ok(e, f"crypto ca trustpool import url file://{bundle}")
    crl = make_crl(Issuer(*_ca()), CrlSpec(revoked=[(0x99, "key_compromise")],
                                           this_update=clock.us, next_update=clock.us + DAY_US))
    e.ports.crls = FakeCrlFetcher({"http://crl.example.com/ca.crl": crl})  # CrlCache, CachedCrl
    ok(e, "crypto ca crl request http://crl.example.com/ca.crl")


class _Unreachable:
    """A SCEP transport whose CA never answers."""

    def get(self, url: str, params: object) -> HttpReply:
        raise TransportError("Connection refused")

    def post(self, url: str, params: object, body: bytes) -> HttpReply:
        raise TransportError("Connection refused")


def shows(state: DeviceState) -> dict[str, str]:
    frozen = Engine.frozen(state, FakeClock().us + 3_600_000_000)
    return {line: frozen.execute(line).output for line in SHOWS}
