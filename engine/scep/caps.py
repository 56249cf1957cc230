"""GetCACaps (RFC 8894 §3.5.2): parse a CA's capability list, choose algorithms, render ours.

The body is one keyword per line. Peers differ in details, so parsing tolerates CRLF, a
missing trailing newline (micromdm), blank lines, surrounding spaces and keyword case;
keywords we do not know are kept in `unknown`, never an error.

Algorithm choice (strongest advertised first):
- cipher: AES (AES-128-CBC, or AES-256-CBC on request) > DES3; with neither advertised, DES3
  (the floor legacy CAs that advertise nothing accept; we never *choose* single DES, though
  we read it);
- digest: SHA-512 > SHA-384 > SHA-256 > SHA-1; with none advertised, SHA-1.
"SCEPStandard" counts as AES + POSTPKIOperation + SHA-256 even when those keywords are missing
(RFC 8894 §3.5.2: "This keyword implies 'AES', 'POSTPKIOperation', and 'SHA-256'").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.scep.algorithms import ContentCipher, DigestAlgorithm
from engine.scep.errors import ScepError, ScepErrorReason

__all__ = ["Capabilities", "Capability", "parse_capabilities"]

CAPS_CONTENT_TYPE = "text/plain"


class Capability(enum.Enum):
    """GetCACaps keywords; value = canonical spelling on the wire."""

    AES = "AES"
    DES3 = "DES3"
    GET_NEXT_CA_CERT = "GetNextCACert"
    POST_PKI_OPERATION = "POSTPKIOperation"
    RENEWAL = "Renewal"
    SHA1 = "SHA-1"
    SHA256 = "SHA-256"
    SHA384 = "SHA-384"  # not in RFC 8894's registry, but deployed CAs and clients use it
    SHA512 = "SHA-512"
    SCEP_STANDARD = "SCEPStandard"
    UPDATE = "Update"  # pre-RFC draft spelling of Renewal support


_BY_FOLDED = {c.value.casefold(): c for c in Capability}
_IMPLIED_BY_STANDARD = frozenset({Capability.AES, Capability.POST_PKI_OPERATION,
                                  Capability.SHA256})
_DIGEST_PREFERENCE = (
    (Capability.SHA512, DigestAlgorithm.SHA512),
    (Capability.SHA384, DigestAlgorithm.SHA384),
    (Capability.SHA256, DigestAlgorithm.SHA256),
    (Capability.SHA1, DigestAlgorithm.SHA1),
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a SCEP CA says it supports."""

    keywords: frozenset[Capability] = frozenset()
    unknown: tuple[str, ...] = ()

    @classmethod
    def of(cls, *keywords: Capability) -> Capabilities:
        return cls(frozenset(keywords))

    def supports(self, capability: Capability) -> bool:
        """Advertised, directly or through SCEPStandard."""
        if capability in self.keywords:
            return True
        return Capability.SCEP_STANDARD in self.keywords and capability in _IMPLIED_BY_STANDARD

    @property
    def post_pki_operation(self) -> bool:
        return self.supports(Capability.POST_PKI_OPERATION)

    @property
    def renewal(self) -> bool:
        return self.supports(Capability.RENEWAL) or self.supports(Capability.UPDATE)

    def strongest_cipher(self, *, aes_256: bool = False) -> ContentCipher:
        if self.supports(Capability.AES):
            return ContentCipher.AES_256_CBC if aes_256 else ContentCipher.AES_128_CBC
        return ContentCipher.DES_EDE3_CBC  # advertised DES3, or the legacy floor

    def strongest_digest(self) -> DigestAlgorithm:
        for capability, digest in _DIGEST_PREFERENCE:
            if self.supports(capability):
                return digest
        return DigestAlgorithm.SHA1

    def render(self) -> bytes:
        """Our own GetCACaps body: one keyword per line, LF-terminated, stable order."""
        return "".join(f"{c.value}\n" for c in Capability if c in self.keywords).encode()


def parse_capabilities(body: bytes | str) -> Capabilities:
    """Parse a GetCACaps response body (bytes as received, or already-decoded text)."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise ScepError(ScepErrorReason.MALFORMED,
                            "GetCACaps: the body is not UTF-8 text") from None
    elif isinstance(body, str):
        text = body
    else:
        raise TypeError("GetCACaps body must be bytes or str")
    known: set[Capability] = set()
    unknown: list[str] = []
    for line in text.splitlines():
        word = line.strip()
        if not word:
            continue
        cap = _BY_FOLDED.get(word.casefold())
        if cap is not None:
            known.add(cap)
        elif word not in unknown:
            unknown.append(word)
    return Capabilities(frozenset(known), tuple(unknown))
