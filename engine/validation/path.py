"""Building and checking a peer's certification path (RFC 5280 §6) at an explicit moment, and
the checks a router adds for the certificate's purpose and the peer's name.

Path building and the RFC 5280 checks are cryptography's `x509.verification` (Rust): the
anchor that `find_anchor`'s rule chose is the store's only certificate, so the path ends in
the anchor whose `crl optional` applies; signatures, validity at `at` (the anchor's too),
basicConstraints (cA, pathLenConstraint), name constraints and unknown critical extensions
are its. It is driven through `build_client_verifier` (no name check) with extension
policies of our own: the CA policy requires basicConstraints (RFC 5280 §4.2.1.9: "Conforming
CAs MUST include this extension in all CA certificates that contain public keys used to
validate digital signatures on certificates and MUST mark the extension as critical in such
certificates"), and otherwise neither policy imposes the Web PKI's profile (no
subjectAltName, AKI or EKU required of a router's peers).

What cryptography does not express, done here, in Python, on the path it built:
- keyUsage of issuers: with these policies it does not look at keyUsage; RFC 5280 §4.2.1.3:
  "If the keyUsage extension is present, then the subject public key MUST NOT be used to
  verify signatures on certificates or CRLs unless the corresponding keyCertSign or cRLSign
  bit is set". An issuer whose keyUsage lacks keyCertSign is KEY_USAGE.
- the peer's certificate is an end entity: a CA certificate (basicConstraints cA) given as
  the peer's own (or a chain given CA first) is BAD_BASIC_CONSTRAINTS, for every purpose;
- the purpose (its EKU rule is clientAuth or serverAuth only):
  ike: RFC 4945 §5.1.3.12: "If no EKU extension, continue. If EKU present AND contains either
  id-kp-ipsecIKE or anyExtendedKeyUsage, continue. Otherwise, reject cert." keyUsage, when
  present (§5.1.3.2): "at least one of the digitalSignature or the nonRepudiation bits in the
  KeyUsage extension MUST be set".
  tls-server / tls-client: an EKU, when present, must hold serverAuth / clientAuth or
  anyExtendedKeyUsage (RFC 5280 §4.2.1.12: "If the extension is present, then the
  certificate MUST only be used for one of the purposes indicated"); keyUsage, when present,
  digitalSignature (keyEncipherment also for a server: TLS 1.2 RSA key exchange).
  any: no EKU or keyUsage check.
- the peer's name, for every form an IKE or TLS peer uses: an IP address (iPAddress SAN), a
  user FQDN with `@` (rfc822Name SAN), a distinguished name with `=` (the subject, RFC 4514
  string), else a DNS name (dNSName SAN, case-insensitive; a `*.` wildcard as the whole
  leftmost label matches one label, for tls-* only). No fallback to the subject's CN
  (RFC 6125 §6.4.4 and RFC 4945 §3.1 both name the SAN).

Limits of cryptography's checks, kept (each is a reason code, not a silent pass):
- signature algorithms: RSA PKCS#1 v1.5 / PSS with SHA-256/384/512 and ECDSA P-256/384/521
  only; SHA-1 or MD5 signatures are WEAK_ALGORITHM (a router should not trust them either);
  an Ed25519/Ed448 or DSA issuer key is UNSUPPORTED_ALGORITHM.
- RSA keys under 2048 bits verify nothing (its fixed minimum_rsa_modulus): WEAK_KEY. The
  peer's own RSA key is held to the same 2048 bits, since it authenticates the session.
  (`crypto ca rsa 1024 disable` keeps weak pool certificates from being anchors at all;
  without it, a weak anchor is found and the path is then refused as WEAK_KEY.)
- at most MAX_DEPTH certificates below the anchor.

When cryptography refuses a path, `diagnose` finds the reason codes by walking the chain by
names and checking each rule in turn (only the refused pay for it); a refusal none of them
explains is INVALID_PATH, with cryptography's words in the verdict's detail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from engine.messages import printable_text
from engine.pki import issued_by
from engine.trustpool.anchor import same_key
from engine.validation.verdict import Code, Purpose

E = TypeVar("E", bound=x509.ExtensionType)

MAX_DEPTH = 8  # intermediates below the anchor
MIN_RSA_BITS = 2048
IPSEC_IKE = ObjectIdentifier("1.3.6.1.5.5.7.3.17")  # id-kp-ipsecIKE, RFC 4945 §5.1.3.12

_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None)
_EE_POLICY = ExtensionPolicy.permit_all()

_EKU_OF = {
    Purpose.IKE: IPSEC_IKE,
    Purpose.TLS_SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
    Purpose.TLS_CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True)
class PathResult:
    path: tuple[x509.Certificate, ...]  # leaf first, anchor last; () when none was built
    codes: tuple[Code, ...]
    detail: str


def at_datetime(at: int) -> datetime:
    return datetime.fromtimestamp(at / 1_000_000, UTC)


def check_path(chain: Sequence[x509.Certificate], anchor: x509.Certificate, store: Store,
               purpose: Purpose, at: int, name: str | None) -> PathResult:
    """The path from `chain[0]` (the peer's certificate) to `anchor` (the only certificate
    of `store`), checked at `at` (µs) for `purpose` and, when given, the peer's `name`."""
    leaf = chain[0]
    verifier = (PolicyBuilder().store(store).time(at_datetime(at)).max_chain_depth(MAX_DEPTH)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
                .build_client_verifier())
    try:
        path = tuple(verifier.verify(leaf, list(chain[1:])).chain)
    except VerificationError as e:
        codes, detail = diagnose(chain, anchor, at)
        if not codes:  # e.g. a name outside a CA's nameConstraints: cryptography's words say
            codes, detail = [Code.INVALID_PATH], _library_words(e)
        more = _leaf_problems(leaf, purpose, name)
        return PathResult((), _unique(codes + [c for c, _ in more]), detail)
    problems = _issuer_key_usage(path) + _leaf_problems(leaf, purpose, name)
    return PathResult(path, _unique([c for c, _ in problems]),
                      problems[0][1] if problems else "")


def _library_words(e: VerificationError) -> str:
    text = str(e).split(" (encountered processing")[0]
    return f"RFC 5280 path validation: {text}"


def _unique(codes: Sequence[Code]) -> tuple[Code, ...]:
    return tuple(dict.fromkeys(codes))


# -- what cryptography does not check ----------------------------------------------------------


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _issuer_key_usage(path: Sequence[x509.Certificate]) -> list[tuple[Code, str]]:
    out = []
    for cert in path[1:]:
        ku = _ext(cert, x509.KeyUsage)
        if ku is not None and not ku.value.key_cert_sign:
            out.append((Code.KEY_USAGE, f"{_who(cert)}: keyUsage without keyCertSign "
                                        "(RFC 5280 §4.2.1.3)"))
    return out


def _leaf_problems(leaf: x509.Certificate, purpose: Purpose,
                   name: str | None) -> list[tuple[Code, str]]:
    out = []
    bc = _ext(leaf, x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        out.append((Code.BAD_BASIC_CONSTRAINTS, f"{_who(leaf)} is a CA certificate "
                                                "(basicConstraints cA), not a peer's own "
                                                "certificate (is the chain leaf first?)"))
    key = _key(leaf)
    if key is None:
        out.append((Code.UNSUPPORTED_ALGORITHM, f"{_who(leaf)}: its key's algorithm "
                                                f"{leaf.public_key_algorithm_oid.dotted_string}"
                                                " is not one this validation knows"))
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        out.append((Code.WEAK_KEY, f"{_who(leaf)}: RSA key of {key.key_size} bits "
                                   f"(at least {MIN_RSA_BITS})"))
    if purpose is not Purpose.ANY:
        out += _eku(leaf, purpose) + _key_usage(leaf, purpose)
    if name is not None and not name_matches(leaf, name, purpose):
        out.append((Code.NAME_MISMATCH, f"{_who(leaf)} does not name {name!r}"))
    return out


def _eku(leaf: x509.Certificate, purpose: Purpose) -> list[tuple[Code, str]]:
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    if eku is None:
        return []
    usages = set(eku.value)
    if _EKU_OF[purpose] in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return []
    return [(Code.EKU_MISMATCH, f"{_who(leaf)}: extendedKeyUsage does not allow "
                                f"{purpose.value}")]


def _key_usage(leaf: x509.Certificate, purpose: Purpose) -> list[tuple[Code, str]]:
    ext = _ext(leaf, x509.KeyUsage)
    if ext is None:
        return []
    ku: x509.KeyUsage = ext.value
    if purpose is Purpose.IKE:
        ok = ku.digital_signature or ku.content_commitment  # nonRepudiation, RFC 4945
    elif purpose is Purpose.TLS_SERVER:
        ok = ku.digital_signature or ku.key_encipherment
    else:
        ok = ku.digital_signature
    if ok:
        return []
    return [(Code.KEY_USAGE, f"{_who(leaf)}: keyUsage does not allow {purpose.value}")]


def name_matches(leaf: x509.Certificate, name: str, purpose: Purpose) -> bool:
    """Whether the certificate names the peer `name` (see the module docstring)."""
    san_ext = _ext(leaf, x509.SubjectAlternativeName)
    san: x509.SubjectAlternativeName | None = None if san_ext is None else san_ext.value
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return san is not None and ip in san.get_values_for_type(x509.IPAddress)
    if "=" in name:
        try:
            return x509.Name.from_rfc4514_string(name) == leaf.subject
        except ValueError:
            return False
    if "@" in name:
        return san is not None and name.casefold() in {
            v.casefold() for v in san.get_values_for_type(x509.RFC822Name)}
    if san is None:
        return False
    wildcards = purpose in (Purpose.TLS_SERVER, Purpose.TLS_CLIENT)
    return any(_dns_matches(pattern, name, wildcards)
               for pattern in san.get_values_for_type(x509.DNSName))


def _dns_matches(pattern: str, name: str, wildcards: bool) -> bool:
    pattern, name = pattern.rstrip(".").casefold(), name.rstrip(".").casefold()
    if pattern == name:
        return True
    if not (wildcards and pattern.startswith("*.")):
        return False
    head, dot, rest = name.partition(".")
    return bool(head) and bool(dot) and rest == pattern[2:] and "." in rest


# -- diagnosis of a refused path ---------------------------------------------------------------


def diagnose(chain: Sequence[x509.Certificate], anchor: x509.Certificate,
             at: int) -> tuple[list[Code], str]:
    """Why cryptography refused: the chain walked by names from the leaf to `anchor`, each
    rule checked in turn. ([], "") when none explains it."""
    path, missing = _walk(chain, anchor)
    problems: list[tuple[Code, str]] = []
    if missing is _TOO_LONG:
        problems.append((Code.INVALID_PATH, f"the path from the peer's certificate to the "
                                            f"anchor is longer than {MAX_DEPTH} intermediates"))
    elif missing is not None:
        problems.append((Code.UNKNOWN_CA, f"no certificate of the chain issued {missing}"))
    for i, cert in enumerate(path):
        problems += _validity(cert, at) + _critical(cert)
        if i + 1 < len(path):
            problems += _link(cert, path[i + 1])
        if i > 0:
            problems += _ca_rules(cert, below=i - 1)
    problems += _issuer_key_usage(path)
    codes = [c for c, _ in problems]
    return codes, problems[0][1] if problems else ""


def _walk(chain: Sequence[x509.Certificate], anchor: x509.Certificate
          ) -> tuple[list[x509.Certificate], str | None]:
    """The path by names (an issuer whose signature verifies preferred); the subject whose
    issuer is missing, if the walk stops short of the anchor, or _TOO_LONG when it has not
    met the anchor after MAX_DEPTH intermediates."""
    path = [chain[0]]
    rest = list(chain[1:])
    while len(path) <= MAX_DEPTH + 1:
        cur = path[-1]
        if cur.subject == anchor.subject and same_key(cur, anchor):
            return path, None
        if cur.issuer == anchor.subject:
            path.append(anchor)
            return path, None
        found = [c for c in rest if c.subject == cur.issuer and c not in path]
        if not found:
            return path, _who(cur)
        path.append(next((c for c in found if issued_by(cur, c)), found[0]))
    return path, _TOO_LONG


_TOO_LONG = "(more than MAX_DEPTH intermediates)"  # _walk's answer, compared by identity


def _validity(cert: x509.Certificate, at: int) -> list[tuple[Code, str]]:
    when = at_datetime(at)
    if when < cert.not_valid_before_utc:
        return [(Code.NOT_YET_VALID, f"{_who(cert)} is not valid before "
                                     f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")]
    if when > cert.not_valid_after_utc:
        return [(Code.EXPIRED, f"{_who(cert)} expired "
                               f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")]
    return []


def _critical(cert: x509.Certificate) -> list[tuple[Code, str]]:
    return [(Code.UNKNOWN_CRITICAL_EXTENSION,
             f"{_who(cert)}: unknown critical extension {ext.oid.dotted_string}")
            for ext in cert.extensions
            if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension)]


_WEAK_HASHES = (hashes.SHA1, hashes.MD5)


def _link(cert: x509.Certificate, issuer: x509.Certificate) -> list[tuple[Code, str]]:
    """The signature on `cert` by `issuer`: the algorithms cryptography accepts, then the
    signature itself."""
    key = _key(issuer)
    if key is None or isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey,
                                       dsa.DSAPublicKey)):
        return [(Code.UNSUPPORTED_ALGORITHM, f"{_who(issuer)}: its key type signs nothing "
                                             "this validation accepts (RSA or ECDSA only)")]
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return [(Code.WEAK_KEY, f"{_who(issuer)}: RSA key of {key.key_size} bits "
                                f"(at least {MIN_RSA_BITS})")]
    try:
        digest = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return [(Code.UNSUPPORTED_ALGORITHM, f"{_who(cert)}: unknown signature algorithm "
                                             f"{cert.signature_algorithm_oid.dotted_string}")]
    if isinstance(digest, _WEAK_HASHES):
        return [(Code.WEAK_ALGORITHM, f"{_who(cert)} is signed with {digest.name.upper()}")]
    if issued_by(cert, issuer):
        return []
    if cert.issuer.public_bytes() != issuer.subject.public_bytes() and _signature_verifies(
            cert, issuer):
        return [(Code.INVALID_PATH, f"the issuer name in {_who(cert)} matches the subject of "
                                    f"{_who(issuer)} only when compared by RFC 5280 7.1 (the "
                                    "same values, encoded differently, e.g. UTF8String and "
                                    "PrintableString): the signature verifies, but this "
                                    "validator chains names that are encoded identically")]
    return [(Code.BAD_SIGNATURE, f"the signature on {_who(cert)} does not verify "
                                 f"with the key of {_who(issuer)}")]


def _signature_verifies(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The signature on `cert` checked with `issuer`'s key alone, the names not compared
    (cryptography's verify_directly_issued_by also requires byte-identical names)."""
    key = issuer.public_key()
    digest = cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and digest is not None:
            pad = cert.signature_algorithm_parameters
            if not isinstance(pad, padding.PKCS1v15 | padding.PSS):
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _ca_rules(cert: x509.Certificate, below: int) -> list[tuple[Code, str]]:
    """An issuer: a CA by basicConstraints, whose pathLenConstraint allows the `below`
    intermediates between it and the leaf (RFC 5280 §4.2.1.9)."""
    ext = _ext(cert, x509.BasicConstraints)
    if ext is None or not ext.value.ca:
        return [(Code.BAD_BASIC_CONSTRAINTS, f"{_who(cert)} issued a certificate but is not "
                                             "a CA (basicConstraints)")]
    limit = ext.value.path_length
    if limit is not None and below > limit:
        return [(Code.BAD_BASIC_CONSTRAINTS, f"{_who(cert)}: pathLenConstraint {limit} "
                                             f"exceeded ({below} intermediates below it)")]
    return []


def _key(cert: x509.Certificate) -> PublicKeyTypes | None:
    """The certificate's public key; None for an algorithm cryptography does not know (the
    chain's parse, engine.validation.chain, already refused a key that does not parse)."""
    try:
        return cert.public_key()
    except UnsupportedAlgorithm:
        return None


def _who(cert: x509.Certificate) -> str:
    return printable_text(cert.subject.rfc4514_string()) or f"serial {cert.serial_number:X}"
