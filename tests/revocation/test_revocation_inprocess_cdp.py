"""The tests' CRL fetcher for devices whose CAs are served in process
(tests/support/crl_support.py `InProcessCrlFetcher`): a CDP on the in-process transport is
downloaded from the CA's own route (re-issued past half its lifetime, as `ca serve` does),
a loopback URI goes to the real fetcher, and no other name is ever resolved."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cryptography import x509

from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.server import serve_in_process
from engine.ports import FakeClock
from engine.revocation.transport import CrlUnavailable
from tests.support.crl_support import FakeCrlFetcher, InProcessCrlFetcher
from tests.trustpoint.tp_support import make_ca

DAY_S = 86_400


def test_a_cdp_served_in_process_is_downloaded_from_the_ca(tmp_path: Path) -> None:
    clock, network = FakeClock(), InProcessTransport()
    ca = make_ca(tmp_path / "ca", clock)
    server = serve_in_process(ca, network, "http://ca.invalid")
    fetcher = InProcessCrlFetcher(network, loopback=FakeCrlFetcher())
    first = x509.load_der_x509_crl(fetcher.fetch(server.crl_url, 5.0))
    assert first.issuer.rfc4514_string() == "CN=trustledger test CA,O=Example"
    clock.advance(5 * DAY_S)  # past half of the 7-day lifetime: the download re-issues it
    second = x509.load_der_x509_crl(fetcher.fetch(server.crl_url, 5.0))
    assert second.last_update_utc > first.last_update_utc
    with pytest.raises(CrlUnavailable, match="HTTP 404"):
        fetcher.fetch("http://ca.invalid/crl/other.crl", 5.0)
    server.stop()
    with pytest.raises(CrlUnavailable, match=r"ca\.invalid: name not resolved"):  # stopped
        fetcher.fetch(server.crl_url, 5.0)


def test_only_loopback_names_leave_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup(*args: object, **kw: object) -> object:
        raise AssertionError(f"a name was resolved: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    loopback = FakeCrlFetcher({"http://127.0.0.1:8080/ca.crl": b"crl",
                               "ldap://[::1]/cn=CA?certificateRevocationList": b"ldap crl"})
    fetcher = InProcessCrlFetcher(InProcessTransport(), loopback=loopback)
    assert fetcher.fetch("http://127.0.0.1:8080/ca.crl", 5.0) == b"crl"
    assert fetcher.fetch("ldap://[::1]/cn=CA?certificateRevocationList", 5.0) == b"ldap crl"
    for uri in ("http://ca.invalid/crl/ca.crl", "http://localhost.example/ca.crl",
                "ldap://ldap.example.com/cn=CA"):
        with pytest.raises(CrlUnavailable, match="name not resolved"):
            fetcher.fetch(uri, 5.0)
    assert [uri for uri, _ in loopback.asked] == ["http://127.0.0.1:8080/ca.crl",
                                                  "ldap://[::1]/cn=CA?certificateRevocationList"]
