"""GetNextCACert (RFC 8894 §4.7): the CA certificate that takes over when the current expires.

A CA that has made its next key pair advertises `GetNextCACert` in GetCACaps (§3.5.2) and
answers `GET ?operation=GetNextCACert` with Content-Type `application/x-x509-next-ca-cert`: a
SignedData "signed by the current CA (or RA) signing key" (§4.7.1) whose content is a
degenerate certificates-only SignedData (§3.4) holding the new CA certificate (and any new RA
certificates). The signature is the whole point: it is what lets a client take a certificate
it has never authenticated out of band. So `parse_next_ca_certificates` verifies it with the
CA certificate the client already trusts before it reads anything inside, and refuses
anything else (another signer, a bad signature, no CA certificate inside, the current CA
certificate again) with a `ScepError`. (We accept the CA's own key only, not an RA's: the
device holds no RA for this, and the brief of issue 17 asks for the current CA key.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.scep._der import contained
from engine.scep.algorithms import DigestAlgorithm
from engine.scep.cacert import CACertificates, identify_roles
from engine.scep.cms import OID_DATA, certs_only, read_certs_only, read_signed, sign, verify_signed
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import Credential

__all__ = ["NEXT_CA_CERT_CONTENT_TYPE", "build_next_ca_certificates",
           "parse_next_ca_certificates"]

NEXT_CA_CERT_CONTENT_TYPE = "application/x-x509-next-ca-cert"
WHAT = "GetNextCACert"


def build_next_ca_certificates(
    certificates: Sequence[x509.Certificate], *, signer: Credential,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256, signing_time: dt.datetime | None = None,
) -> tuple[str, bytes]:
    """The CA's GetNextCACert answer: (Content-Type, body), `certificates` (the next CA's,
    then any new RA certificates) signed by `signer`, the CURRENT CA key (§4.7.1)."""
    if not certificates:
        raise ValueError("GetNextCACert carries at least the next CA certificate")
    body = sign(certs_only(certificates), signer=signer, digest=digest, attributes=(),
                certificates=[signer.certificate], signing_time=signing_time)
    return NEXT_CA_CERT_CONTENT_TYPE, body


def parse_next_ca_certificates(content_type: str, body: bytes,
                               current_ca: x509.Certificate) -> CACertificates:
    """The next CA certificate (and RAs) from a GetNextCACert answer, once its signature
    verified with `current_ca`, the CA certificate the client trusts now."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype != NEXT_CA_CERT_CONTENT_TYPE:
        raise ScepError(ScepErrorReason.WRONG_CONTENT_TYPE,
                        f"{WHAT}: unexpected Content-Type {content_type!r}")
    msg = read_signed(body, WHAT)
    # RFC 8894 §4.7.1: the response is "signed by the current CA (or RA) signing key": checked
    # with the current CA's key, whatever certificate the message names, before anything in
    # it is read.
    verify_signed(msg, current_ca, WHAT)
    if msg.content_type != OID_DATA or not msg.content:
        raise ScepError(ScepErrorReason.WRONG_CONTENT_TYPE,
                        f"{WHAT}: the signed content is not a certificates-only SignedData")
    certs, _ = read_certs_only(msg.content, f"{WHAT} certificates")
    found = identify_roles(certs, WHAT)
    with contained(WHAT):
        same = (found.ca.public_bytes(serialization.Encoding.DER)
                == current_ca.public_bytes(serialization.Encoding.DER))
    if same:
        raise ScepError(ScepErrorReason.BAD_CA_CERTIFICATES,
                        f"{WHAT}: the answer holds the current CA certificate, not a next one")
    return found
