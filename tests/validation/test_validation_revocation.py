"""validate_peer with revocation: each certificate of the path checked against its issuer's
CRL (fetched through the CRL port when missing, then cached), `crl optional` from the
anchoring trustpoint or the pool, on every kind of CRL failure; and the verdict recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.ports import FakeClock
from engine.validation.verdict import Code, Status, Verdict, verdict_of
from events.revocation import CrlFetched, CrlFetchFailed
from events.store import PendingEvent
from events.trustpoint import CACertificateAccepted
from events.validation import PeerValidated
from tests.support.crl_support import FakeCrlFetcher
from tests.validation.validation_support import (
    AT_US,
    INTER_CDP,
    LEAF_CDP,
    Pki,
    Spec,
    der,
    good_crl,
    issue,
    key,
    leaf_of,
    pem,
)

DAY = 86_400_000_000


class Device:
    """A device on a fake clock at AT, its CRL port a table, anchored by pool or trustpoint."""

    def __init__(self, path: Path, pki: Pki, answers: dict[str, bytes | str]) -> None:
        self.engine = Engine.open(path / "dev", clock=FakeClock(AT_US), builtins=None)
        self.fetcher = FakeCrlFetcher(answers)
        self.engine.ports.crls = self.fetcher
        self.path, self.pki = path, pki

    def run(self, *lines: str) -> None:
        for line in lines:
            result = self.engine.execute(line, answers=["yes"])
            assert result.ok, (line, result.output)

    def pool(self, optional: bool = False) -> Device:
        (self.path / "pool.pem").write_bytes(pem([self.pki.root]))
        self.run(f"crypto ca trustpool import url file://{self.path / 'pool.pem'}")
        if optional:
            self.run("configure", "crypto ca trustpool policy", "crl optional", "commit",
                     "end")
        return self

    def trustpoint(self, optional: bool = False) -> Device:
        self.run("configure", "crypto ca trustpoint corp", "enrollment terminal",
                 *(["crl optional"] if optional else []), "commit", "end")
        eng = self.engine
        eng.fold(eng.store.append([PendingEvent(
            CACertificateAccepted("corp", der(self.pki.root), (), (), "terminal"), "device",
            AT_US, "admin", "test")]))
        return self

    def validate(self, leaf: x509.Certificate, purpose: str = "ike",
                 name: str | None = "peer.example") -> Verdict:
        return self.engine.validate_peer([der(leaf), der(self.pki.inter)], purpose, AT_US, name)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make("Rev", kind="rsa2048", cdp=[INTER_CDP])


@pytest.fixture
def device(tmp_path: Path, pki: Pki) -> Iterator[Device]:
    dev = Device(tmp_path, pki, {LEAF_CDP: good_crl(pki.inter, pki.inter_key),
                                 INTER_CDP: good_crl(pki.root, pki.root_key)})
    yield dev
    dev.engine.close()


def _types(dev: Device, since: int) -> list[str]:
    return [r.type for r in dev.engine.store.read(since + 1)]


def test_a_good_chain_fetches_both_crls_once_and_names_them(device: Device, pki: Pki) -> None:
    device.pool()
    before = device.engine.state.seq
    v = device.validate(leaf_of(pki))
    assert v.ok and v.codes == () and v.anchor is not None and v.anchor.source == "trustpool"
    assert [r.status for r in v.revocation] == [Status.GOOD, Status.GOOD, Status.ANCHOR]
    assert all(r.crl_number == 1 and r.crl_this_update == AT_US - DAY and
               len(r.crl_sha256) == 64 for r in v.revocation[:2])
    assert _types(device, before) == ["CrlFetched", "CrlFetched", "PeerValidated"]
    assert [u for u, _ in device.fetcher.asked] == [LEAF_CDP, INTER_CDP]
    # Cached now: the next validation asks nobody and records one event.
    before = device.engine.state.seq
    assert device.validate(leaf_of(pki)).ok
    assert len(device.fetcher.asked) == 2 and _types(device, before) == ["PeerValidated"]


def test_a_revoked_leaf_fails_even_with_crl_optional(tmp_path: Path, pki: Pki) -> None:
    leaf = leaf_of(pki, serial=4242)
    dev = Device(tmp_path, pki, {
        LEAF_CDP: good_crl(pki.inter, pki.inter_key, revoked=[(4242, "key_compromise")]),
        INTER_CDP: good_crl(pki.root, pki.root_key)}).trustpoint(optional=True)
    with dev.engine:
        v = dev.validate(leaf)
    assert not v.ok and v.codes == (Code.REVOKED,)
    first = v.revocation[0]
    assert (first.status, first.revocation_reason) == (Status.REVOKED, "keyCompromise")
    assert first.revoked_at == AT_US - 2 * DAY and "serial 1092" in v.detail


def test_a_revoked_intermediate_fails_the_chain(tmp_path: Path, pki: Pki) -> None:
    dev = Device(tmp_path, pki, {
        LEAF_CDP: good_crl(pki.inter, pki.inter_key),
        INTER_CDP: good_crl(pki.root, pki.root_key,
                            revoked=[(pki.inter.serial_number, "ca_compromise")])}).pool()
    with dev.engine:
        v = dev.validate(leaf_of(pki))
    assert v.codes == (Code.REVOKED,)
    assert [r.status for r in v.revocation] == [Status.GOOD, Status.REVOKED, Status.ANCHOR]


def test_an_entry_revoked_after_the_moment_validated_does_not_count(tmp_path: Path,
                                                                     pki: Pki) -> None:
    leaf = leaf_of(pki, serial=77)
    dev = Device(tmp_path, pki, {
        LEAF_CDP: good_crl(pki.inter, pki.inter_key, revoked=[(77, None)]),
        INTER_CDP: good_crl(pki.root, pki.root_key)}).pool()
    with dev.engine:
        assert not dev.validate(leaf).ok
        earlier = dev.engine.validate_peer([der(leaf), der(pki.inter)], "ike",
                                           AT_US - 3 * DAY)  # revoked at AT - 2 days
    assert earlier.ok and earlier.revocation[0].status is Status.GOOD


def _other_key_crl(pki: Pki) -> bytes:
    return good_crl(pki.inter, pki.inter_key, signer=key("rsa2048"))


FAILURES: dict[str, tuple[object, Code]] = {
    "http-404": ("the server answered HTTP 404", Code.CRL_UNAVAILABLE),
    "ldap-entry-missing": ("no entry cn=Rev Issuing CA at ldap://127.0.0.1:389",
                           Code.CRL_UNAVAILABLE),
    "trickling-server": ("no complete answer within the 5 s deadline", Code.CRL_UNAVAILABLE),
    "signed-by-another-key": (_other_key_crl, Code.CRL_UNAVAILABLE),
    "unknown-critical-extension": ({"critical_unknown": True}, Code.CRL_UNAVAILABLE),
    "delta-crl-only": ({"delta_of": 1}, Code.CRL_UNAVAILABLE),
    "crl-expired": ({"this_update": AT_US - 30 * DAY, "next_update": AT_US - DAY},
                    Code.CRL_STALE),
}


def _answer(pki: Pki, how: object) -> bytes | str:
    if isinstance(how, str):
        return how
    if isinstance(how, dict):
        return good_crl(pki.inter, pki.inter_key, **how)
    assert callable(how)
    return how(pki)  # type: ignore[no-any-return]


@pytest.mark.parametrize("optional", [False, True], ids=["crl-required", "crl-optional"])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_each_crl_failure_fails_unless_crl_optional(tmp_path: Path, pki: Pki, kind: str,
                                                    optional: bool) -> None:
    how, code = FAILURES[kind]
    dev = Device(tmp_path, pki, {LEAF_CDP: _answer(pki, how),
                                 INTER_CDP: good_crl(pki.root, pki.root_key)})
    with dev.engine:
        dev.trustpoint(optional)
        before = dev.engine.state.seq
        v = dev.validate(leaf_of(pki))
        recorded = [r.event for r in dev.engine.store.read(before + 1)]
    want = Status.BYPASSED if optional else (
        Status.STALE if code is Code.CRL_STALE else Status.UNAVAILABLE)
    assert [r.status for r in v.revocation] == [want, Status.GOOD, Status.ANCHOR]
    assert v.ok is optional
    assert v.codes == ((Code.CRL_BYPASSED,) if optional else (code,))
    fetched = CrlFetched if code is Code.CRL_STALE else CrlFetchFailed
    assert [type(e) for e in recorded] == [fetched, CrlFetched, PeerValidated]
    assert verdict_of(recorded[-1]) == v  # type: ignore[arg-type]


def test_trustpoint_and_pool_anchors_each_bring_their_own_crl_optional(tmp_path: Path,
                                                                      pki: Pki) -> None:
    """The same root in the pool (crl optional) and as trustpoint corp's CA (crl required):
    the trustpoint anchors the chain, so its policy decides; a chain from another root,
    in the pool only, gets the pool's policy."""
    other = Pki.make("Pool Only", kind="rsa2048")
    down = {LEAF_CDP: "the server answered HTTP 503", INTER_CDP: "the server answered HTTP 503"}
    dev = Device(tmp_path, pki, down)
    with dev.engine:
        (tmp_path / "pool.pem").write_bytes(pem([pki.root, other.root]))
        dev.run(f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}",
                "configure", "crypto ca trustpool policy", "crl optional", "commit", "end")
        dev.trustpoint(optional=False)
        by_tp = dev.validate(leaf_of(pki))
        by_pool = dev.engine.validate_peer([der(other.leaf()), der(other.inter)], "any",
                                           AT_US)
        dev.run("configure", "no crypto ca trustpoint corp", "commit", "end")
        pool_now = dev.validate(leaf_of(pki))
    assert by_tp.anchor is not None and by_tp.anchor.name == "corp"
    assert not by_tp.ok and by_tp.codes == (Code.CRL_UNAVAILABLE,)
    assert by_pool.ok and by_pool.codes == (Code.CRL_BYPASSED,)
    assert pool_now.ok and pool_now.anchor is not None and pool_now.anchor.source == "trustpool"


def test_counters_count_what_the_log_holds(device: Device, pki: Pki) -> None:
    device.pool(optional=True)
    device.fetcher.answers[LEAF_CDP] = "the server answered HTTP 404"
    assert device.validate(leaf_of(pki)).bypassed
    assert device.engine.validate_peer(b"not a certificate", "ike", AT_US).codes == (
        Code.MALFORMED,)
    assert not device.validate(leaf_of(pki), name="other.example").ok
    assert device.validate(leaf_of(pki)).ok
    out = device.engine.execute("show crypto ca counters").output
    assert out.splitlines() == [
        "PKI validation counters:",
        "  Peer validations passed          : 2",
        "  Peer validations failed          : 2",
        "  Passed by crl optional           : 2",
        "  CRL fetch attempts               : 2",
        "  CRL fetch failures               : 1",
        "Failed validations by reason:",
        "  MALFORMED                        : 1",
        "  NAME_MISMATCH                    : 1",
    ]


def test_a_failed_fetch_is_not_tried_again_for_a_minute(device: Device, pki: Pki) -> None:
    """A dead distribution point costs one curl-timeout a minute, not one per handshake."""
    device.pool(optional=True)
    device.fetcher.answers[LEAF_CDP] = "no complete answer within the 5 s deadline"
    clock = device.engine.ports.clock
    assert device.validate(leaf_of(pki)).bypassed
    asked = len(device.fetcher.asked)
    clock.base.advance(59)  # type: ignore[attr-defined]
    assert device.validate(leaf_of(pki)).bypassed
    assert len(device.fetcher.asked) == asked  # within the minute: the cache's verdict
    clock.base.advance(2)  # type: ignore[attr-defined]
    device.fetcher.answers[LEAF_CDP] = good_crl(pki.inter, pki.inter_key)
    v = device.validate(leaf_of(pki))
    assert v.ok and v.codes == () and len(device.fetcher.asked) == asked + 1


def test_bad_arguments_are_value_errors(device: Device, pki: Pki) -> None:
    with pytest.raises(ValueError, match="not a valid Purpose"):
        device.engine.validate_peer(der(pki.root), "smtp", AT_US)
    with pytest.raises(ValueError, match="timezone"):
        device.engine.validate_peer(der(pki.root), "ike", dt.datetime(2026, 1, 1))
    assert device.engine.state.validations.passed == 0


def test_a_chain_nobody_anchors_is_unknown_ca(device: Device) -> None:
    stranger = Pki.make("Stranger")
    v = device.engine.validate_peer(pem([stranger.leaf(), stranger.inter]), "any", AT_US)
    assert (v.ok, v.codes, v.anchor, v.path) == (False, (Code.UNKNOWN_CA,), None, ())
    assert device.fetcher.asked == []


def test_a_leaf_issued_by_a_ca_key_then_revoked_path_is_not_checked_for_crls(
        device: Device, pki: Pki) -> None:
    """A path refused on its own merits fetches no CRL (nothing could save it)."""
    device.pool()
    expired = issue(Spec("peer.example", not_after=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
                    key(), (pki.inter, pki.inter_key))
    v = device.validate(expired, name=None)
    assert v.codes == (Code.EXPIRED,) and v.revocation == () and device.fetcher.asked == []
