"""`Credential` (a certificate and its private key) and the self-signed signer certificate.

A SCEP client signs its first request with a throwaway self-signed certificate for the key it
wants certified (RFC 8894 §2.3); the CA signs CertReps with its own (or an RA's) credential.
Time, serial number and subject come in as parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.scep.algorithms import DigestAlgorithm

__all__ = ["Credential", "SigningKey", "build_self_signed_certificate"]

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _spki(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate and the private key for its public key (checked on construction)."""

    certificate: x509.Certificate
    private_key: SigningKey

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("only RSA and EC private keys are supported")
        cert_key = self.certificate.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or _spki(
            cert_key
        ) != _spki(self.private_key.public_key()):
            raise ValueError("the private key does not belong to the certificate")


def build_self_signed_certificate(
    private_key: SigningKey,
    subject: x509.Name,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial_number: int,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
) -> x509.Certificate:
    """The transient signer certificate of a PKCSReq (RFC 8894 §2.3): self-signed, the
    key's own. KeyUsage digitalSignature + keyEncipherment so the CA may envelope back to it."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(private_key, rsa.RSAPrivateKey),
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(private_key, digest.x509_hash_algorithm())
