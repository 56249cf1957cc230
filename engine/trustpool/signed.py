"""PKCS#7 bundles: the certificates of a SignedData, and its signature checked when it has one.

Built on the SCEP core's CMS reader (engine.scep.cms): `read_certs_only` for the certificates,
`read_signed` + `verify_signed` for a signer (RFC 5652 §5.4 signed attributes, §11.1
contentType, §11.2 messageDigest). The signer must chain to an anchor the device already
trusts, through the bundle's own certificates if need be (never to a certificate the bundle
alone vouches for).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from asn1crypto import cms
from cryptography import x509

from engine.messages import printable_text
from engine.pki import issued_by
from engine.scep.cms import read_certs_only, read_signed, verify_signed
from engine.scep.errors import ScepError
from engine.trustpool.bundle import BundleRefused

MAX_PATH = 6  # certificates from the signer to its anchor, at most


def outer_problem(der: bytes, *, from_pem: bool = False) -> str | None:
    """Why `der` is no PKCS#7 ContentInfo at all, in our words (None when its outer shape is
    one; what is inside is read_pkcs7's to judge): not DER, DER cut short or with bytes after
    it, or DER of something else (one certificate, say). `from_pem`: `der` is a PEM block's
    body (so it did have a BEGIN line)."""
    if der[:1] != b"\x30":
        return "its body is not DER" if from_pem else "no BEGIN line, and not DER"
    end = _declared_end(der)
    if end is not None and end > len(der):
        return f"cut short: {len(der)} of the {end} bytes its DER declares"
    if end is not None and end < len(der):
        return f"{len(der) - end} bytes follow its DER"
    if _is_content_info(der):
        return None
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        return "DER, but not a PKCS#7 ContentInfo"
    return "one DER certificate, not a bundle of them"


def _is_content_info(der: bytes) -> bool:
    try:
        cms.ContentInfo.load(der, strict=True)["content_type"].dotted  # noqa: B018 (parses)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _declared_end(der: bytes) -> int | None:
    """Where the outer element's length says it ends (X.690 §8.1.3), or None when it has no
    definite length we read (indefinite BER, over four length octets): the parser decides."""
    first = der[1] if len(der) > 1 else 0x80
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        return None
    if len(der) < 2 + count:
        return 2 + count  # the length itself is cut
    return 2 + count + int.from_bytes(der[2:2 + count], "big")


def read_pkcs7(der: bytes, what: str, anchors: Sequence[x509.Certificate], now: int
               ) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """The bundle's certificates (the signer's excluded) and its verified signer, if signed."""
    try:
        certs, _crls = read_certs_only(der, what)
        signers = _signer_count(der)
    except ScepError as e:
        raise BundleRefused(f"{what} is not a PKCS#7 SignedData ({_plain(e.args[0])})") from e
    except (ValueError, TypeError, KeyError) as e:  # asn1crypto parses lazily
        raise BundleRefused(f"{what} is not a PKCS#7 SignedData (malformed DER)") from e
    if signers == 0:
        return list(certs), None
    try:
        msg = read_signed(der, what)
        signer = msg.included_signer(what)
        if signer is None:
            raise BundleRefused(f"{what} is signed, but the signer's certificate is not in it")
        verify_signed(msg, signer, what)
    except ScepError as e:
        raise BundleRefused(f"the signature of {what} does not verify ({e.args[0]})") from e
    except (ValueError, TypeError, KeyError) as e:
        raise BundleRefused(f"the signature of {what} does not verify (malformed)") from e
    _chain_to_anchor(signer, list(certs), anchors, now)
    return [c for c in certs if c != signer], signer


def _plain(text: str) -> str:
    """The SCEP layer's words without the ASN.1 parser's internal structures: `malformed
    (error parsing asn1 value: ParseError { ... location: [..., "Validity::not_before"] })`
    becomes `malformed DER at Validity::not_before`."""
    head, found, rest = text.partition("(error parsing asn1 value:")
    if not found:
        return text
    fields = re.findall(r'"([A-Za-z_:]+)"', rest)
    where = f" at {fields[-1]}" if fields else ""
    return f"{head.rstrip().removesuffix('malformed').rstrip()} malformed DER{where}".strip()


def _signer_count(der: bytes) -> int:
    info = cms.ContentInfo.load(der)
    return len(list(info["content"]["signer_infos"]))


def _chain_to_anchor(signer: x509.Certificate, bundle: list[x509.Certificate],
                     anchors: Sequence[x509.Certificate], now: int) -> None:
    subject = printable_text(signer.subject.rfc4514_string())  # the bundle's words
    if not _valid(signer, now):
        raise BundleRefused(f"the bundle's signer ({subject}) is outside its validity period")
    cert = signer
    for _ in range(MAX_PATH):
        if any(_same(cert, a) for a in anchors):
            return
        for issuer in (*anchors, *bundle):
            if issuer.subject == cert.issuer and issuer != cert and issued_by(cert, issuer):
                if not any(_same(issuer, a) for a in anchors) and not _valid(issuer, now):
                    continue
                cert = issuer
                break
        else:
            break
    raise BundleRefused(f"the bundle's signer ({subject}) does not chain to a certificate "
                        "of the trustpool (built-in or downloaded)")


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a == b or (a.subject == b.subject and a.public_key() == b.public_key())


def _valid(cert: x509.Certificate, now: int) -> bool:
    at = now / 1_000_000
    return cert.not_valid_before_utc.timestamp() <= at <= cert.not_valid_after_utc.timestamp()
