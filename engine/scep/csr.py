"""PKCS#10 (RFC 2986) requests as SCEP carries them: challengePassword + extensionRequest.

`build_csr` makes the request a router sends: its subject (optionally with serialNumber
appended, as IOS `serial-number` does), SANs (dNSName, iPAddress) in an extensionRequest, and
the challenge password (RFC 2985 §5.4.1 DirectoryString; written as UTF8String). `parse_csr`
reads any such request, accepts the challenge as PrintableString, UTF8String, IA5String,
TeletexString, BMPString or UniversalString, and checks the proof-of-possession signature.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AttributeOID, NameOID

from engine.scep._der import contained, load
from engine.scep.algorithms import DigestAlgorithm
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import SigningKey

__all__ = ["CertificationRequest", "build_csr", "parse_csr"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def build_csr(
    private_key: SigningKey,
    subject: x509.Name,
    *,
    challenge_password: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPAddress] = (),
    serial_number: str | None = None,
    extensions: Sequence[x509.Extension[x509.ExtensionType]] = (),
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
) -> x509.CertificateSigningRequest:
    """A signed PKCS#10 request for `private_key`'s public key."""
    if serial_number is not None:
        subject = x509.Name([
            *subject.rdns,
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number)]
            ),
        ])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(a) for a in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    if challenge_password is not None:
        builder = builder.add_attribute(
            AttributeOID.CHALLENGE_PASSWORD, challenge_password.encode("utf-8")
        )
    return builder.sign(private_key, digest.x509_hash_algorithm())


@dataclass(frozen=True, slots=True)
class CertificationRequest:
    """A parsed, signature-checked PKCS#10 request."""

    csr: x509.CertificateSigningRequest
    challenge_password: str | None

    @property
    def der(self) -> bytes:
        return self.csr.public_bytes(serialization.Encoding.DER)

    @property
    def subject(self) -> x509.Name:
        return self.csr.subject

    @property
    def dns_names(self) -> tuple[str, ...]:
        san = self._san()
        return tuple(san.get_values_for_type(x509.DNSName)) if san else ()

    @property
    def ip_addresses(self) -> tuple[IPAddress, ...]:
        san = self._san()
        if san is None:
            return ()
        return tuple(a for a in san.get_values_for_type(x509.IPAddress)
                     if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address))

    def _san(self) -> x509.SubjectAlternativeName | None:
        try:
            return self.csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None


def parse_csr(der: bytes) -> CertificationRequest:
    """Parse a DER PKCS#10 request, extract its challenge password, verify its signature."""
    info = load(asn1_csr.CertificationRequest, der, "PKCS#10 request")
    with contained("PKCS#10 request"):
        challenge: str | None = None
        for attr in info["certification_request_info"]["attributes"]:
            if attr["type"].dotted != AttributeOID.CHALLENGE_PASSWORD.dotted_string:
                continue
            values = list(attr["values"])
            if challenge is not None or len(values) != 1:
                raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                                "PKCS#10 request: challengePassword must occur once, "
                                "with one value")
            value = values[0].native
            if not isinstance(value, str):
                raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                                "PKCS#10 request: challengePassword is not a string")
            challenge = value
        csr = x509.load_der_x509_csr(bytes(der))
        if not csr.is_signature_valid:
            raise ScepError(ScepErrorReason.BAD_CSR_SIGNATURE,
                            "PKCS#10 request: the signature does not verify "
                            "(no proof of possession)")
        _ = csr.extensions  # parse now: a malformed extensionRequest is the peer's fault
        return CertificationRequest(csr=csr, challenge_password=challenge)
