"""The three CMS (RFC 5652) shapes SCEP is built from, over asn1crypto + cryptography.

- SignedData with signed attributes, one signer: the outer pkiMessage. Reading is two-phase:
  `read_signed` checks the structure and collects the attributes (so a server can still address
  a FAILURE to a request whose signature is bad), then `verify_signed` checks the digest and the
  signature against a certificate the caller chose.
- EnvelopedData with one RSA key-transport recipient (PKCS#1 v1.5): the pkcsPKIEnvelope.
- Degenerate certs-only SignedData (no signers): CertRep SUCCESS payloads and CA/RA bundles.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from engine.scep._der import (
    ber_elements,
    ber_octets,
    cert_matches,
    complete_certificate,
    contained,
    header,
    load,
    load_crl,
    to_asn1_certificate,
    to_certificate,
)
from engine.scep._fastder import (
    RawEnvelope,
    certificate_issuer_and_serial,
    read_enveloped_data,
    read_signed_data,
    signer_issuer_and_serial,
)
from engine.scep.algorithms import (
    ECDSA_SIGNATURE_OID,
    MGF1_OID,
    RSA_ENCRYPTION_OID,
    RSASSA_PSS_OID,
    ContentCipher,
    DigestAlgorithm,
    RandomBytes,
    signature_hash_oid,
)
from engine.scep.errors import ScepError, ScepErrorReason
from engine.scep.identity import Credential

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"


# ----------------------------------------------------------------------------- SignedData


def attribute(oid: str, value: core.Asn1Value) -> bytes:
    """One single-valued CMS attribute, DER: SEQUENCE { type OID, SET { value } }."""
    return _attribute_der(oid, value.dump())


def attribute_of_der(oid: str, value_der: bytes) -> bytes:
    """`attribute` for a value already encoded (`value_der`, one DER element)."""
    return _attribute_der(oid, value_der)


def sign(
    content: bytes,
    *,
    signer: Credential,
    digest: DigestAlgorithm,
    attributes: Sequence[bytes],
    certificates: Sequence[x509.Certificate],
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A ContentInfo(SignedData) over `content` (as id-data eContent), one SignerInfo.

    RSA signers use signatureAlgorithm rsaEncryption (RFC 8894 CertRep convention); EC signers
    ecdsa-with-SHAn with deterministic (RFC 6979) nonces, so output depends only on inputs.

    A CertRep answering an RSASSA-PSS request is still signed PKCS#1 v1.5 (rsaEncryption), not
    in kind: RFC 8894 does not tie the CertRep's signature scheme to the request's, RFC 4056
    only says how PSS is written when a signer chooses it, and RFC 3370 §3.2 has every CMS
    implementation of RSA (PKCS#1 v1.5) signatures support the rsaEncryption identifier. It is
    also the only form every client we meet verifies: strongSwan 5.9.8's pkcs7 and openssl
    plugins accept SignerInfo algorithm rsaEncryption and nothing else (fixed after 5.9.8 by
    strongSwan PR #1615), micromdm's client and certmonger take it too.
    """
    attrs = [
        _CONTENT_TYPE_DATA_ATTRIBUTE,
        _attribute_der(OID_MESSAGE_DIGEST, tlv(0x04, digest.digest(content))),
        *attributes,
    ]
    if signing_time is not None:
        attrs.append(_attribute_der(OID_SIGNING_TIME, _time_der(signing_time)))
    # RFC 5652 §5.4: signedAttrs are DER-encoded, i.e. the SET OF sorted by encoding.
    attrs.sort()
    attrs_body = b"".join(attrs)
    to_be_signed = header(0x31, len(attrs_body)) + attrs_body  # EXPLICIT SET OF, §5.4
    key = signer.private_key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_be_signed, padding.PKCS1v15(), digest.hash_algorithm())
        sig_algo = _RSA_ENCRYPTION_ALGORITHM
    else:
        signature = key.sign(
            to_be_signed, ec.ECDSA(digest.hash_algorithm(), deterministic_signing=True)
        )
        sig_algo = _signature_algorithm_der(ECDSA_SIGNATURE_OID[digest])
    digest_algo = _algorithm_der(digest.oid)
    signer_info = tlv(0x30, _VERSION_1, _issuer_and_serial(signer.certificate), digest_algo,
                      header(0xA0, len(attrs_body)), attrs_body, sig_algo,
                      tlv(0x04, signature))
    certs = b"".join(_certificate_der(c) for c in certificates)
    signed_data = tlv(0x30, _VERSION_1, tlv(0x31, digest_algo),
                      tlv(0x30, _OID_DATA_DER, tlv(0xA0, tlv(0x04, content))),
                      tlv(0xA0, certs), tlv(0x31, signer_info))
    return tlv(0x30, _OID_SIGNED_DATA_DER, tlv(0xA0, signed_data))


# The CMS builders assemble DER from parts (templates): asn1crypto would build an object tree
# from dicts, re-tag and re-encode it on every call, which was most of a CertRep's cost. What
# varies is encoded here; what does not (OIDs, algorithm identifiers, a certificate's DER and
# its IssuerAndSerialNumber) is encoded once, by asn1crypto or cryptography, and cached.
# tests/scep/test_scep_golden.py holds the output byte for byte to the vectors.


def tlv(tag: int, *parts: bytes) -> bytes:
    """One DER element: `tag`, the definite length of the concatenated `parts`, the parts."""
    body = b"".join(parts)
    return header(tag, len(body)) + body


_VERSION_0 = b"\x02\x01\x00"
_VERSION_1 = b"\x02\x01\x01"
_OID_DATA_DER = core.ObjectIdentifier(OID_DATA).dump()
_OID_SIGNED_DATA_DER = core.ObjectIdentifier(OID_SIGNED_DATA).dump()
_OID_ENVELOPED_DATA_DER = core.ObjectIdentifier(OID_ENVELOPED_DATA).dump()


@functools.cache
def _algorithm_der(oid: str) -> bytes:
    """AlgorithmIdentifier { oid } without parameters, as asn1crypto encodes it."""
    return bytes(algos.DigestAlgorithm({"algorithm": oid}).dump())


@functools.cache
def _signature_algorithm_der(oid: str) -> bytes:
    return bytes(algos.SignedDigestAlgorithm({"algorithm": oid}).dump())


_RSA_ENCRYPTION_ALGORITHM = bytes(algos.SignedDigestAlgorithm(
    {"algorithm": RSA_ENCRYPTION_OID, "parameters": core.Null()}).dump())
_RSAES_PKCS1V15_ALGORITHM = bytes(cms.KeyEncryptionAlgorithm(
    {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}).dump())


def _attribute_der(oid: str, value_der: bytes) -> bytes:
    """One single-valued CMS attribute: SEQUENCE { type OID, SET { value } }."""
    return tlv(0x30, _oid_der(oid), tlv(0x31, value_der))


@functools.cache
def _oid_der(oid: str) -> bytes:
    return bytes(core.ObjectIdentifier(oid).dump())


_CONTENT_TYPE_DATA_ATTRIBUTE = _attribute_der(OID_CONTENT_TYPE, _OID_DATA_DER)


def _time_der(when: dt.datetime) -> bytes:
    """signingTime's Time (RFC 5652 §11.3): a UTCTime for 1950-2049, a GeneralizedTime
    otherwise; in UTC with seconds, and GeneralizedTime values "MUST NOT include fractional
    seconds" (neither can a UTCTime: both are written to the second)."""
    if when.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware")
    utc = when.astimezone(dt.UTC)
    if 1950 <= utc.year < 2050:
        return b"\x17\x0d" + utc.strftime("%y%m%d%H%M%SZ").encode("ascii")
    return b"\x18\x0f" + f"{utc.year:04d}{utc:%m%d%H%M%S}Z".encode("ascii")


@functools.lru_cache(maxsize=256)
def _certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=64)
def _our_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    """A certificate of our own credentials, parsed once (callers only read it)."""
    return to_asn1_certificate(cert)


@functools.lru_cache(maxsize=256)
def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    """IssuerAndSerialNumber of `cert`, its issuer Name as the certificate encodes it."""
    asn1 = to_asn1_certificate(cert)
    tbs = asn1["tbs_certificate"]
    return tlv(0x30, tbs["issuer"].dump(), tbs["serial_number"].dump())


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A structurally valid one-signer SignedData whose signature is NOT yet verified."""

    content: bytes  # eContent; b"" when absent
    content_type: str
    digest: DigestAlgorithm
    signature_oid: str
    attributes: dict[str, bytes]  # signed attributes' values (DER), by OID (single-valued)
    certificates: tuple[x509.Certificate, ...]
    signed_attrs: bytes  # the contents of [0] IMPLICIT signedAttrs, as the sender encoded them
    signature: bytes
    signer_info_der: bytes
    certificate_ders: tuple[bytes, ...]

    @property
    def _signer_info(self) -> cms.SignerInfo:
        return cms.SignerInfo.load(self.signer_info_der)

    @property
    def _asn1_certificates(self) -> tuple[asn1_x509.Certificate, ...]:
        return tuple(asn1_x509.Certificate.load(d) for d in self.certificate_ders)

    def find_signer(self, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
        """The candidate the SignerInfo's sid names, if any."""
        if candidates is self.certificates:
            found = self._signer_by_bytes()
            if found is not None:
                return found
        sid = self._signer_info["sid"]
        with contained("SignerInfo sid"):
            if sid.name == "subject_key_identifier":
                issuer, serial, ski = None, None, bytes(sid.chosen.native)
            else:
                issuer = sid.chosen["issuer"]
                serial, ski = int(sid.chosen["serial_number"].native), None
            parsed = (self._asn1_certificates if candidates is self.certificates
                      else [to_asn1_certificate(c) for c in candidates])
            for cert, asn1 in zip(candidates, parsed, strict=True):
                if cert_matches(asn1, issuer, serial, ski):
                    return cert
        return None

    def _signer_by_bytes(self) -> x509.Certificate | None:
        """The included certificate whose issuer and serial number are the sid's, byte for
        byte (what every client sends: it copies them from its certificate). None when the
        sid is a key identifier, or a certificate with the sid's serial number has an issuer
        encoded otherwise: then `find_signer` compares names as RFC 5280 says, in order."""
        sid = signer_issuer_and_serial(self.signer_info_der)
        if sid is None:
            return None
        for cert, der in zip(self.certificates, self.certificate_ders, strict=True):
            got = certificate_issuer_and_serial(der)
            if got is None:
                return None
            if got[1] == sid[1]:
                return cert if got[0] == sid[0] else None
        return None

    def included_signer(self, what: str = "pkiMessage") -> x509.Certificate | None:
        """The signer's own certificate from the message, parsed completely (it is handed
        out to the caller; `read_signed` only loaded it, so a failure here can still be
        answered with a CertRep FAILURE)."""
        signer = self.find_signer(self.certificates)
        if signer is None:
            return None
        return complete_certificate(signer, f"{what} signer certificate")


def _content(der: bytes, content_type: str, name: str, what: str) -> Any:
    """The content of a ContentInfo of the expected type (RFC 5652 §3)."""
    info = load(cms.ContentInfo, der, what)
    if info["content_type"].dotted != content_type:
        raise ScepError(ScepErrorReason.WRONG_CONTENT_TYPE,
                        f"{what}: content type {info['content_type'].dotted}, expected {name}")
    return info["content"]


def read_signed(der: bytes, what: str = "pkiMessage") -> SignedMessage:
    """Parse a ContentInfo(SignedData) with exactly one signer and signed attributes: with
    the DER walker of engine/scep/_fastder.py when the message has its plain shape, else
    with asn1crypto (which also words the errors)."""
    raw = read_signed_data(der, OID_SIGNED_DATA) if isinstance(der, bytes) else None
    if raw is None:
        return _read_signed_asn1(der, what)
    with contained(what):
        return SignedMessage(
            content=raw.content, content_type=raw.content_type,
            digest=DigestAlgorithm.from_oid(raw.digest_oid), signature_oid=raw.signature_oid,
            attributes=raw.attributes,
            certificates=tuple(x509.load_der_x509_certificate(c) for c in raw.certificates),
            signed_attrs=raw.signed_attrs, signature=raw.signature,
            signer_info_der=raw.signer_info, certificate_ders=raw.certificates,
        )


def _read_signed_asn1(der: bytes, what: str) -> SignedMessage:
    with contained(what):
        sd = _content(der, OID_SIGNED_DATA, "signedData", what)
        signers = list(sd["signer_infos"])
        if len(signers) != 1:
            raise ScepError(ScepErrorReason.MALFORMED,
                            f"{what}: {len(signers)} SignerInfos, expected exactly one")
        si = signers[0]
        digest = DigestAlgorithm.from_oid(si["digest_algorithm"]["algorithm"].dotted)
        sig_oid = si["signature_algorithm"]["algorithm"].dotted
        encap = sd["encap_content_info"]
        raw = encap["content"]
        content = b"" if isinstance(raw, core.Void) else _octets(raw, what)
        if isinstance(si["signed_attrs"], core.Void):
            raise ScepError(ScepErrorReason.MISSING_ATTRIBUTE,
                            f"{what}: no signed attributes")
        attributes: dict[str, bytes] = {}
        for attr in si["signed_attrs"]:
            oid = attr["type"].dotted
            values = list(attr["values"])
            if oid in attributes or len(values) != 1:
                raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                                f"{what}: attribute {oid} must occur once with one value")
            attributes[oid] = values[0].dump()
        asn1_certs: list[asn1_x509.Certificate] = []
        if not isinstance(sd["certificates"], core.Void):
            asn1_certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"]
        ders = tuple(c.dump() for c in asn1_certs)
        certs = tuple(x509.load_der_x509_certificate(d) for d in ders)
        return SignedMessage(
            content=content, content_type=encap["content_type"].dotted, digest=digest,
            signature_oid=sig_oid, attributes=attributes, certificates=certs,
            signed_attrs=si["signed_attrs"].contents, signature=bytes(si["signature"].native),
            signer_info_der=si.dump(), certificate_ders=ders,
        )


def verify_signed(msg: SignedMessage, signer: x509.Certificate, what: str = "pkiMessage") -> None:
    """Check contentType, messageDigest and the signature with `signer`'s public key.

    Signatures accepted: RSA PKCS#1 v1.5 (rsaEncryption or shaNWithRSAEncryption), ECDSA, and
    RSASSA-PSS (id-RSASSA-PSS with its parameters, RFC 4056 §3: strongSwan `pki --rsa-padding
    pss`), whichever the peer chose; see `sign` for what we send."""
    with contained(what):
        pss = _pss_padding(msg, what) if msg.signature_oid == RSASSA_PSS_OID else None
        family = "rsa" if pss is not None else signature_hash_oid(msg.signature_oid, msg.digest)
        ctype = msg.attributes.get(OID_CONTENT_TYPE)
        md = msg.attributes.get(OID_MESSAGE_DIGEST)
        # RFC 5652 §5.3: if signedAttrs is present it "MUST contain, at a minimum" the
        # content-type and message-digest attributes.
        if ctype is None or md is None:
            raise ScepError(ScepErrorReason.MISSING_ATTRIBUTE,
                            f"{what}: contentType or messageDigest attribute missing")
        # RFC 5652 §11.1: the content-type attribute value MUST match eContentType.
        if core.ObjectIdentifier.load(ctype).dotted != msg.content_type:
            raise ScepError(ScepErrorReason.BAD_ATTRIBUTE,
                            f"{what}: contentType attribute does not match eContentType")
        expected = msg.digest.digest(msg.content)
        if not hmac.compare_digest(core.OctetString.load(md).native, expected):
            raise ScepError(ScepErrorReason.DIGEST_MISMATCH,
                            f"{what}: messageDigest is not the {msg.digest.caps_keyword} "
                            "of the content")
        attrs_contents = msg.signed_attrs
        # RFC 5652 §5.4: the digest is over the DER of signedAttrs with "an EXPLICIT SET OF
        # tag" instead of the IMPLICIT [0]; we re-wrap the sender's own bytes.
        to_be_verified = header(0x31, len(attrs_contents)) + attrs_contents
        signature = msg.signature
        public_key = signer.public_key()
        try:
            if family == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, to_be_verified, pss or padding.PKCS1v15(),
                                  msg.digest.hash_algorithm())
            elif family == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
                public_key.verify(signature, to_be_verified,
                                  ec.ECDSA(msg.digest.hash_algorithm()))
            else:
                raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                                f"{what}: signature algorithm {msg.signature_oid} does not "
                                "fit the signer's key")
        except InvalidSignature:
            raise ScepError(ScepErrorReason.BAD_SIGNATURE,
                            f"{what}: the signature does not verify") from None


def _pss_padding(msg: SignedMessage, what: str) -> padding.PSS:
    """The RSASSA-PSS padding a SignerInfo's id-RSASSA-PSS parameters name (RFC 4055 §3.1:
    hashAlgorithm, MGF1 with its hash, saltLength, trailerField 1). Its hash must be the
    SignerInfo digestAlgorithm: RFC 4056 §3 has the signed attributes digested with the
    hash the PSS parameters name, and we check messageDigest with digestAlgorithm."""
    params = msg._signer_info["signature_algorithm"]["parameters"]
    if not isinstance(params, algos.RSASSAPSSParams):
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: RSASSA-PSS without its parameters")
    pss_hash = DigestAlgorithm.from_oid(params["hash_algorithm"]["algorithm"].dotted)
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].dotted != MGF1_OID:
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: RSASSA-PSS mask generation {mgf['algorithm'].dotted}")
    mgf_hash = DigestAlgorithm.from_oid(mgf["parameters"]["algorithm"].dotted)
    if pss_hash is not msg.digest or params["trailer_field"].native not in (1, "trailer_field_bc"):
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: RSASSA-PSS with {pss_hash.caps_keyword} does not fit digest "
                        f"{msg.digest.caps_keyword}, or its trailerField is not 1")
    salt = params["salt_length"].native
    if not isinstance(salt, int) or not 0 <= salt <= 1024:
        raise ScepError(ScepErrorReason.MALFORMED, f"{what}: RSASSA-PSS saltLength {salt!r}")
    return padding.PSS(mgf=padding.MGF1(mgf_hash.hash_algorithm()), salt_length=salt)


# --------------------------------------------------------------------------- EnvelopedData


def envelope(
    plaintext: bytes,
    *,
    recipient: x509.Certificate,
    cipher: ContentCipher,
    random_bytes: RandomBytes,
) -> bytes:
    """ContentInfo(EnvelopedData) for one RSA key-transport recipient (RFC 5652 §6)."""
    public_key = recipient.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("SCEP envelopes need an RSA recipient certificate")
    key = cipher.new_key(random_bytes)
    iv = cipher.new_iv(random_bytes)
    encrypted = cipher.encrypt(key, iv, plaintext)
    ktri = tlv(0x30, _VERSION_0, _issuer_and_serial(recipient), _RSAES_PKCS1V15_ALGORITHM,
               tlv(0x04, public_key.encrypt(key, padding.PKCS1v15())))
    content_algorithm = tlv(0x30, core.ObjectIdentifier(cipher.oid).dump(), tlv(0x04, iv))
    enveloped = tlv(0x30, _VERSION_0, tlv(0x31, ktri),
                    tlv(0x30, _OID_DATA_DER, content_algorithm, tlv(0x80, encrypted)))
    return tlv(0x30, _OID_ENVELOPED_DATA_DER, tlv(0xA0, enveloped))


def open_envelope(
    der: bytes, recipients: Sequence[Credential], what: str = "pkcsPKIEnvelope"
) -> tuple[bytes, ContentCipher]:
    """Decrypt a ContentInfo(EnvelopedData) addressed to one of `recipients`."""
    body, cipher, _ = open_envelope_to(der, recipients, what)
    return body, cipher


def open_envelope_to(
    der: bytes, recipients: Sequence[Credential], what: str = "pkcsPKIEnvelope"
) -> tuple[bytes, ContentCipher, Credential]:
    """`open_envelope`, also saying which of `recipients` it was addressed to (read with the
    DER walker of engine/scep/_fastder.py when it has the plain shape and names one of our
    certificates byte for byte, else with asn1crypto)."""
    raw = read_enveloped_data(der, OID_ENVELOPED_DATA) if isinstance(der, bytes) else None
    picked = _recipient_by_bytes(raw, recipients) if raw is not None else None
    if raw is None or picked is None:
        return _open_envelope_asn1(der, recipients, what)
    with contained(what):
        cipher = ContentCipher.from_oid(raw.cipher_oid)
        if len(raw.iv) != cipher.block_size:
            raise ScepError(ScepErrorReason.MALFORMED, f"{what}: bad {cipher.name} IV")
        algorithm, encrypted_key, credential = picked
        return _decrypt(cipher, raw.iv, raw.ciphertext, algorithm, encrypted_key, credential,
                        what), cipher, credential


def _recipient_by_bytes(raw: RawEnvelope, recipients: Sequence[Credential],
                        ) -> tuple[str, bytes, Credential] | None:
    """(key transport algorithm, encrypted key, credential) of the first RecipientInfo that
    names one of `recipients` by the same issuer bytes and serial; None if a serial matches
    with an issuer encoded otherwise, or none matches (then asn1crypto decides, as always)."""
    ours = [(_issuer_and_serial_of(c.certificate), c) for c in recipients]
    for issuer, serial, algorithm, key in raw.recipients:
        for mine, cred in ours:
            if mine is None:
                return None
            if mine[1] == serial:
                if mine[0] != issuer:
                    return None
                return algorithm, key, cred
    return None


@functools.lru_cache(maxsize=64)
def _issuer_and_serial_of(cert: x509.Certificate) -> tuple[bytes, int] | None:
    return certificate_issuer_and_serial(_certificate_der(cert))


def _open_envelope_asn1(der: bytes, recipients: Sequence[Credential],
                        what: str) -> tuple[bytes, ContentCipher, Credential]:
    with contained(what):
        ed = _content(der, OID_ENVELOPED_DATA, "envelopedData", what)
        eci = ed["encrypted_content_info"]
        cipher = ContentCipher.from_oid(eci["content_encryption_algorithm"]["algorithm"].dotted)
        iv_value = eci["content_encryption_algorithm"]["parameters"]
        iv = core.OctetString.load(iv_value.dump()).native
        if not isinstance(iv, bytes) or len(iv) != cipher.block_size:
            raise ScepError(ScepErrorReason.MALFORMED, f"{what}: bad {cipher.name} IV")
        ciphertext = _encrypted_content(eci, what)
        ktri, credential = _pick_recipient(ed["recipient_infos"], recipients, what)
        algo = ktri["key_encryption_algorithm"]["algorithm"].dotted
        return _decrypt(cipher, iv, ciphertext, algo, bytes(ktri["encrypted_key"].native),
                        credential, what), cipher, credential


def _decrypt(cipher: ContentCipher, iv: bytes, ciphertext: bytes, algorithm: str,
             encrypted_key: bytes, credential: Credential, what: str) -> bytes:
    """Unwrap the content key with `credential` (RSA key transport) and decrypt."""
    if algorithm != RSA_ENCRYPTION_OID:
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: unsupported key transport {algorithm}")
    private_key = credential.private_key
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: our recipient key is not RSA")
    try:
        key = private_key.decrypt(encrypted_key, padding.PKCS1v15())
    except ValueError:
        raise ScepError(ScepErrorReason.DECRYPTION_FAILED,
                        f"{what}: key transport decryption failed") from None
    if len(key) != cipher.key_size:  # also what OpenSSL's implicit rejection yields
        raise ScepError(ScepErrorReason.DECRYPTION_FAILED,
                        f"{what}: key transport decryption failed")
    return cipher.decrypt(key, iv, ciphertext)


def _encrypted_content(eci: cms.EncryptedContentInfo, what: str) -> bytes:
    """encryptedContent [0] IMPLICIT OCTET STRING, primitive or constructed (BER)."""
    elements = ber_elements(eci.contents)
    if len(elements) != 3 or elements[2][:1] != (2,) or elements[2][2] != 0:
        raise ScepError(ScepErrorReason.MALFORMED, f"{what}: no encrypted content")
    _, method, _, contents = elements[2]
    return ber_octets(method, contents)


def _pick_recipient(
    infos: cms.RecipientInfos, recipients: Sequence[Credential], what: str
) -> tuple[cms.KeyTransRecipientInfo, Credential]:
    ktris = [ri.chosen for ri in infos if ri.name == "ktri"]
    if not ktris:
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM,
                        f"{what}: no key-transport RecipientInfo")
    for ktri in ktris:
        rid = ktri["rid"]
        if rid.name == "subject_key_identifier":
            issuer, serial, ski = None, None, bytes(rid.chosen.native)
        else:
            issuer = rid.chosen["issuer"]
            serial, ski = int(rid.chosen["serial_number"].native), None
        for cred in recipients:
            if cert_matches(_our_certificate(cred.certificate), issuer, serial, ski):
                return ktri, cred
    raise ScepError(ScepErrorReason.NOT_A_RECIPIENT,
                    f"{what}: not encrypted to any of our certificates")


# ------------------------------------------------------------------------ certs-only bundle


def certs_only(
    certificates: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> bytes:
    """A degenerate certs-only SignedData (no signers; RFC 8894 §3.4 "degenerate")."""
    parts = [_VERSION_1, b"\x31\x00", tlv(0x30, _OID_DATA_DER)]
    if certificates:
        parts.append(tlv(0xA0, *(_certificate_der(c) for c in certificates)))
    if crls:
        parts.append(tlv(0xA1, *(c.public_bytes(serialization.Encoding.DER) for c in crls)))
    parts.append(b"\x31\x00")
    return tlv(0x30, _OID_SIGNED_DATA_DER, tlv(0xA0, tlv(0x30, *parts)))


def read_certs_only(
    der: bytes, what: str
) -> tuple[tuple[x509.Certificate, ...], tuple[x509.CertificateRevocationList, ...]]:
    """Certificates and CRLs of a (normally degenerate) ContentInfo(SignedData)."""
    with contained(what):
        sd = _content(der, OID_SIGNED_DATA, "signedData", what)
        certs: list[x509.Certificate] = []
        if not isinstance(sd["certificates"], core.Void):
            for choice in sd["certificates"]:
                if choice.name == "certificate":
                    certs.append(to_certificate(choice.chosen, f"{what} certificate"))
        crls: list[x509.CertificateRevocationList] = []
        if not isinstance(sd["crls"], core.Void):
            for choice in sd["crls"]:
                if choice.name == "crl":
                    crls.append(load_crl(choice.chosen.dump(), f"{what} CRL"))
        return tuple(certs), tuple(crls)


def _dump(value: core.Asn1Value) -> bytes:
    return bytes(value.dump())


def _octets(value: core.Asn1Value, what: str) -> bytes:
    native = value.native
    if not isinstance(native, bytes):
        raise ScepError(ScepErrorReason.MALFORMED, f"{what}: content is not an OCTET STRING")
    return native
