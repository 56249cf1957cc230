"""Pure certificate checks (RFC 5280), with the time and the trust anchor as inputs."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from engine.errors import OperatorError, Reason, TrustledgerError
from engine.keyformats import Encoding, PublicFormat

UNSTRUCTURED_ADDRESS = x509.ObjectIdentifier("1.2.840.113549.1.9.8")
NAMES = {NameOID.UNSTRUCTURED_NAME: "unstructuredName", UNSTRUCTURED_ADDRESS: "unstructuredAddress",
         NameOID.SERIAL_NUMBER: "serialNumber"}
"""Labels for the attributes IOS puts in request subjects, which RFC 4514 has no names for."""


def rfc4514(name: x509.Name) -> str:
    """RFC 4514 text of a name, with IOS's unstructuredName/Address labels instead of OIDs."""
    return name.rfc4514_string(NAMES)


def parse_rfc4514(text: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(text, {v: k for k, v in NAMES.items()})


def bad(message: str) -> TrustledgerError:
    return OperatorError(Reason.BAD_DATA, message)


def load_certificate(der: bytes, what: str = "certificate") -> x509.Certificate:
    """Parse a DER certificate completely: cryptography parses names, extensions and the key
    lazily, so a certificate that loads can still fail later (a duplicated extension, an
    unknown key algorithm). Everything is touched here, so it fails here, as a `%` error."""
    try:
        cert = x509.load_der_x509_certificate(der)
        _ = cert.subject.rdns, cert.issuer.rdns, list(cert.extensions)
        key = cert.public_key()
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
            x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise bad(f"The {what} is not a valid X.509 certificate ({_reason(e)}).") from e
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise bad(f"The {what} has a {type(key).__name__.removesuffix('PublicKey')} key; "
                  "only RSA and ECDSA keys are supported.")
    return cert


def _reason(e: Exception) -> str:
    """A short reason an operator can read (not the parser's internal structures)."""
    text = str(e).split("\n")[0]
    if "ParseError" in text or len(text) > 80:
        return f"malformed DER ({type(e).__name__})"
    return text or type(e).__name__


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _at(now_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now_us / 1_000_000, dt.UTC)


def check_ca_certificate(cert: x509.Certificate, now_us: int) -> None:
    """A certificate offered as a trustpoint's CA: a CA (RFC 5280 §4.2.1.9: cA TRUE for
    certificate signers), and valid now."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = cert.issuer == cert.subject and cert.version is x509.Version.v1
    if not is_ca:
        raise bad("The certificate is not a CA certificate (basicConstraints cA is not TRUE).")
    check_validity(cert, now_us, "CA certificate")


def check_ca_signature(cert: x509.Certificate,
                       sent: Sequence[x509.Certificate] = ()) -> None:
    """The CA certificate's own signature, before the operator is asked to accept it.

    A certificate that claims to be self-issued (issuer == subject, RFC 5280 §6.1: a trust
    anchor, what GetCACert usually serves) must verify with its own key, or with the key of a
    certificate of the same name the CA sent alongside (a key rollover link). A subordinate CA
    (issuer != subject) is legitimate: if the CA sent certificates named as its issuer (the
    chain of a GetCACert PKCS#7), one of them must verify it; if it sent none, there is
    nothing to check it against here and the operator's fingerprint check decides."""
    issuers = [c for c in sent if c.subject == cert.issuer and c is not cert]
    self_issued = cert.issuer == cert.subject
    if self_issued:
        issuers.insert(0, cert)
    if not issuers or any(issued_by(cert, issuer) for issuer in issuers):
        return
    if self_issued:
        raise bad("The CA certificate claims to be self-signed, but its signature does not "
                  "verify with its own key: refused, nothing was stored.")
    raise bad(f"The CA certificate's signature does not verify with the key of its issuer "
              f"({rfc4514(cert.issuer)}) sent by the CA: refused, nothing was stored.")


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer` issued `cert`: the names match and its key verifies the signature (RFC 5280
    §6.1.3 (a)(1), (a)(4)); any failure, of either, is False."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


CLOCK_SKEW_US = 5 * 60 * 1_000_000
"""How far ahead of our clock a just-issued certificate's notBefore may be: a CA stamps it
with its own `now` (micromdm does, to the second), and two clocks never agree exactly."""


def check_validity(cert: x509.Certificate, now_us: int, what: str, *,
                   skew_us: int = 0) -> None:
    now = _at(now_us + skew_us)
    if now < cert.not_valid_before_utc:
        raise bad(f"The {what} is not valid yet (valid from "
                  f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC).")
    if _at(now_us) > cert.not_valid_after_utc:
        raise bad(f"The {what} has expired ({cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC).")


def check_issued_by(cert: x509.Certificate, ca: x509.Certificate, what: str) -> None:
    """RFC 5280 §6.1.3: the issuer name matches and the CA's key verifies the signature."""
    try:
        cert.verify_directly_issued_by(ca)
    except InvalidSignature as e:
        raise bad(f"The {what} was not issued by the trustpoint's CA (its signature does not "
                  "verify with the CA's key).") from e
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise bad(f"The {what} was not issued by the trustpoint's CA ({_reason(e)}).") from e


def check_router_certificate(der: bytes, public_key: bytes, ca_der: bytes,
                             now_us: int) -> x509.Certificate:
    """A certificate the CA returned for one of our key pairs (SCEP CertRep, `crypto ca
    import`): ours, from our CA, an end-entity certificate, valid now. What the CA chose
    for the subject and the extensions otherwise is its policy, not checked."""
    cert = load_certificate(der)
    check_issued_for(cert, public_key, ca_der, "certificate")
    check_validity(cert, now_us, "certificate", skew_us=CLOCK_SKEW_US)
    return cert


def check_issued_for(cert: x509.Certificate, public_key: bytes, ca_der: bytes,
                     what: str) -> None:
    """What makes `cert` the router's own, whenever it is to be valid (enrollment and
    renewal alike): for `public_key`, issued by the CA certificate `ca_der`, an end-entity
    certificate, with a validity period that is a period."""
    if spki(cert) != public_key:
        raise bad(f"The {what} is for another key, not the trustpoint's key pair.")
    check_issued_by(cert, load_certificate(ca_der, "CA certificate"), what)
    check_end_entity(cert, what)
    check_period(cert, what)


def check_end_entity(cert: x509.Certificate, what: str) -> None:
    """A certificate issued for a router's key pair must not be a CA certificate: RFC 5280
    §4.2.1.9, cA TRUE says its key may verify certificate signatures, so the router (or
    whoever holds its key) would issue certificates that chain to the trustpoint's CA. The
    request asked for no such thing (an end-entity certificate for the router's identity);
    a CA that grants it is broken or hostile. Without the extension, or with cA FALSE, the
    key MUST NOT verify certificate signatures (§4.2.1.9): an end-entity certificate."""
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return
    if is_ca:
        raise bad(f"The {what} is a CA certificate (basicConstraints cA is TRUE), not the "
                  "end-entity certificate requested for the trustpoint's key pair.")


def check_period(cert: x509.Certificate, what: str) -> None:
    """RFC 5280 §4.1.2.5: the validity period is notBefore through notAfter; one that ends
    before it begins is valid at no time (a renewal would hold it until it begins, then
    install it expired)."""
    begins, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
    if ends < begins:
        raise bad(f"The {what} ends before it begins (valid from "
                  f"{begins:%Y-%m-%d %H:%M:%S} to {ends:%Y-%m-%d %H:%M:%S} UTC): it is valid "
                  "at no time.")


_CERTIFICATE_LABELS = ("CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE")  # RFC 7468 §5.1


def decode_pasted(text: str, what: str = "certificate") -> bytes:
    """A pasted PEM block or bare base64 (lines, BEGIN/END lines optional) -> DER.

    With a BEGIN line, only the lines of the block count: text around it (`openssl x509
    -text` output, a `subject=` line) is ignored, as RFC 7468 §2 asks ("parsers MUST NOT
    malfunction when processing such data"). A block of another kind (a request, a private
    key) or a second block (a chain: which certificate to trust is the operator's choice) is
    refused, naming it."""
    lines = [line.strip() for line in text.splitlines()]
    labels = [line[11:-5] for line in lines
              if line.startswith("-----BEGIN ") and line.endswith("-----")]
    if wrong := [label for label in labels if label not in _CERTIFICATE_LABELS]:
        raise bad(f"The pasted text is a {wrong[0]}, not a {what}.")
    if len(labels) > 1:
        raise bad(f"{len(labels)} certificates were pasted: paste the {what} alone.")
    if labels:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN "))
        end = next((i for i, line in enumerate(lines) if i > start and line.startswith("-----")),
                   len(lines))
        lines = lines[start + 1:end]
    body = "".join(line for line in lines if line and not line.startswith("-----"))
    if not body:
        raise bad(f"No {what} was pasted.")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise bad(f"The pasted {what} is not base64 ({e}).") from e
