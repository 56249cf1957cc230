"""GetCACert (RFC 8894 §4.2): the CA certificate alone, or the CA with its RA certificates.

- `application/x-x509-ca-cert`: one DER certificate, the CA's (PEM tolerated on parse).
- `application/x-x509-ca-ra-cert`: a degenerate certs-only PKCS#7 with the CA and RA
  certificates (and possibly the CA's own chain).

Roles in a bundle: RA certificates are those issued (and signed) by the CA that are not
CA:TRUE. Among them, the RA *signing* certificate has KeyUsage digitalSignature and the RA
*encryption* certificate keyEncipherment (one RA certificate may be both, as may one without
KeyUsage). The CA is the CA:TRUE certificate that issued the RAs; without RAs, the CA:TRUE
certificate that issued no other CA certificate in the bundle (the bottom of the chain).
A client envelopes requests to `recipient` and checks CertReps against `signer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.pki import issued_by
from engine.scep._der import complete_certificate, contained
from engine.scep.cms import certs_only, read_certs_only
from engine.scep.errors import ScepError, ScepErrorReason

__all__ = [
    "CA_CERT_CONTENT_TYPE",
    "CA_RA_CERT_CONTENT_TYPE",
    "CACertificates",
    "build_ca_certificates",
    "parse_ca_certificates",
]

CA_CERT_CONTENT_TYPE = "application/x-x509-ca-cert"
CA_RA_CERT_CONTENT_TYPE = "application/x-x509-ca-ra-cert"
MAX_CA_CERTIFICATES = 20
"""More than any CA sends in one GetCACert answer (its own, its RAs', its chain)."""


@dataclass(frozen=True, slots=True)
class CACertificates:
    """A GetCACert answer, with each certificate's role worked out."""

    ca: x509.Certificate
    ra_signing: x509.Certificate | None = None
    ra_encryption: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()  # other certificates (the CA's issuers)

    @property
    def has_ra(self) -> bool:
        return self.ra_signing is not None or self.ra_encryption is not None

    @property
    def recipient(self) -> x509.Certificate:
        """Where a client envelopes its requests: the RA encryption certificate, else the CA."""
        return self.ra_encryption or self.ra_signing or self.ca

    @property
    def signer(self) -> x509.Certificate:
        """Who signs CertReps: the RA signing certificate, else the CA."""
        return self.ra_signing or self.ra_encryption or self.ca


def build_ca_certificates(
    ca: x509.Certificate,
    ra_certificates: Sequence[x509.Certificate] = (),
    chain: Sequence[x509.Certificate] = (),
) -> tuple[str, bytes]:
    """The server's GetCACert answer: (Content-Type, body)."""
    if not ra_certificates and not chain:
        return CA_CERT_CONTENT_TYPE, ca.public_bytes(serialization.Encoding.DER)
    return CA_RA_CERT_CONTENT_TYPE, certs_only([ca, *ra_certificates, *chain])


def parse_ca_certificates(content_type: str, body: bytes) -> CACertificates:
    """Parse a GetCACert answer given its Content-Type (parameters and case ignored)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == CA_CERT_CONTENT_TYPE:
        with contained("GetCACert certificate"):
            if body.lstrip().startswith(b"-----BEGIN"):
                cert = x509.load_pem_x509_certificate(body)
            else:
                cert = x509.load_der_x509_certificate(body)
        return CACertificates(ca=complete_certificate(cert, "GetCACert certificate"))
    if ctype == CA_RA_CERT_CONTENT_TYPE:
        certs, _ = read_certs_only(body, "GetCACert PKCS#7")
        return identify_roles(certs)
    raise ScepError(ScepErrorReason.WRONG_CONTENT_TYPE,
                    f"GetCACert: unexpected Content-Type {content_type!r}")


def identify_roles(certs: Sequence[x509.Certificate],
                   what: str = "GetCACert") -> CACertificates:
    """Work out CA, RA signing and RA encryption certificates in a bundle (of at most
    MAX_CA_CERTIFICATES: telling the CA checks a signature per pair of them); `what` names
    the answer in a refusal (GetCACert or GetNextCACert)."""
    if len(certs) > MAX_CA_CERTIFICATES:
        raise ScepError(ScepErrorReason.BAD_CA_CERTIFICATES,
                        f"{what}: {len(certs)} certificates; a CA sends its own, its RAs' "
                        f"and its chain (at most {MAX_CA_CERTIFICATES})")
    with contained(f"{what} certificates"):
        cas = [c for c in certs if _is_ca(c)]
        others = [c for c in certs if not _is_ca(c)]
        ras: list[x509.Certificate] = []
        issuer: x509.Certificate | None = None
        for ca in cas:
            issued = [c for c in others if issued_by(c, ca)]
            if issued:
                if issuer is not None:
                    raise ScepError(ScepErrorReason.BAD_CA_CERTIFICATES,
                                    f"{what}: RA certificates from more than one CA")
                issuer, ras = ca, issued
        if issuer is None:
            bottom = [c for c in cas if not any(issued_by(o, c) for o in cas if o is not c)]
            if len(bottom) != 1:
                raise ScepError(ScepErrorReason.BAD_CA_CERTIFICATES,
                                f"{what}: cannot tell the CA among {len(cas)} CA "
                                "certificates")
            issuer = bottom[0]
        signing = _pick(ras, digital_signature=True)
        encryption = _pick(ras, digital_signature=False)
        chain = tuple(c for c in certs if c is not issuer and c not in ras)
        return CACertificates(ca=issuer, ra_signing=signing, ra_encryption=encryption,
                              chain=chain)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _usage(cert: x509.Certificate) -> tuple[bool, bool]:
    """(digitalSignature, keyEncipherment); a certificate without KeyUsage may do both."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True, True
    return ku.digital_signature, ku.key_encipherment


def _pick(ras: Sequence[x509.Certificate], *, digital_signature: bool) -> x509.Certificate | None:
    """The RA certificate for one role: prefer a dedicated one, then a dual-use one."""
    index = 0 if digital_signature else 1
    able = [c for c in ras if _usage(c)[index]]
    dedicated = [c for c in able if not _usage(c)[1 - index]]
    chosen = dedicated or able
    return chosen[0] if chosen else None
