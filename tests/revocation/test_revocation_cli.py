"""The CRL commands (engine/commands/crl.py): `crypto ca crl request <uri>` says what it
fetched or a `%` error naming the source and why, `crypto ca crl curl-timeout <5-50>` is
configuration, `show crypto ca crls` matches its golden file; `trustledger log verify` checks
every stored CRL an event names."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.cli import main
from engine.errors import PeerError
from engine.ports import FakeClock
from events.revocation import CrlFetched, CrlFetchFailed
from tests.revocation.revocation_support import configure, device, ok, trustpoint
from tests.support.crl_support import (
    DAY_US,
    CrlSpec,
    FakeCrlFetcher,
    Issuer,
    key,
    make_ca,
    make_crl,
)

HERE = Path(__file__).resolve().parent
GOLDEN_CA = x509.load_pem_x509_certificate((HERE / "vectors" / "ca_golden_root.pem").read_bytes())
GOLDEN_CRL = (HERE / "vectors" / "crl_golden_two_revoked.der").read_bytes()
URI = "http://crl.example.com/golden.crl"
CA = make_ca(now=FakeClock().us)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def golden_device(clock: FakeClock) -> Engine:
    e = device(clock, FakeCrlFetcher({URI: GOLDEN_CRL}))
    trustpoint(e, "golden", Issuer(key(0), GOLDEN_CA))
    return e


def test_request_says_what_it_fetched_and_records_it(clock: FakeClock) -> None:
    e = golden_device(clock)
    r = e.execute(f"crypto ca crl request {URI}")
    assert r.ok and r.output == (
        f"% CRL fetched from {URI}: issuer CN=Golden Root CA,O=Example, number 4096, "
        "2 entries, next update 00:00:00 UTC Thu Dec 04 2025.\n")
    (rec,) = r.events
    assert isinstance(rec.event, CrlFetched) and rec.event.trustpoint == "golden"
    assert ok(e, "show logging").splitlines()[-1].endswith(
        f"%PKI-6-CRL_FETCHED: CRL of CN=Golden Root CA,O=Example fetched from {URI}: "
        "number 4096, 2 entries, next update 00:00:00 UTC Thu Dec 04 2025")


def test_show_crypto_ca_crls_golden(clock: FakeClock) -> None:
    e = golden_device(clock)
    ok(e, f"crypto ca crl request {URI}")
    clock.advance(60)
    assert ok(e, "show crypto ca crls") == (HERE / "golden" / "show_crypto_ca_crls.txt").read_text()


def test_request_of_a_stale_crl_warns(clock: FakeClock) -> None:
    e = golden_device(clock)
    clock.advance(8 * DAY_US // 1_000_000)
    assert ok(e, f"crypto ca crl request {URI}").splitlines()[1] == (
        "% Warning: the CRL is past its next update: it is cached, and shown as stale.")


@pytest.mark.parametrize(("answer", "why"), [
    ("the server answered HTTP 404", "the server answered HTTP 404"),
    (b"not a crl", "the answer is not a CRL"),
    ("no complete answer within the 5 s curl-timeout",
     "no complete answer within the 5 s curl-timeout"),
])
def test_a_failed_request_names_the_source_and_the_cause(clock: FakeClock, answer: bytes | str,
                                                         why: str) -> None:
    e = device(clock, FakeCrlFetcher({URI: answer}))
    r = e.execute(f"crypto ca crl request {URI}")
    assert isinstance(r.error, PeerError)
    assert r.output == f"% CRL request failed: {URI}: {why}. Nothing was cached.\n"
    (rec,) = r.events  # the attempt is on record (counted, in show logging)
    assert isinstance(rec.event, CrlFetchFailed) and rec.event.attempts == ((URI, why),)
    assert e.state.crls.crls == ()


def test_a_crl_from_an_unknown_or_forged_issuer_is_refused(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher({URI: make_crl(CA, CrlSpec(this_update=clock.us))}))
    r = e.execute(f"crypto ca crl request {URI}")
    assert r.output == (f"% CRL request failed: {URI}: its issuer CN=Test Root CA,O=Example "
                        "is no trustpoint's CA and not in the trustpool. Nothing was cached.\n")
    trustpoint(e, "myca", CA)
    e.ports.crls = FakeCrlFetcher({URI: make_crl(CA, CrlSpec(this_update=clock.us,
                                                             signer=key(9)))})
    r = e.execute(f"crypto ca crl request {URI}")
    assert r.output == (f"% CRL request failed: {URI}: the CRL's signature does not verify "
                        "with the issuer's key. Nothing was cached.\n")
    assert e.state.crls.crls == ()


@pytest.mark.parametrize("uri", ["ftp://x/a.crl", "https://x/a.crl", "x.crl",
                                 "ldap://x/cn=a??sub"])
def test_a_uri_we_cannot_fetch_is_refused_before_anything_happens(clock: FakeClock,
                                                                  uri: str) -> None:
    fetcher = FakeCrlFetcher()
    e = device(clock, fetcher)
    r = e.execute(f"crypto ca crl request {uri}")
    assert not r.ok and r.events == [] and fetcher.asked == []
    assert "% Invalid input detected at '^' marker." in r.output


def test_an_ldap_uri_with_spaces_is_taken_whole(clock: FakeClock) -> None:
    uri = "ldap://ldap.example.com/CN=Golden Root CA,O=Example"
    e = golden_device(clock)
    e.ports.crls = fetcher = FakeCrlFetcher({uri: GOLDEN_CRL})
    ok(e, f"crypto ca crl request {uri}")
    assert fetcher.asked == [(uri, 5)]


def test_curl_timeout_is_configuration_from_5_to_50(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher())
    ok(e, "configure")
    for bad in ("4", "51", "x"):
        assert not e.execute(f"crypto ca crl curl-timeout {bad}").ok
    assert "<5-50>" in e.execute("crypto ca crl curl-timeout ?").output
    ok(e, "crypto ca crl curl-timeout 30")
    ok(e, "commit")
    ok(e, "end")
    assert "crypto ca crl curl-timeout 30\n" in ok(e, "show running-config")
    e.ports.crls = fetcher = FakeCrlFetcher()
    e.execute(f"crypto ca crl request {URI}")
    assert fetcher.asked == [(URI, 30)]
    configure(e, "no crypto ca crl curl-timeout")
    e.execute(f"crypto ca crl request {URI}")
    assert fetcher.asked[-1] == (URI, 5)


def test_help_lists_the_crl_commands(clock: FakeClock) -> None:
    e = device(clock, FakeCrlFetcher())
    assert "request" in ok(e, "crypto ca crl ?")
    assert "crls" in ok(e, "show crypto ca ?")
    assert "crl" in ok(e, "clear crypto ca ?")


# -- log verify ----------------------------------------------------------------------------------


def _device_on_disk(root: Path, clock: FakeClock) -> str:
    e = Engine.open(root, clock=clock, user="tester")
    e.ports.crls = FakeCrlFetcher({URI: GOLDEN_CRL})
    trustpoint(e, "golden", Issuer(key(0), GOLDEN_CA))
    (rec,) = e.execute(f"crypto ca crl request {URI}").events
    e.close()
    assert isinstance(rec.event, CrlFetched)
    return rec.event.sha256


def test_log_verify_checks_every_stored_crl(tmp_path: Path, clock: FakeClock,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sha = _device_on_disk(tmp_path / "dev", clock)
    blob = tmp_path / "dev" / "crls" / sha
    assert blob.read_bytes() == GOLDEN_CRL
    assert main(["log", "verify", str(tmp_path / "dev")]) == 0
    assert "crls      : 1 stored CRL OK\n" in capsys.readouterr().out
    blob.write_bytes(GOLDEN_CRL[:-1] + b"\x00")
    assert main(["log", "verify", str(tmp_path / "dev")]) == 1
    out = capsys.readouterr().out
    assert (f"DAMAGED   : seq 3 names the CRL {sha}, which is altered (its bytes do not "
            "hash to its name)\n") in out
    blob.unlink()
    assert main(["log", "verify", str(tmp_path / "dev" / "log")]) == 1
    assert f"DAMAGED   : seq 3 names the CRL {sha}, which is missing\n" in capsys.readouterr().out


def test_a_replay_fetches_nothing_and_records_no_failed_attempt(clock: FakeClock) -> None:
    e = golden_device(clock)
    ok(e, f"crypto ca crl request {URI}")
    frozen = Engine.frozen(e.state, clock.us)
    r = frozen.execute(f"crypto ca crl request {URI}")
    assert not r.ok and r.events == []
    assert r.output.startswith("% This is a replay of the log: ")
    assert frozen.execute("show crypto ca crls").output == ok(e, "show crypto ca crls")


def test_a_replay_of_a_data_directory_reads_its_stored_crls(tmp_path: Path, clock: FakeClock,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    from engine.revocation import index
    from engine.revocation.store import FileCrlBlobs

    sha = _device_on_disk(tmp_path / "dev", clock)
    assert main(["replay", str(tmp_path / "dev"), "--until", "99",
                 "--show", "show crypto ca crls"]) == 0
    assert f"SHA-256 : {sha}\n" in capsys.readouterr().out
    e = Engine.open(tmp_path / "dev", clock=clock)
    blobs = FileCrlBlobs(tmp_path / "dev" / "crls")
    frozen = Engine.frozen(e.state, clock.us, blobs)
    e.close()
    assert frozen.crl_blobs is blobs
    index._INDEXES.clear()  # nothing memoized: the index is built from the stored bytes
    (cached,) = frozen.state.crls.crls
    got = index.revocation_of(frozen.crl_blobs, cached, 0x1001)
    assert got is not None and got.reason == "keyCompromise"
