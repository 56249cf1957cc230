"""Findings of the third critical review on CRL retrieval: what an RFC-legal CRL may hold is
recorded (a 20-octet cRLNumber), a value the log cannot encode is a `%` error that changes
nothing, and `crypto ca crl request` says what it did."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import engine.commands.run.crl as crl_command  # the handlers (declared in engine.commands.crl)
from engine import Engine
from engine.ports import FakeClock
from engine.revocation.model import CachedCrl
from engine.state import DeviceState
from events.registry import Event
from events.revocation import CrlFetched
from events.validation import PeerValidated
from tests.support.crl_support import FakeCrlFetcher
from tests.validation.validation_support import (
    AT_US,
    INTER_CDP,
    LEAF_CDP,
    Pki,
    der,
    good_crl,
    leaf_of,
    pem,
)

BIG = 2**100  # RFC 5280 5.2.3: a cRLNumber may be 20 octets; msgpack ints stop at 2**64 - 1


def _pool_device(tmp_path: Path, pki: Pki, answers: dict[str, bytes | str]) -> Engine:
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    dev = Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None)
    dev.ports.crls = FakeCrlFetcher(answers)
    r = dev.execute(f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}")
    assert r.ok, r.output
    return dev


def test_a_20_octet_crl_number_is_recorded_shown_and_replayed(tmp_path: Path) -> None:
    pki = Pki.make("Big", kind="rsa2048", cdp=[INTER_CDP])
    answers: dict[str, bytes | str] = {
        LEAF_CDP: good_crl(pki.inter, pki.inter_key, number=BIG),
        INTER_CDP: good_crl(pki.root, pki.root_key, number=BIG)}
    with _pool_device(tmp_path, pki, answers) as dev:
        r = dev.execute(f"crypto ca crl request {INTER_CDP}")
        assert r.ok and f"number {BIG}," in r.output
        v = dev.validate_peer([der(leaf_of(pki)), der(pki.inter)], "ike", AT_US, None)
        assert v.ok and {r.crl_number for r in v.revocation if r.crl_sha256} == {BIG}
        shown = dev.execute("show crypto ca crls").output
    assert f"CRL Number : {BIG}" in shown
    with Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None) as again:
        assert again.execute("show crypto ca crls").output == shown
        assert all(c.number == str(BIG) for c in again.state.crls.crls)


def test_an_event_the_log_cannot_encode_is_a_percent_error_that_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = Pki.make("Enc", kind="rsa2048", cdp=[INTER_CDP])
    answers: dict[str, bytes | str] = {INTER_CDP: good_crl(pki.root, pki.root_key)}

    real = crl_command.fetched_events

    def unencodable(state: DeviceState, cached: CachedCrl) -> list[Event]:
        (ev,) = real(state, cached)
        assert isinstance(ev, CrlFetched)
        return [dataclasses.replace(ev, number=BIG)]  # type: ignore[arg-type]

    with _pool_device(tmp_path, pki, answers) as dev:
        head, state = dev.store.head, dev.state
        monkeypatch.setattr(crl_command, "fetched_events", unencodable)
        r = dev.execute(f"crypto ca crl request {INTER_CDP}")
        assert not r.ok and r.output.startswith("% Could not write the event log: an event "
                                                "cannot be encoded")
        assert "Nothing was changed." in r.output
        assert dev.store.head == head and dev.state is state
        monkeypatch.undo()
        assert dev.execute(f"crypto ca crl request {INTER_CDP}").ok  # the shell goes on


def test_v1_events_with_an_int_crl_number_read_back_in_decimal() -> None:
    from events.registry import event_from

    old = {"sha256": "ab", "issuer": b"", "issuer_text": "CN=x", "authority_key_id": None,
           "number": 9, "this_update": 0, "next_update": None, "source": "u", "fetched_at": 0,
           "trustpoint": None, "idp_uris": (), "count": 0, "verified_with": "", "only": "",
           "attempts": ()}
    ev = event_from("CrlFetched", 1, old)
    assert isinstance(ev, CrlFetched) and ev.number == "9"
    row = ("f", "1A", "good", "ab", 9, 0, None, "")
    v1 = {"chain": (), "purpose": "ike", "at": 0, "peer_name": None, "ok": True,
          "reasons": (), "anchor_source": "", "anchor_name": "", "anchor_sha256": "",
          "path": (), "revocation": (row,), "detail": ""}
    got = event_from("PeerValidated", 1, v1)
    assert isinstance(got, PeerValidated) and got.revocation[0][4] == "9"


DAY_US = 86_400_000_000


def test_a_crl_from_a_ca_whose_clock_runs_a_little_ahead_is_taken(tmp_path: Path) -> None:
    """thisUpdate up to the certificates' 5-minute clock skew ahead is accepted (a CA 20 s
    ahead signed the CRL right after the renewal it issued, and the fetch was refused)."""
    pki = Pki.make("Ahead", kind="rsa2048", cdp=[INTER_CDP])
    ahead = good_crl(pki.root, pki.root_key, number=3, this_update=AT_US + 20_000_000,
                     next_update=AT_US + DAY_US)
    with _pool_device(tmp_path, pki, {INTER_CDP: ahead}) as dev:
        r = dev.execute(f"crypto ca crl request {INTER_CDP}")
        assert r.ok, r.output
        (cached,) = dev.state.crls.crls
        assert cached.number == "3"


def test_a_crl_issued_in_the_future_is_refused_and_does_not_hide_a_revocation(
        tmp_path: Path) -> None:
    pki = Pki.make("Future", kind="rsa2048", cdp=[INTER_CDP])
    future = good_crl(pki.root, pki.root_key, number=9, this_update=AT_US + 3650 * DAY_US,
                      next_update=AT_US + 3660 * DAY_US)
    now_crl = good_crl(pki.root, pki.root_key, number=14, revoked=[(pki.inter.serial_number,
                                                                     None)])
    answers: dict[str, bytes | str] = {INTER_CDP: future, "http://127.0.0.1/now.crl": now_crl}
    with _pool_device(tmp_path, pki, answers) as dev:
        r = dev.execute(f"crypto ca crl request {INTER_CDP}")
        assert not r.ok and "is in the future: it is not valid yet" in r.output
        assert not dev.state.crls.crls
        assert dev.execute("crypto ca crl request http://127.0.0.1/now.crl").ok
        (cached,) = dev.state.crls.crls
        assert cached.number == "14"
        v = dev.validate_peer([der(leaf_of(pki)), der(pki.inter)], "ike", AT_US, None)
        assert not v.ok and "REVOKED" in v.reasons, v


def test_the_cache_orders_crls_of_one_scope_by_crl_number() -> None:
    from engine.revocation.cache import CrlCache
    from engine.revocation.model import CachedCrl

    def cached(number: str | None, this_update: int) -> CachedCrl:
        return CachedCrl("ab" + (number or ""), b"issuer", "CN=x", None, number, this_update,
                         None, "u", 0, None, (), 0, "k")

    later_but_lower = CrlCache().with_crl(cached("15", 100)).with_crl(cached("14", 200))
    assert [c.number for c in later_but_lower.crls] == ["15"]
    higher_but_earlier = CrlCache().with_crl(cached("14", 200)).with_crl(cached("15", 100))
    assert [c.number for c in higher_but_earlier.crls] == ["15"]
    no_numbers = CrlCache().with_crl(cached(None, 200)).with_crl(cached(None, 100))
    assert [c.this_update for c in no_numbers.crls] == [200]


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:abc/x",
    "http://127.0.0.1:0/x",
    "http://:80/x",
    "ldap://127.0.0.1:28389/cn=Root%20CA,dc=example,dc=com??base?(((",
    "ldap://127.0.0.1:28389/%ZZ",
])  # a hostless ldap:///DN is refused with its reason: tests/core/test_core_conformance.py
def test_a_malformed_request_url_is_invalid_input_and_records_nothing(uri: str) -> None:
    e = Engine.in_memory(clock=FakeClock(AT_US))
    e.ports.crls = FakeCrlFetcher({})
    head, state = e.store.head, e.state
    r = e.execute(f"crypto ca crl request {uri}")
    assert not r.ok and "% Invalid input detected" in r.output, r.output
    assert e.store.head == head and e.state is state and not e.ports.crls.asked


def test_an_ldap_cdp_with_a_malformed_filter_or_escape_is_a_failed_attempt_not_a_read() -> None:
    from engine.revocation.ldap import LdapUrlError, parse_ldap_url

    for bad in ("ldap://h/cn=x??base?(((", "ldap://h/cn=x??base?(a=b))", "ldap://h/cn=%ZZ"):
        with pytest.raises(LdapUrlError):
            parse_ldap_url(bad)
    assert parse_ldap_url("ldap://h/cn=x??base?(&(a=b)(c=d))").filter == "(&(a=b)(c=d))"


def test_a_request_says_when_the_cached_crl_is_kept_instead(tmp_path: Path) -> None:
    pki = Pki.make("Older", kind="rsa2048", cdp=[INTER_CDP])
    answers: dict[str, bytes | str] = {
        "http://127.0.0.1/good.crl": good_crl(pki.root, pki.root_key, number=5),
        "http://127.0.0.1/old.crl": good_crl(pki.root, pki.root_key, number=4),
        "http://127.0.0.1/expired.crl": good_crl(
            pki.root, pki.root_key, number=3, this_update=AT_US - 30 * DAY_US,
            next_update=AT_US - 20 * DAY_US)}
    with _pool_device(tmp_path, pki, answers) as dev:
        assert dev.execute("crypto ca crl request http://127.0.0.1/good.crl").ok
        for uri in ("http://127.0.0.1/old.crl", "http://127.0.0.1/expired.crl"):
            out = dev.execute(f"crypto ca crl request {uri}").output.splitlines()
            assert len(out) == 2 and out[1].startswith(
                "% The cached CRL of this issuer and scope is newer (number 5, last update ")
            assert out[1].endswith("): it is kept, this one is not used.")
        (cached,) = dev.state.crls.crls
        assert cached.number == "5"


def test_a_request_parses_no_pool_certificate_but_its_issuers_and_warns_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from cryptography import x509

    pki = Pki.make("Quiet", kind="rsa2048", cdp=[INTER_CDP])
    uri = "http://127.0.0.1/quiet.crl"
    from engine.trustpool.builtin import certifi_bundle

    with Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=certifi_bundle) as dev:
        dev.ports.crls = FakeCrlFetcher({uri: good_crl(pki.root, pki.root_key)})
        (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
        assert dev.execute(f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}").ok
        parsed: list[bytes] = []
        real_load = x509.load_der_x509_certificate

        def counted(data: bytes, *rest: object) -> x509.Certificate:
            parsed.append(data)
            return real_load(data)

        monkeypatch.setattr(x509, "load_der_x509_certificate", counted)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = dev.execute(f"crypto ca crl request {uri}")
    assert r.ok, r.output
    assert parsed == [der(pki.root)]
    assert not [w for w in caught if "serial number" in str(w.message)]


def test_curl_timeout_help_says_the_range_once() -> None:
    e = Engine.in_memory(clock=FakeClock(AT_US))
    assert e.execute("configure").ok
    out = e.execute("crypto ca crl curl-timeout ?").output
    assert "<5-50>" in out and out.count("<5-50>") == 1, out
