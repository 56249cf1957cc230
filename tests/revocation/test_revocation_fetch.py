"""`fetch_crl`, the one path every CRL fetch takes (engine/revocation/fetch.py): the sources
in order, each failure recorded and the next one tried, the curl-timeout handed to each, a
stale CRL kept only when no fresh one can be had; and the cache the events fold into
(engine/revocation/cache.py): newest per issuer and scope, `crl_for`, `clear`."""

from __future__ import annotations

import pytest
from cryptography import x509

from engine.ports import FakeClock
from engine.revocation.cache import crl_for, crl_timeout
from engine.revocation.fetch import fetch_crl
from engine.revocation.index import revocation_of
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed
from tests.revocation.revocation_support import configure, device, ok, record, trustpoint
from tests.support.crl_support import (
    DAY_US,
    CrlSpec,
    FakeCrlFetcher,
    key,
    make_ca,
    make_crl,
    make_leaf,
    without_next_update,
)

HTTP = "http://crl.example.com/ca.crl"
LDAP = "ldap://127.0.0.1:3899/cn=Root%20CA,dc=example,dc=com?certificateRevocationList;binary"
CA = make_ca(now=FakeClock().us)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fresh(clock: FakeClock, **kw: object) -> bytes:
    spec = CrlSpec(this_update=clock.us - 60_000_000, next_update=clock.us + DAY_US)
    for k, v in kw.items():
        setattr(spec, k, v)
    return make_crl(CA, spec)


def test_the_distribution_points_are_tried_in_order_until_one_gives_a_good_crl(
        clock: FakeClock) -> None:
    good = fresh(clock, revoked=[(0x42, "key_compromise")], number=7)
    fetcher = FakeCrlFetcher({LDAP: good})
    e = device(clock, fetcher)
    leaf = make_leaf(CA, 0x42, [HTTP, LDAP], clock.us)
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert fetcher.asked == [(HTTP, 5), (LDAP, 5)]  # the default curl-timeout, each
    assert isinstance(ev, CrlFetched)
    assert ev.source == LDAP and ev.number == "7" and ev.count == 1 and ev.trustpoint is None
    assert ev.attempts == ((HTTP, "the server answered HTTP 404"),)
    cached = crl_for(e.state, leaf, CA.cert)
    assert cached is not None and cached.sha256 == ev.sha256
    assert e.crl_blobs.get(ev.sha256) == good  # stored before the event was made
    hit = revocation_of(e.crl_blobs, cached, 0x42)
    assert hit is not None and hit.reason == "keyCompromise"
    assert revocation_of(e.crl_blobs, cached, 0x43) is None


def test_the_curl_timeout_is_what_each_fetch_gets(clock: FakeClock) -> None:
    fetcher = FakeCrlFetcher({HTTP: fresh(clock)})
    e = device(clock, fetcher)
    configure(e, "crypto ca crl curl-timeout 12")
    assert crl_timeout(e.state) == 12
    record(e, fetch_crl(e.state, make_leaf(CA, 1, [HTTP], clock.us), CA.cert, clock.us))
    assert fetcher.asked == [(HTTP, 12)]


def test_a_refused_crl_is_an_attempt_that_failed_and_the_next_source_is_tried(
        clock: FakeClock) -> None:
    forged = fresh(clock, signer=key(6))
    fetcher = FakeCrlFetcher({HTTP: forged, LDAP: fresh(clock)})
    e = device(clock, fetcher)
    (ev,) = record(e, fetch_crl(e.state, make_leaf(CA, 1, [HTTP, LDAP], clock.us), CA.cert,
                                clock.us))
    assert isinstance(ev, CrlFetched) and ev.source == LDAP
    assert ev.attempts == ((HTTP, "the CRL's signature does not verify with the issuer's key"),)


def test_when_every_source_fails_each_attempt_is_named_and_logged(clock: FakeClock) -> None:
    fetcher = FakeCrlFetcher({HTTP: fresh(clock, delta_of=1),
                              LDAP: "no entry cn=Root CA,dc=example,dc=com in the directory"})
    e = device(clock, fetcher)
    (ev,) = record(e, fetch_crl(e.state, make_leaf(CA, 1, [HTTP, LDAP], clock.us), CA.cert,
                                clock.us))
    assert ev == CrlFetchFailed(None, "CN=Test Root CA,O=Example", (
        (HTTP, "the CRL is a delta CRL, not a complete one"),
        (LDAP, "no entry cn=Root CA,dc=example,dc=com in the directory")))
    assert e.state.crls.crls == () and e.state.crls.failures == 1
    assert ok(e, "show logging").splitlines()[-1].endswith(
        "%PKI-3-CRL_FETCH_FAIL: CRL fetch for CN=Test Root CA,O=Example failed: "
        f"{HTTP}: the CRL is a delta CRL, not a complete one; {LDAP}: no entry cn=Root CA,"
        "dc=example,dc=com in the directory")


def test_a_certificate_with_no_source_fails_saying_so(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher())
    (ev,) = record(e, fetch_crl(e.state, make_leaf(CA, 1, [], clock.us), CA.cert, clock.us))
    assert isinstance(ev, CrlFetchFailed)
    assert ev.attempts == (("(none)", "the certificate names no CRL distribution point and no "
                                      "trustpoint's CA issued it"),)


def test_a_bare_dn_is_read_from_the_trustpoint_query_url(clock: FakeClock) -> None:
    dn = x509.Name.from_rfc4514_string("CN=Test Root CA,O=Example")
    where = "ldap://ldap.example.com:3899/CN=Test%20Root%20CA,O=Example"
    fetcher = FakeCrlFetcher({where: fresh(clock)})
    e = device(clock, fetcher)
    leaf = make_leaf(CA, 1, [dn], clock.us)
    trustpoint(e, "myca", CA)
    (failed,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(failed, CrlFetchFailed) and fetcher.asked == []
    assert failed.trustpoint == "myca"  # found by its CA certificate
    assert failed.attempts[0] == ("ldap:///CN=Test%20Root%20CA,O=Example",
                                  "the distribution point CN=Test Root CA,O=Example is a "
                                  "directory name and the trustpoint has no query url")
    assert failed.attempts[1] == ("scep:myca", "the trustpoint has no enrollment url")
    configure(e, "crypto ca trustpoint myca", "query url ldap://ldap.example.com:3899")
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(ev, CrlFetched) and ev.source == where and ev.trustpoint == "myca"


def test_an_ldap_url_without_a_host_is_a_dn_for_the_query_url(clock: FakeClock) -> None:
    """IOS's "ldap://CN=myca, O=cisco" form names no server: the query url does."""
    where = "ldap://ldap.example.com/CN=myca,O=cisco"
    e = device(clock, FakeCrlFetcher({where: fresh(clock)}))
    trustpoint(e, "myca", CA, ["query url ldap://ldap.example.com"])
    leaf = make_leaf(CA, 1, ["ldap:///CN=myca,O=cisco"], clock.us)
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(ev, CrlFetched) and ev.source == where


def test_a_stale_crl_is_kept_only_when_no_fresh_one_can_be_had(clock: FakeClock) -> None:
    old = fresh(clock, this_update=clock.us - 3 * DAY_US, next_update=clock.us - DAY_US)
    new = fresh(clock, number=2)
    leaf = make_leaf(CA, 1, [HTTP, LDAP], clock.us)
    e = device(clock, FakeCrlFetcher({HTTP: old, LDAP: new}))
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(ev, CrlFetched) and ev.source == LDAP and ev.number == "2"
    assert ev.attempts == ((HTTP, "the CRL is past its next update"),)
    e = device(clock, FakeCrlFetcher({HTTP: old}))
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(ev, CrlFetched) and ev.source == HTTP
    assert ev.attempts == ((HTTP, "the CRL is past its next update"),
                           (LDAP, "the server answered HTTP 404"))
    cached = crl_for(e.state, leaf, CA.cert)
    assert cached is not None and not cached.fresh_at(clock.us)


def test_a_crl_without_next_update_is_never_current_and_said_so(clock: FakeClock) -> None:
    """RFC 5280 §5.1.2.5: conforming issuers MUST include nextUpdate. One without it is
    cached as stale at once, as the cache judges it, so its revocations count but it makes
    nothing good, and the fetch counts as one that gave no current CRL (it was taken as
    current, then judged stale by every validation, each of which fetched it again)."""
    bare = without_next_update(fresh(clock, revoked=[(0x42, None)]), CA)
    assert x509.load_der_x509_crl(bare).next_update_utc is None
    leaf = make_leaf(CA, 1, [HTTP], clock.us)
    e = device(clock, FakeCrlFetcher({HTTP: bare}))
    (ev,) = record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert isinstance(ev, CrlFetched) and ev.next_update is None
    assert ev.attempts == ((HTTP, "the CRL has no next update (RFC 5280 5.1.2.5)"),)
    cached = crl_for(e.state, leaf, CA.cert)
    assert cached is not None and not cached.fresh_at(clock.us)
    assert revocation_of(e.crl_blobs, cached, 0x42) is not None
    assert e.state.validations.recently_failed(HTTP, clock.us)  # the validations' back-off
    logged = ok(e, "show logging")
    assert ("%PKI-4-CRL_STALE: CRL of CN=Test Root CA,O=Example fetched from "
            f"{HTTP} has no next update (RFC 5280 5.1.2.5), so it is never current: number 1, "
            "1 entry; the CA has published no newer one") in logged, logged


def test_a_requested_crl_without_next_update_says_so(clock: FakeClock) -> None:
    """`crypto ca crl request` and `show crypto ca crls` name why such a CRL is stale, as
    CRL_STALE does, not "past its next update" beside `Next Update : none`."""
    e = device(clock, FakeCrlFetcher({HTTP: without_next_update(fresh(clock), CA)}))
    trustpoint(e, "ca", CA)
    out = ok(e, f"crypto ca crl request {HTTP}")
    assert out.splitlines()[1] == ("% Warning: the CRL has no next update (RFC 5280 5.1.2.5), "
                                   "so it is never current: it is cached, and shown as stale.")
    shown = ok(e, "show crypto ca crls").splitlines()
    assert "Next Update : none" in shown and shown[-1] == "Status : Stale (no next update)"


def test_a_crl_is_kept_until_its_next_update_then_shown_stale(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher({HTTP: fresh(clock)}))
    leaf = make_leaf(CA, 1, [HTTP], clock.us)
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    cached = crl_for(e.state, leaf, CA.cert)
    assert cached is not None and cached.fresh_at(clock.us + DAY_US - 1)
    assert ok(e, "show crypto ca crls").splitlines()[-1] == "Status : Fresh"
    clock.advance(DAY_US // 1_000_000)
    assert crl_for(e.state, leaf, CA.cert) == cached  # still cached, now stale
    assert not cached.fresh_at(clock.us)
    assert ok(e, "show crypto ca crls").splitlines()[-1] == "Status : Stale (past its next update)"


def test_the_cache_keeps_the_newest_crl_per_issuer_and_scope(clock: FakeClock) -> None:
    leaf = make_leaf(CA, 1, [HTTP], clock.us)
    newer, older = fresh(clock, number=5), fresh(clock, number=4)
    e = device(clock, FakeCrlFetcher({HTTP: newer}))
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    e.ports.crls = FakeCrlFetcher({HTTP: older})
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    (only,) = e.state.crls.crls
    assert only.number == "5" and e.state.crls.fetches == 2  # the older one did not replace it
    scoped = fresh(clock, number=1, idp_uris=(HTTP,), this_update=clock.us)
    e.ports.crls = FakeCrlFetcher({HTTP: scoped})
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    assert len(e.state.crls.crls) == 2  # another scope: both kept
    got = crl_for(e.state, leaf, CA.cert)
    assert got is not None and got.idp_uris == (HTTP,)  # the newest that covers it
    other = make_leaf(CA, 2, ["http://other.example.com/x.crl"], clock.us)
    got = crl_for(e.state, other, CA.cert)
    assert got is not None and got.number == "5"  # the scoped one does not cover it


def test_crl_for_wants_the_issuer_key_that_verified_the_crl(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher({HTTP: fresh(clock)}))
    leaf = make_leaf(CA, 1, [HTTP], clock.us)
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    rolled = make_ca(key_n=7)  # the same name, another key (a rollover)
    assert rolled.cert.subject == CA.cert.subject
    assert crl_for(e.state, leaf, rolled.cert) is None
    assert crl_for(e.state, make_leaf(make_ca("Other CA", key_n=8), 1, [HTTP]), CA.cert) is None


def test_clear_empties_the_cache_with_an_event(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher({HTTP: fresh(clock)}))
    leaf = make_leaf(CA, 1, [HTTP], clock.us)
    assert ok(e, "clear crypto ca crl") == "% The CRL cache is empty.\n"
    record(e, fetch_crl(e.state, leaf, CA.cert, clock.us))
    r = e.execute("clear crypto ca crl")
    assert r.output == "% 1 cached CRL removed.\n"
    assert [rec.event for rec in r.events] == [CrlCacheCleared(1)]
    assert crl_for(e.state, leaf, CA.cert) is None and ok(e, "show crypto ca crls") == ""
    assert ok(e, "show logging").splitlines()[-1].endswith(
        "%PKI-6-CRL_CACHE_CLEARED: 1 cached CRL removed")


def test_a_fetch_in_a_replay_is_refused_not_recorded_as_a_failed_attempt(
        clock: FakeClock) -> None:
    from engine.errors import OperatorError
    from engine.runtime import drive

    e = device(clock, FakeCrlFetcher({HTTP: fresh(clock)}))
    e.ports.offline = True
    with pytest.raises(OperatorError, match="This is a replay of the log"):
        drive(fetch_crl(e.state, make_leaf(CA, 1, [HTTP], clock.us), CA.cert, clock.us),
              e.ports)
