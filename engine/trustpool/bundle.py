"""CA bundles: what a downloaded file holds, checked before anything is recorded. Pure.

Formats (the reference's "CA Certificate Bundling"): a PKCS#7 SignedData (RFC 5652 §5) in DER
or PEM (`-----BEGIN PKCS7-----`), either degenerate (certificates only, no signers: what
`openssl crl2pkcs7` makes) or signed; or concatenated PEM certificates.

A signed bundle's signature must verify (RFC 5652 §5.4 over the signed attributes; §11.2 the
messageDigest), and the signer's certificate must chain, through certificates of the bundle,
to a certificate the device already trusts (the built-ins and the pool, usable now): else the
bundle is refused. The signer's own certificate signs the bundle, it is not part of it. An
unsigned bundle is accepted; the caller says so.

Refused, whole: more than MAX_BUNDLE bytes or MAX_CERTIFICATES certificates (a bundle is a
few hundred roots; every validation whose issuer name matches tries each pool certificate of
that name, so a pool of thousands from a hostile server would make each peer's validation
cost seconds), no certificate, garbage or truncated DER/PEM, a
certificate that is not a CA (RFC 5280 §4.2.1.9: cA TRUE; or an X.509 v1 self-issued root,
which predates the extension), a signature that does not verify. Kept: certificates outside
their validity (shown as such, never an anchor while invalid). Two certificates with the same
issuer, subject and public key (one CA certificate issued again): the later-expiring one is
kept, and a note says so. The same names with another key are another CA (a CA that re-keyed
keeps its name, and what its old key issued still chains only to the old certificate): both
are kept.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from engine.errors import PeerError, PeerReason, TrustledgerError
from engine.keyformats import Encoding
from engine.messages import plural, printable_text
from engine.pki import load_certificate, spki
from engine.trustpool.pool import quiet

MAX_BUNDLE = 10 * 1024 * 1024  # bytes: a larger download is refused
MAX_CERTIFICATES = 1000  # a bundle holding more is refused (Mozilla's holds ~150)
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


class BundleRefused(PeerError):
    """The bundle's source (a server, a file) gave nothing usable: `cause` says why (a
    sentence without `%`). The runtime throws it into the handler at its `yield FetchBundle`."""

    def __init__(self, cause: str) -> None:
        super().__init__(PeerReason.BAD_ANSWER, cause)
        self.cause = cause


@dataclass(frozen=True)
class Bundle:
    certificates: tuple[x509.Certificate, ...]  # CA certificates, duplicates dropped
    ders: tuple[bytes, ...]
    signature: str  # "unsigned" | "signed by <subject>"
    notes: tuple[str, ...]


def parse_bundle(data: bytes, anchors: Sequence[x509.Certificate], now: int) -> Bundle:
    """The bundle in `data`, checked (see the module docstring); `anchors` are what a
    signature's signer must chain to, `now` (µs) the time its certificate must be valid at."""
    with quiet():
        return _parse(data, anchors, now)


def _parse(data: bytes, anchors: Sequence[x509.Certificate], now: int) -> Bundle:
    if len(data) > MAX_BUNDLE:
        raise BundleRefused(f"the bundle is larger than {MAX_BUNDLE // (1024 * 1024)} MB")
    if not data.strip():
        raise BundleRefused("the bundle is empty")
    # PEM may carry explanatory text around its blocks (RFC 7468 §2), as certifi's and
    # most distributions' bundles do ("# Issuer: ..." lines); DER starts with a SEQUENCE.
    if not data.lstrip().startswith(b"\x30") and b"-----BEGIN" in data:
        certs, signer = _from_pem(data, anchors, now)
    else:
        certs, signer = _from_pkcs7(data, "the bundle", "neither a PEM bundle nor a PKCS#7 "
                                    "DER bundle", anchors, now)
    if not certs:
        raise BundleRefused("the bundle holds no certificate")
    _check_count(len(certs))
    for n, cert in enumerate(certs, 1):
        if not _is_ca(cert):
            raise BundleRefused(f"certificate {n} of the bundle ({_name(cert)})"
                                " is not a CA certificate (basicConstraints cA is not TRUE)")
    kept, notes = _without_duplicates(certs)
    signature = "unsigned" if signer is None else f"signed by {_name(signer)}"
    return Bundle(tuple(kept), tuple(c.public_bytes(Encoding.DER) for c in kept), signature,
                  tuple(notes))


def _from_pem(data: bytes, anchors: Sequence[x509.Certificate], now: int
              ) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    blocks = _PEM.findall(data)
    if not blocks:
        raise BundleRefused("the PEM bundle has no complete BEGIN/END block (truncated?)")
    begins = data.count(b"-----BEGIN")
    if begins != len(blocks):
        # A download cut short keeps its complete blocks and loses the rest: never a pool
        # of whatever happened to arrive.
        raise BundleRefused(f"the PEM bundle has {plural(begins, 'BEGIN line')} but "
                            f"{plural(len(blocks), 'complete BEGIN/END block')} (truncated?)")
    if len(blocks) == 1 and blocks[0][0] in (b"PKCS7", b"CMS"):
        return _from_pkcs7(_base64(blocks[0][1], "PKCS7 block"), "the PEM PKCS#7 bundle",
                           "not a PKCS#7 SignedData", anchors, now, from_pem=True)
    _check_count(len(blocks))  # before any block is decoded
    certs = []
    for n, (label, body) in enumerate(blocks, 1):
        if label not in (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"):
            raise BundleRefused(f"PEM block {n} is a {label.decode()}, not a CERTIFICATE")
        certs.append(_load(_base64(body, f"PEM block {n}"), f"PEM certificate {n}"))
    return certs, None


def _check_count(n: int) -> None:
    if n > MAX_CERTIFICATES:
        raise BundleRefused(f"the bundle holds {n} certificates; a trustpool bundle may hold "
                            f"at most {MAX_CERTIFICATES}")


def _base64(body: bytes, what: str) -> bytes:
    text = b"".join(line.strip() for line in body.splitlines()
                    if line.strip() and b":" not in line)  # RFC 1421 headers, if any
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BundleRefused(f"{what} is not valid base64 ({e})") from e


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        return load_certificate(der, what)
    except TrustledgerError as e:
        raise BundleRefused(e.text.rstrip(".")) from e


def _from_pkcs7(der: bytes, what: str, not_a: str, anchors: Sequence[x509.Certificate],
                now: int, *, from_pem: bool = False
                ) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """The PKCS#7 bundle `what` in `der`; bytes whose outer shape is no PKCS#7 at all are
    refused in our words (`what` is `not_a`: why), not the ASN.1 parser's."""
    from engine.trustpool.signed import outer_problem, read_pkcs7

    problem = outer_problem(der, from_pem=from_pem)
    if problem is not None:
        raise BundleRefused(f"{what} is {not_a} ({problem})")
    return read_pkcs7(der, what, anchors, now)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version is x509.Version.v1 and cert.issuer == cert.subject


def _without_duplicates(certs: list[x509.Certificate]) -> tuple[list[x509.Certificate],
                                                                 list[str]]:
    """Keep, for each (issuer, subject, key), the certificate expiring last (the first of
    equals)."""
    best: dict[tuple[bytes, bytes, bytes], x509.Certificate] = {}
    notes = []
    for cert in certs:
        # (both loaders, PEM and PKCS#7, already read each key: it parses)
        key = (cert.issuer.public_bytes(), cert.subject.public_bytes(), spki(cert))
        have = best.get(key)
        if have is None:
            best[key] = cert
            continue
        keep, drop = ((cert, have) if cert.not_valid_after_utc > have.not_valid_after_utc
                      else (have, cert))
        best[key] = keep
        notes.append(f"duplicate {_name(cert)}: {_kept(keep, drop)}")
    order = {id(c): n for n, c in enumerate(certs)}
    return sorted(best.values(), key=lambda c: order[id(c)]), notes


def _kept(keep: x509.Certificate, drop: x509.Certificate) -> str:
    """Which of two certificates of one CA (same names and key) was kept, in words."""
    if keep == drop:  # byte for byte (cryptography compares the DER)
        return "the same certificate twice, kept once"
    if keep.not_valid_after_utc == drop.not_valid_after_utc:
        return (f"two certificates expiring {keep.not_valid_after_utc:%Y-%m-%d}, kept the "
                "first")
    return (f"kept the certificate expiring {keep.not_valid_after_utc:%Y-%m-%d}, dropped the "
            f"one expiring {drop.not_valid_after_utc:%Y-%m-%d}")


def _name(cert: x509.Certificate) -> str:
    """The certificate's subject as the bundle's messages say it (its server chose it)."""
    return printable_text(cert.subject.rfc4514_string())
