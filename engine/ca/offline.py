"""Requests carried to the CA by hand (`trustledger ca sign DIR --csr FILE`, issue 7 item 5).

A device with `enrollment terminal` prints its PKCS#10 request between
`-----BEGIN CERTIFICATE REQUEST-----` / `-----END CERTIFICATE REQUEST-----` lines; the
operator saves what the device printed (with or without the lines around it) and the CA signs
it without SCEP. `read_pasted_csr` finds the request in such a text (PEM, `NEW CERTIFICATE
REQUEST` too, bare base64, or a binary DER file); `verified_request` checks its signature
(RFC 2986 §3: the signature is the requester's proof of possession) and reduces it to what the
CA records. The challengePassword inside it is not needed offline (the operator who carried
the request is the authentication) and is dropped here: it never reaches the log.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from engine.ca.errors import CAError
from engine.ca.profile import requested_extensions
from engine.errors import Reason
from engine.pki import rfc4514
from engine.scep import ScepError, parse_csr

MAX_CSR_FILE = 64 * 1024

_PEM = re.compile(rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----(.*?)"
                  rb"-----END (NEW )?CERTIFICATE REQUEST-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class OfflineRequest:
    """A signature-checked PKCS#10 request, without its challenge password."""

    subject: bytes  # DER Name
    subject_text: str  # RFC 4514
    public_key: bytes  # DER SubjectPublicKeyInfo
    requested_extensions: bytes  # DER Extensions of the extensionRequest attribute, or b""


def read_pasted_csr(data: bytes) -> bytes:
    """The DER of the one PKCS#10 request in `data` (PEM block(s) anywhere in a text, bare
    base64, or DER). CAError(BAD_DATA) for anything else, or for more than one request."""
    if len(data) > MAX_CSR_FILE:
        raise CAError(Reason.BAD_DATA, f"the request file is larger than {MAX_CSR_FILE} bytes")
    blocks = _PEM.findall(data)
    if len(blocks) > 1:
        raise CAError(Reason.BAD_DATA, f"the file holds {len(blocks)} certificate requests "
                                       "(usage keys?); put each in its own file and sign them "
                                       "one at a time")
    if blocks:
        return _b64(blocks[0][1], "the BEGIN/END CERTIFICATE REQUEST block")
    if data[:1] == b"\x30":  # a DER SEQUENCE: binary, not text
        return data
    if b"-----BEGIN" in data:
        kind = data.split(b"-----BEGIN", 1)[1].split(b"-----", 1)[0].strip()
        raise CAError(Reason.BAD_DATA, f"the file holds a {kind.decode('ascii', 'replace')!s} "
                                       "block, not a CERTIFICATE REQUEST")
    return _b64(data, "the file")


def _b64(text: bytes, what: str) -> bytes:
    compact = b"".join(text.split())
    if not compact:
        raise CAError(Reason.BAD_DATA, f"{what} is empty: no certificate request")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CAError(Reason.BAD_DATA, f"{what} is not a base64 certificate request") from None


def verified_request(der: bytes) -> OfflineRequest:
    """Parse `der` as PKCS#10 and verify its self-signature; CAError(BAD_DATA) if it is not a
    request or the signature does not verify."""
    try:
        parsed = parse_csr(der)
    except ScepError as e:
        raise CAError(Reason.BAD_DATA, f"not a usable certificate request: {e.detail}") from None
    try:
        return request_of(parsed.csr, der, extensions=parsed.extension_request)
    except ValueError as e:
        raise CAError(Reason.BAD_DATA, f"not a usable certificate request: {e}") from None


def request_of(csr: x509.CertificateSigningRequest, der: bytes, *,
               extensions: bytes | None = None) -> OfflineRequest:
    """What the CA records of a parsed PKCS#10 (`der` is its encoding; `extensions` its
    extensionRequest's Extensions if already read, as `parse_csr` does). `cryptography` reads
    the subject and the key lazily and raises more than ValueError for some that the request
    parser let through (a subject attribute whose value is not a string: KeyError; a key of an
    algorithm it does not know: UnsupportedAlgorithm); all of them are a ValueError here."""
    try:
        return OfflineRequest(
            subject=csr.subject.public_bytes(),
            subject_text=rfc4514(csr.subject),
            public_key=csr.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            requested_extensions=requested_extensions(der) if extensions is None
            else extensions)
    except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as e:
        raise ValueError(f"its subject or public key cannot be read ({type(e).__name__}: "
                         f"{e})") from None
