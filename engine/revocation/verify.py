"""The checks a fetched CRL must pass before it is cached (RFC 5280 §5.2, §6.3.3).

`verify_crl(data, issuer, cert, now=...)` takes the bytes a source gave (DER, or PEM), the
certificate of the CRL's issuer (whose key must have signed it) and the certificate whose
status is wanted (for the CRL's scope), and returns a `VerifiedCrl` or raises `CrlRefused`
naming the first rule broken:

1. it parses as a CRL;
2. its issuer is the certificate's issuer (§6.3.3 (b)(1): "verify that the CRL issuer
   matches the certificate issuer"; indirect CRLs are not used);
3. §6.3.3 (f): "If a key usage extension is present in the CRL issuer's certificate, verify
   that the cRLSign bit is set.";
4. its signature verifies with the issuer's public key (§6.3.3 (g));
5. no critical extension we cannot process: §5.2 "If a CRL contains a critical extension that
   the application cannot process, then the application MUST NOT use that CRL to determine
   the status of certificates." (and §5.3 for entry extensions, checked by the index);
6. it is a complete CRL: a delta CRL (deltaCRLIndicator, §5.2.4) is never used as one, nor
   is a CRL of only some reasons (IDP onlySomeReasons) or an indirect one;
7. its scope covers the certificate (§5.2.5 issuing distribution point, §6.3.3 (b)(2)):
   distribution point names shared with the certificate's CRL distribution points,
   onlyContainsUserCerts / onlyContainsCACerts / onlyContainsAttributeCerts;
8. its thisUpdate is not after `now` (the engine clock at the fetch) by more than the clock
   skew certificates are allowed (engine/pki.py CLOCK_SKEW_US, 5 minutes: a CA whose clock
   runs a little ahead signs a CRL the router must take at once, as it takes the certificate
   that CA just issued): a CRL issued further "in the future" is not valid yet (OpenSSL's
   CRL_NOT_YET_VALID), and cached it would outrank every CRL issued until then (the cache
   orders by thisUpdate when a CRL has no number).

Whether it is still fresh (nextUpdate) is not a rule of acceptance: a verified CRL past its
nextUpdate is `VerifiedCrl.expired_at(now)`, which the fetch weighs against other sources.
A CRL without nextUpdate is taken as past it from the start, as the cache judges it
(`CachedCrl.fresh_at`; RFC 5280 §5.1.2.5: "Conforming CRL issuers MUST include the
nextUpdate time in all CRLs"): its revocations count, it never makes a certificate good.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtensionOID

from engine.keyformats import Encoding
from engine.messages import printable_text
from engine.pki import CLOCK_SKEW_US
from engine.revocation.cache import cdp_uris, is_ca, spki_sha256
from engine.revocation.index import CrlIndex, CrlShape, build_index
from engine.revocation.ldap import CrlValues

# The CRL extensions we process (or that change nothing when critical and understood).
_KNOWN = {
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.CRL_NUMBER, ExtensionOID.DELTA_CRL_INDICATOR,
    ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.FRESHEST_CRL,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
}


T = TypeVar("T")


class CrlRefused(ValueError):
    """A fetched CRL that must not be used; the text says why (no `%`, no final period)."""


def newest_verified(answer: bytes | CrlValues, verify: Callable[[bytes], T]) -> T:
    """`verify` of the first of `answer`'s values it accepts: an LDAP entry's values are
    tried newest first (engine.revocation.ldap), so a bogus value ranked above the genuine
    CRL is passed over; an http or SCEP answer is one value. When every value is refused,
    the refusal of the newest is raised (naming how many values there were)."""
    if isinstance(answer, bytes):
        return verify(answer)
    refusal: CrlRefused | None = None
    for value in answer.values:
        try:
            return verify(value)
        except CrlRefused as e:
            refusal = refusal or e
    if refusal is None:
        raise CrlRefused("the entry holds no CRL value")
    if len(answer.values) == 1:
        raise refusal
    raise CrlRefused(f"none of the entry's {len(answer.values)} CRL values is usable; "
                     f"the newest: {refusal}")


@dataclass(frozen=True, slots=True)
class VerifiedCrl:
    der: bytes
    sha256: str
    issuer: bytes  # DER of the issuer Name
    issuer_text: str
    authority_key_id: bytes | None
    number: int | None
    this_update: int  # µs
    next_update: int | None  # µs
    idp_uris: tuple[str, ...]
    only: str  # "user", "ca" or ""
    verified_with: str
    index: CrlIndex

    def expired_at(self, now: int) -> bool:
        """Past its nextUpdate at `now`, or without one (never fresh: see the docstring)."""
        return self.next_update is None or now >= self.next_update


def _us(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


# What cryptography raises on a malformed CRL (InvalidVersion, DuplicateExtension and
# UnsupportedGeneralNameType are not ValueErrors; a bad attribute type is a TypeError).
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
                 x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


_PEM_CRL = b"-----BEGIN X509 CRL-----"
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """The CRL in `data` (PEM or DER), its issuer, times, signature algorithm and extensions
    read here: cryptography parses them lazily, so a CRL that loads can still fail when a
    field is first read, and bytes from a CDP must be refused, never fail a caller later.
    (The revoked entries are read by engine.revocation.index's walker.)"""
    try:
        if not data.lstrip().startswith(b"\x30") and b"-----BEGIN" in data:
            # PEM may have text around its block (RFC 7468 §2: `openssl crl -text` output)
            at = data.find(_PEM_CRL)
            crl = x509.load_pem_x509_crl(data[at:] if at > 0 else data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError:  # not even the outer shape of a CRL
        raise CrlRefused(f"the answer is not a CRL{_instead(data)}") from None
    except _PARSE_ERRORS as e:
        raise CrlRefused(f"the answer is not a CRL ({_reason(e)})") from None
    try:
        _ = crl.issuer.rfc4514_string(), crl.issuer.public_bytes()
        _ = crl.last_update_utc, crl.next_update_utc, crl.signature_algorithm_oid
        _ = [ext.value for ext in crl.extensions]
    except _PARSE_ERRORS as e:
        raise CrlRefused(f"the answer is not a CRL ({_reason(e)})") from None
    return crl


def _instead(data: bytes) -> str:
    """What the answer is, when it is a certificate or another PEM block instead: a CDP url
    that names the CA's certificate file (`ca.crt` for `ca.crl`) is an operator's common
    slip."""
    label = _PEM_LABEL.search(data)
    if label is not None:
        return "" if label.group(1) == b"X509 CRL" else f" (it is a PEM {label.group(1).decode()})"
    try:
        x509.load_der_x509_certificate(data)
    except _PARSE_ERRORS:
        return ""
    return " (it is a DER certificate)"


def _reason(e: Exception) -> str:
    """The parser's complaint in a few words (not its internal structures)."""
    text = str(e).split("\n")[0]
    if not text or "ParseError" in text or len(text) > 80:
        return f"malformed DER ({type(e).__name__})"
    return text


def verify_crl(data: bytes, issuer: x509.Certificate,
               cert: x509.Certificate | None = None, *, now: int | None = None) -> VerifiedCrl:
    """The CRL if it passes every rule of the module's list (rule 8 only when `now` is
    given), else CrlRefused."""
    crl = load_crl(data)
    der = data if data[:1] == b"\x30" else crl.public_bytes(Encoding.DER)  # PEM: stored as DER
    if crl.issuer != issuer.subject:
        raise CrlRefused(f"the CRL is issued by "
                         f"{printable_text(crl.issuer.rfc4514_string()) or '(empty)'}, "
                         f"not by {issuer.subject.rfc4514_string()}")
    _check_crl_sign(issuer)
    if not _signature_valid(crl, issuer):
        raise CrlRefused("the CRL's signature does not verify with the issuer's key")
    exts = _check_extensions(crl)
    idp_uris, only = _scope(exts, cert)
    this_update = _us(crl.last_update_utc)
    if now is not None and this_update > now + CLOCK_SKEW_US:
        raise CrlRefused(f"the CRL's thisUpdate ({crl.last_update_utc:%Y-%m-%d %H:%M:%S} UTC) "
                         "is in the future: it is not valid yet")
    try:
        index = build_index(der)
    except CrlShape as e:
        raise CrlRefused(f"the CRL's revoked list cannot be used: {e}") from None
    aki = exts.get(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    number = exts.get(ExtensionOID.CRL_NUMBER)
    return VerifiedCrl(
        der, hashlib.sha256(der).hexdigest(), crl.issuer.public_bytes(),
        crl.issuer.rfc4514_string(),
        aki.key_identifier if isinstance(aki, x509.AuthorityKeyIdentifier) else None,
        number.crl_number if isinstance(number, x509.CRLNumber) else None, this_update,
        None if crl.next_update_utc is None else _us(crl.next_update_utc),
        idp_uris, only, spki_sha256(issuer), index)


def _check_crl_sign(issuer: x509.Certificate) -> None:
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.crl_sign:
        raise CrlRefused("the issuer's certificate has a key usage without cRLSign "
                         "(RFC 5280 6.3.3 (f))")


def _signature_valid(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a key type that cannot sign CRLs
        return False


def _check_extensions(crl: x509.CertificateRevocationList) -> dict[x509.ObjectIdentifier,
                                                                   x509.ExtensionType]:
    try:
        extensions = crl.extensions
    except ValueError as e:
        raise CrlRefused(f"the CRL's extensions cannot be parsed ({e})") from None
    found: dict[x509.ObjectIdentifier, x509.ExtensionType] = {}
    for ext in extensions:
        if ext.critical and ext.oid not in _KNOWN:
            raise CrlRefused(f"the CRL has a critical extension we cannot process "
                             f"({ext.oid.dotted_string}; RFC 5280 5.2)")
        found[ext.oid] = ext.value
    if ExtensionOID.DELTA_CRL_INDICATOR in found:
        raise CrlRefused("the CRL is a delta CRL, not a complete one")
    return found


def _scope(exts: dict[x509.ObjectIdentifier, x509.ExtensionType],
           cert: x509.Certificate | None) -> tuple[tuple[str, ...], str]:
    idp = exts.get(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    if not isinstance(idp, x509.IssuingDistributionPoint):
        return (), ""
    if idp.indirect_crl:
        raise CrlRefused("the CRL is an indirect CRL, which is not used")
    if idp.only_some_reasons:
        raise CrlRefused("the CRL covers only some reasons, not a complete CRL")
    if idp.only_contains_attribute_certs:
        raise CrlRefused("the CRL covers only attribute certificates")
    uris = tuple(n.value for n in (idp.full_name or ())
                 if isinstance(n, x509.UniformResourceIdentifier))
    only = "user" if idp.only_contains_user_certs else "ca" if idp.only_contains_ca_certs else ""
    if cert is not None:
        if only == "user" and is_ca(cert):
            raise CrlRefused("the CRL covers only end-entity certificates (RFC 5280 5.2.5)")
        if only == "ca" and not is_ca(cert):
            raise CrlRefused("the CRL covers only CA certificates (RFC 5280 5.2.5)")
        if uris and not set(uris) & set(cdp_uris(cert)):
            raise CrlRefused("the CRL's issuing distribution point does not cover the "
                             "certificate (RFC 5280 5.2.5)")
    return uris, only
