"""CRLs from the built-in CA: its CDP over HTTP (served on loopback) and SCEP GetCRL to the
trustpoint's CA (in process) when the CDP gives nothing: the router's own certificate,
revoked at the CA, is on the CRL the device fetches."""

from __future__ import annotations

import pytest
from cryptography import x509

from engine import Engine
from engine.ca.service import BuiltinCA
from engine.ports import FakeClock
from engine.revocation.cache import crl_for
from engine.revocation.fetch import fetch_crl
from engine.revocation.index import revocation_of
from events.revocation import CrlFetched, CrlFetchFailed
from events.trustpoint import RouterCertificateRevoked
from tests.revocation.revocation_support import record
from tests.support.crl_support import FakeCrlFetcher
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    declare,
    enroll,
    identity_and_key,
    status,
)


def enrolled(device: Engine, url: str, ca: BuiltinCA
             ) -> tuple[x509.Certificate, x509.Certificate]:
    """The router certificate the CA issued and the CA certificate."""
    identity_and_key(device)
    declare(device, url=url)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok
    st = status(device)
    assert st.ca_certificate is not None
    return (x509.load_der_x509_certificate(st.certificates[0].der),
            x509.load_der_x509_certificate(st.ca_certificate))


def test_scep_getcrl_is_asked_when_the_cdp_gives_nothing(device: Engine, ca_factory: CAFactory,
                                                          clock: FakeClock) -> None:
    ca, server = ca_factory()
    mine, ca_cert = enrolled(device, server.url, ca)
    ca.revoke(format(mine.serial_number, "x"), "keyCompromise")
    device.ports.crls = fetcher = FakeCrlFetcher()  # the CDP answers 404
    (ev, own) = record(device, fetch_crl(device.state, mine, ca_cert, clock.us))
    assert isinstance(own, RouterCertificateRevoked) and own.reason == "keyCompromise"
    (cdp, _), = fetcher.asked
    assert cdp == f"{server.url}/crl/ca.crl"
    assert isinstance(ev, CrlFetched), ev
    assert ev.source == "scep:myca" and ev.trustpoint == "myca"
    assert ev.attempts == ((cdp, "the server answered HTTP 404"),)
    cached = crl_for(device.state, mine, ca_cert)
    assert cached is not None
    hit = revocation_of(device.crl_blobs, cached, mine.serial_number)
    assert hit is not None and hit.reason == "keyCompromise"


def test_a_ca_that_is_gone_is_an_attempt_that_failed(device: Engine, ca_factory: CAFactory,
                                                     clock: FakeClock) -> None:
    ca, server = ca_factory()
    mine, ca_cert = enrolled(device, server.url, ca)
    server.stop()
    device.ports.crls = FakeCrlFetcher()
    (ev,) = record(device, fetch_crl(device.state, mine, ca_cert, clock.us))
    assert isinstance(ev, CrlFetchFailed)
    assert [uri for uri, _ in ev.attempts] == [f"{server.url}/crl/ca.crl", "scep:myca"]
    assert ev.attempts[1][1].startswith("Unable to reach the CA at ")


@pytest.mark.integration
def test_the_builtin_ca_http_cdp_over_loopback(device: Engine, ca_factory: CAFactory,
                                               clock: FakeClock) -> None:
    ca, server = ca_factory(http=True)
    mine, ca_cert = enrolled(device, server.url, ca)
    ca.revoke(format(mine.serial_number, "x"), "superseded")
    (ev, own) = record(device, fetch_crl(device.state, mine, ca_cert, clock.us))
    assert isinstance(own, RouterCertificateRevoked) and own.reason == "superseded"
    assert isinstance(ev, CrlFetched), ev
    assert ev.source == f"{server.url}/crl/ca.crl" and ev.attempts == ()
    cached = crl_for(device.state, mine, ca_cert)
    assert cached is not None
    hit = revocation_of(device.crl_blobs, cached, mine.serial_number)
    assert hit is not None and hit.reason == "superseded"
