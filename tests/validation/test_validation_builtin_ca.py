"""validate_peer against the built-in CA served on loopback: a certificate it issued is
validated through the trustpoint that authenticated it, its CRL fetched over the CA's HTTP
CDP; revoked at the CA, the next validation with a fresh CRL says REVOKED."""

from __future__ import annotations

import pytest
from cryptography import x509

from engine import Engine
from engine.ports import FakeClock
from engine.validation.verdict import Code, Status
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    declare,
    enroll,
    identity_and_key,
    status,
)


@pytest.mark.integration
def test_a_certificate_of_the_builtin_ca_validates_until_revoked(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory(http=True)
    identity_and_key(device)
    declare(device, url=server.url)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok
    st = status(device)
    cert = x509.load_der_x509_certificate(st.certificates[0].der)

    v = device.validate_peer([st.certificates[0].der], "any", clock.us)
    assert v.ok and v.codes == (), v
    assert v.anchor is not None and (v.anchor.source, v.anchor.name) == ("trustpoint", "myca")
    assert [r.status for r in v.revocation] == [Status.GOOD, Status.ANCHOR]

    ca.revoke(format(cert.serial_number, "x"), "keyCompromise")
    assert device.execute("clear crypto ca crl").ok  # the cached CRL predates the revocation
    v = device.validate_peer([st.certificates[0].der], "any", clock.us)
    assert not v.ok and v.codes == (Code.REVOKED,)
    assert v.revocation[0].revocation_reason == "keyCompromise"
