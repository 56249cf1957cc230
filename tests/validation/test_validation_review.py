"""Findings of the third critical review on peer validation: the CRL fetch back-off is kept
per source URI the device chose to ask (never per issuer name, never from an unverified
answer), and a verdict says when a source was not asked again."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from engine.ports import FakeClock
from engine.validation.decide import decide_validation
from tests.support.crl_support import FakeCrlFetcher
from tests.validation.validation_support import (
    AT_US,
    DAY_US,
    INTER_CDP,
    LEAF_CDP,
    Pki,
    Spec,
    der,
    good_crl,
    pem,
)

DOWN_CDP = "http://127.0.0.1/crl/down.crl"
FORGED = "http://127.0.0.1/crl/forged.crl"
FORGED_LEAF = "http://127.0.0.1/crl/forged-leaf.crl"
BARE_CDP = "http://127.0.0.1/crl/no-next-update.crl"


def _device(tmp_path: Path, pki: Pki, fetcher: FakeCrlFetcher) -> Engine:
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    dev = Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None)
    dev.ports.crls = fetcher
    assert dev.execute(f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}").ok
    return dev


def _setup(tmp_path: Path) -> tuple[Pki, FakeCrlFetcher, Engine]:
    pki = Pki.make("Backoff", kind="rsa2048", cdp=[INTER_CDP])
    fetcher = FakeCrlFetcher({
        LEAF_CDP: good_crl(pki.inter, pki.inter_key),
        INTER_CDP: good_crl(pki.root, pki.root_key),
        DOWN_CDP: "the server answered HTTP 404",
        FORGED: good_crl(pki.root, pki.inter_key)})  # the root's name, another key
    return pki, fetcher, _device(tmp_path, pki, fetcher)


def _leaf(pki: Pki, cdp: str, serial: int) -> bytes:
    return der(pki.leaf(Spec("peer.example", dns=["peer.example"], cdp=[cdp], serial=serial)))


def test_a_failed_cdp_does_not_hold_back_another_cdp_of_the_same_issuer(
        tmp_path: Path) -> None:
    pki, fetcher, dev = _setup(tmp_path)
    with dev:
        down = dev.validate_peer([_leaf(pki, DOWN_CDP, 11), der(pki.inter)], "ike", AT_US)
        assert not down.ok and "CRL_UNAVAILABLE" in down.reasons
        up = dev.validate_peer([_leaf(pki, LEAF_CDP, 12), der(pki.inter)], "ike", AT_US)
        assert up.ok, up.detail
        assert LEAF_CDP in [uri for uri, _ in fetcher.asked]


def test_a_forged_crl_by_request_does_not_hold_back_its_claimed_issuer(tmp_path: Path) -> None:
    pki, _, dev = _setup(tmp_path)
    with dev:
        r = dev.execute(f"crypto ca crl request {FORGED}")
        assert not r.ok and "does not verify" in r.output
        v = dev.validate_peer([_leaf(pki, LEAF_CDP, 13), der(pki.inter)], "ike", AT_US)
        assert v.ok, v.detail
        logged = dev.execute("show logging").output
    assert f"%PKI-3-CRL_FETCH_FAIL: CRL fetch failed: {FORGED}: " in logged
    assert "CN=Backoff Root" not in logged.split("CRL_FETCH_FAIL")[1].splitlines()[0]


def test_a_source_not_asked_again_is_named_in_the_detail(tmp_path: Path) -> None:
    pki, fetcher, dev = _setup(tmp_path)
    chain = [_leaf(pki, DOWN_CDP, 14), der(pki.inter)]
    with dev:
        first = dev.validate_peer(chain, "ike", AT_US)
        asked = len(fetcher.asked)
        again = dev.validate_peer(chain, "ike", AT_US)
        assert len(fetcher.asked) == asked  # within the minute: not asked again
        assert again.detail == first.detail
        assert f"(the last fetch from {DOWN_CDP} failed at " in again.detail
        # and why, in the attempt's own words (before: only where and when)
        assert " UTC: the server answered HTTP 404; validations ask it again" in again.detail


def test_the_detail_says_why_the_crl_that_came_was_not_used(tmp_path: Path) -> None:
    """A distribution point that answers a CRL signed by another key: the verdict says so
    (the operator running `trustledger validate` sees the cause), and the same words come
    back when the verdict is decided again from the log alone."""
    pki, fetcher, dev = _setup(tmp_path)
    chain = [_leaf(pki, FORGED_LEAF, 16), der(pki.inter)]
    fetcher.answers[FORGED_LEAF] = good_crl(pki.inter, pki.root_key)  # its name, another key
    with dev:
        v = dev.validate_peer(chain, "ike", AT_US)
        assert not v.ok and v.reasons == ("CRL_UNAVAILABLE",)
        assert (f"the last fetch from {FORGED_LEAF} failed at " in v.detail
                and " UTC: the CRL's signature does not verify with the issuer's key; "
                in v.detail), v.detail
        assert decide_validation(dev.state, dev.crl_blobs, chain, "ike", AT_US) == v


def test_a_crl_without_next_update_is_stale_and_fetched_once_a_minute(tmp_path: Path) -> None:
    """RFC 5280 §5.1.2.5: conforming issuers MUST include nextUpdate. A CDP serving a CRL
    without one: CRL_STALE, named as such, and not fetched again by the next validation
    within the minute (every validation fetched it: it was taken as current at the fetch)."""
    from tests.support.crl_support import Issuer, without_next_update

    pki, fetcher, dev = _setup(tmp_path)
    fetcher.answers[BARE_CDP] = without_next_update(good_crl(pki.inter, pki.inter_key),
                                                    Issuer(pki.inter_key, pki.inter))  # type: ignore[arg-type]
    chain = [_leaf(pki, BARE_CDP, 17), der(pki.inter)]
    with dev:
        first = dev.validate_peer(chain, "ike", AT_US)
        asked = [uri for uri, _ in fetcher.asked].count(BARE_CDP)
        again = dev.validate_peer(chain, "ike", AT_US)
    assert first.reasons == again.reasons == ("CRL_STALE",)
    assert first.detail.startswith("only a CRL without a nextUpdate (never current: RFC 5280 "
                                   "5.1.2.5) covers certificate serial 11 "), first.detail
    assert "UTC: the CRL has no next update (RFC 5280 5.1.2.5); " in first.detail
    assert asked == 1 and [uri for uri, _ in fetcher.asked].count(BARE_CDP) == 1


def test_an_issuer_name_encoded_differently_is_not_called_a_bad_signature(
        tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    def name(kind: _ASN1Type) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Review", kind),
                          x509.NameAttribute(NameOID.COMMON_NAME, "Review CA2", kind)])

    when = dt.datetime.fromtimestamp(AT_US / 1_000_000, dt.UTC)
    k, lk = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(_ASN1Type.PrintableString))
          .issuer_name(name(_ASN1Type.PrintableString)).public_key(k.public_key())
          .serial_number(7).not_valid_before(when - dt.timedelta(days=1))
          .not_valid_after(when + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(k, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer5")]))
            .issuer_name(name(_ASN1Type.UTF8String)).public_key(lk.public_key())
            .serial_number(2001).not_valid_before(when - dt.timedelta(days=1))
            .not_valid_after(when + dt.timedelta(days=300))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(k, hashes.SHA256()))
    (tmp_path / "pool.pem").write_bytes(pem([ca]))
    with Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None) as dev:
        assert dev.execute(f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}").ok
        v = dev.validate_peer([der(leaf), der(ca)], "any", AT_US)
    assert not v.ok and "BAD_SIGNATURE" not in v.reasons and "INVALID_PATH" in v.reasons
    assert "RFC 5280 7.1" in v.detail and "the signature verifies" in v.detail


def test_a_ca_certificate_is_not_accepted_as_the_peers_own(tmp_path: Path) -> None:
    pki, _, dev = _setup(tmp_path)
    leaf = _leaf(pki, LEAF_CDP, 15)
    with dev:
        for purpose in ("ike", "tls-server", "tls-client", "any"):
            for chain in ([der(pki.root)], [der(pki.inter)], [der(pki.inter), leaf]):
                v = dev.validate_peer(chain, purpose, AT_US)
                assert not v.ok and "BAD_BASIC_CONSTRAINTS" in v.reasons, (purpose, v)
                assert "is a CA certificate" in v.detail
        named = dev.validate_peer([der(pki.root)], "ike", AT_US, "CN=Backoff Root")
        assert not named.ok
        assert dev.validate_peer([leaf, der(pki.inter)], "ike", AT_US).ok


def test_a_moment_outside_the_pool_anchors_validity_is_not_unknown_ca(tmp_path: Path) -> None:
    import datetime as dt

    pki, _, dev = _setup(tmp_path)
    chain = [_leaf(pki, LEAF_CDP, 16), der(pki.inter)]
    early = AT_US - 3 * 365 * 86_400_000_000
    late = int(dt.datetime(9999, 12, 31, tzinfo=dt.UTC).timestamp()) * 1_000_000
    with dev:
        before = dev.validate_peer(chain, "ike", early)
        after = dev.validate_peer(chain, "ike", late)
    assert before.reasons == ("NOT_YET_VALID",) and "trust anchor" in before.detail
    assert after.reasons == ("EXPIRED",) and "trust anchor" in after.detail
    assert before.anchor is not None and before.anchor.source == "trustpool"


def test_a_refused_path_lists_no_crl_reason_for_a_fetch_never_tried(tmp_path: Path) -> None:
    pki, fetcher, dev = _setup(tmp_path)
    with dev:
        v = dev.validate_peer([_leaf(pki, DOWN_CDP, 17), der(pki.inter)], "ike", AT_US,
                              "other.example")
    assert v.reasons == ("NAME_MISMATCH",) and not fetcher.asked


def test_a_remove_from_crl_entry_in_a_complete_crl_is_not_a_revocation(
        tmp_path: Path) -> None:
    pki = Pki.make("Remove", kind="rsa2048", cdp=[INTER_CDP])
    fetcher = FakeCrlFetcher({
        LEAF_CDP: good_crl(pki.inter, pki.inter_key, revoked=[(18, "remove_from_crl"),
                                                               (19, "key_compromise")]),
        INTER_CDP: good_crl(pki.root, pki.root_key)})
    with _device(tmp_path, pki, fetcher) as dev:
        removed = dev.validate_peer([_leaf(pki, LEAF_CDP, 18), der(pki.inter)], "ike", AT_US)
        revoked = dev.validate_peer([_leaf(pki, LEAF_CDP, 19), der(pki.inter)], "ike", AT_US)
    assert removed.ok, removed.detail
    assert not revoked.ok and revoked.reasons == ("REVOKED",)


def test_the_report_names_the_pool_once_and_labels_unstructured_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from engine.cli import main

    pki = Pki.make("Label")  # no CRL distribution points: the CLI asks no network
    _device(tmp_path, pki, FakeCrlFetcher({})).close()
    subject = x509.Name([x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "r1.example.com")])
    router = (x509.CertificateBuilder().subject_name(subject).issuer_name(pki.inter.subject)
              .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
              .serial_number(20).not_valid_before(pki.inter.not_valid_before_utc)
              .not_valid_after(pki.inter.not_valid_after_utc)
              .sign(pki.inter_key, hashes.SHA256()))  # type: ignore[arg-type]
    (tmp_path / "chain.pem").write_bytes(pem([router, pki.inter]))
    main(["validate", "--data", str(tmp_path / "dev"), str(tmp_path / "chain.pem"),
          "--at", "2026-01-31T00:00:00Z"])
    out = capsys.readouterr().out
    assert "  Anchor        : trustpool\n" in out
    assert "unstructuredName=r1.example.com" in out and "1.2.840.113549.1.9.2" not in out


STALE_CDP = "http://127.0.0.1/crl/stale.crl"


def _optional(dev: Engine) -> None:
    for line in ("configure", "crypto ca trustpool policy", "crl optional", "commit", "end"):
        assert dev.execute(line).ok, line


def test_a_stale_crl_is_named_by_its_next_update(tmp_path: Path) -> None:
    pki, fetcher, dev = _setup(tmp_path)
    fetcher.answers[STALE_CDP] = good_crl(pki.inter, pki.inter_key, this_update=AT_US - 9 * DAY_US,
                                          next_update=AT_US - 2 * DAY_US)
    with dev:
        v = dev.validate_peer([_leaf(pki, STALE_CDP, 18), der(pki.inter)], "ike", AT_US)
    assert v.reasons == ("CRL_STALE",)
    assert v.detail.startswith("only a CRL past its nextUpdate (2026-01-29 00:00:00 UTC) covers "
                               "certificate serial 12 (the last fetch from "), v.detail


def test_a_bypass_says_why_the_last_fetch_failed(tmp_path: Path) -> None:
    """Under `crl optional` the verdict's detail says what CRL_UNAVAILABLE would: that none
    could be had, and the last fetch's failure in its own words."""
    pki, _, dev = _setup(tmp_path)
    with dev:
        _optional(dev)
        v = dev.validate_peer([_leaf(pki, DOWN_CDP, 19), der(pki.inter)], "ike", AT_US)
    assert v.ok and v.reasons == ("CRL_BYPASSED",)
    assert v.detail.startswith("no current CRL for certificate serial 13, none could be had "
                               f"(the last fetch from {DOWN_CDP} failed at "), v.detail
    assert " UTC: the server answered HTTP 404; validations ask it again" in v.detail
    assert v.detail.endswith("): accepted, `crl optional` (trustpool)")


def test_a_bypass_over_a_stale_crl_names_its_next_update(tmp_path: Path) -> None:
    pki, fetcher, dev = _setup(tmp_path)
    fetcher.answers[STALE_CDP] = good_crl(pki.inter, pki.inter_key, this_update=AT_US - 9 * DAY_US,
                                          next_update=AT_US - 2 * DAY_US)
    with dev:
        _optional(dev)
        v = dev.validate_peer([_leaf(pki, STALE_CDP, 20), der(pki.inter)], "ike", AT_US)
    assert v.ok and v.reasons == ("CRL_BYPASSED",)
    assert v.detail.startswith("no current CRL for certificate serial 14, only one past its "
                               "nextUpdate (2026-01-29 00:00:00 UTC) (the last fetch from "
                               f"{STALE_CDP} failed at "), v.detail
    assert " UTC: the CRL is past its next update; " in v.detail
