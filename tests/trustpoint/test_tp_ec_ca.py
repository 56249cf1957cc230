"""A SCEP CA whose certificate has an EC key and that sends no RA certificate: SCEP encrypts
each request with RSA key transport to the CA or its RA (RFC 8894 §3), so there is nothing
to encrypt to. `crypto ca enroll` says so in one `%` line and changes nothing; a renewal or
shadow enrollment that reaches the same CA gets the same refusal as an error, never a
Python exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from engine import Engine
from engine.errors import OperatorError
from engine.keys import KeyAlgorithm
from engine.ports import FakeClock
from engine.runtime import perform
from engine.scep_client import CAView, HttpReply, Identity, ScepEnroll
from engine.trustpoints import status_of
from tests.trustpoint.tp_support import (
    CHALLENGE,
    T0_US,
    ScriptedTransport,
    authenticate,
    declare,
    der,
    identity_and_key,
)

CAPS = HttpReply(200, "text/plain", b"POSTPKIOperation\nSHA-256\nAES\nSCEPStandard")
WHY = ("% The CA of trustpoint myca has no RSA certificate to encrypt a SCEP request to: SCEP "
       "envelopes requests with RSA key transport to the CA or its RA (RFC 8894 section 3), "
       "and this CA has another key type and no RA certificate. Use 'enrollment terminal' "
       "(cut-and-paste enrollment) instead.")


def ec_ca() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.fromtimestamp(T0_US / 1e6, UTC)
    name = x509.Name.from_rfc4514_string("CN=EC CA,O=Elsewhere")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0xEC)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=900))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def authenticated_device(transport: ScriptedTransport) -> Engine:
    e = Engine.in_memory(clock=FakeClock(), scep=transport)
    identity_and_key(e)
    declare(e, url="http://127.0.0.1:9/")
    r = authenticate(e)
    assert r.ok, r.output
    return e


def test_enroll_with_an_ec_ca_and_no_ra_is_one_percent_line() -> None:
    transport = ScriptedTransport({"GetCACaps": CAPS, "GetCACert": HttpReply(
        200, "application/x-x509-ca-cert", der(ec_ca()))})
    e = authenticated_device(transport)
    before = status_of(e.state, "myca")
    sent = len(transport.seen)
    r = e.execute("crypto ca enroll myca", answers=[CHALLENGE, CHALLENGE])
    assert r.error is not None and r.error.message == WHY
    assert "Traceback" not in r.output and "Password" not in r.output
    assert r.events == [] and len(transport.seen) == sent  # nothing sent, nothing recorded
    assert status_of(e.state, "myca") == before


def test_a_renewal_exchange_to_an_ec_ca_is_refused_as_an_error() -> None:
    """What engine.renewal (and rollover's shadow enrollment, through it) yields: ScepEnroll
    with the current certificate. Its performer refuses with an OperatorError, which the
    renewal turns into RenewalFailed, instead of a ValueError out of the envelope code."""
    transport = ScriptedTransport({})
    e = authenticated_device(ScriptedTransport({"GetCACaps": CAPS, "GetCACert": HttpReply(
        200, "application/x-x509-ca-cert", der(ec_ca()))}))
    e.ports.scep = transport
    pair = e.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")[0]
    view = CAView(der(ec_ca()), (), ("POSTPKIOperation", "SHA-256", "AES"))
    with pytest.raises(OperatorError, match="no RSA certificate to encrypt a SCEP request"):
        perform(ScepEnroll("http://127.0.0.1:9/", pair, Identity("CN=r1"), view, ""), e.ports)
    assert transport.seen == []
