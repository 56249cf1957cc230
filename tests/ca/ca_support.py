"""Shared helpers for the CA tests: keys generated once per process, a fixed clock, seeded
randomness, and request builders."""

from __future__ import annotations

import functools
import hashlib

# SCEP client side
import http.client
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from asn1crypto import core as asn1_core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import PKCS_REQ, Enroll
from engine.ca.service import BuiltinCA
from engine.keys import KeyAlgorithm, KeySpec
from engine.ports import FixedClock, PrivateKey, SeededRandomness
from engine.scep import (
    CACertificates,
    CertRep,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    RequestParameters,
    build_cert_poll,
    build_get_cert,
    build_get_crl,
    build_pkcs_req,
    build_renewal_req,
    encode_message_param,
    new_nonce,
    parse_ca_certificates,
    parse_cert_rep,
    transaction_id_for,
)

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@functools.cache
def rsa_key(index: int, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(index: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class CachedKeys:
    """A KeyFactory handing out keys made once per process (keygen is slow; tests are not
    about it). Keys `base`, `base+1`, ... in order, so two CAs built alike get the same keys."""

    def __init__(self, base: int = 100) -> None:
        self.next = base

    def generate(self, spec: KeySpec) -> PrivateKey:
        self.next += 1
        if spec.algorithm is KeyAlgorithm.ECDSA:
            return ec_key(self.next)
        return rsa_key(self.next, spec.size)


def make_ca(root: Path, *, seed: int = 1, clock: FixedClock | None = None,
            **kw: Any) -> BuiltinCA:
    return BuiltinCA.init(root, clock=clock or FixedClock(T0), randomness=SeededRandomness(seed),
                          keys=CachedKeys(), **kw)


def spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(key: PrivateKey, cn: str, *, challenge: str | None = None,
             dns: tuple[str, ...] = (), ca_true: bool = False) -> x509.CertificateSigningRequest:
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string(f"CN={cn},O=Example"))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]),
                            critical=False)
    if ca_true:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if challenge is not None:
        b = b.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return b.sign(key, hashes.SHA256())


def requested_extensions(csr: x509.CertificateSigningRequest) -> bytes:
    req = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))
    for attr in req["certification_request_info"]["attributes"]:
        if attr["type"].native == "extension_request":
            return bytes(attr["values"][0].dump())
    return b""


INTEGER_AVA_SUBJECT = bytes.fromhex("300d310b300906032a0304020201 00".replace(" ", ""))
"""A DER Name whose one attribute (OID 1.2.3.4) has an INTEGER value, not a string."""


def raw_csr(key: rsa.RSAPrivateKey, subject_der: bytes, challenge: str | None = None) -> bytes:
    """A PKCS#10 (DER) with exactly `subject_der` as its subject, signed with `key`: for
    subjects `cryptography`'s builder refuses to write."""
    attrs = [] if challenge is None else [{"type": "challenge_password",
                                           "values": [asn1_core.PrintableString(challenge)]}]
    info = asn1_csr.CertificationRequestInfo({
        "version": 0, "subject": asn1_x509.Name.load(subject_der),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki(key)), "attributes": attrs})
    signature = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA256())
    return bytes(asn1_csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": {"algorithm": "sha256_rsa"}, "signature": signature}).dump())


class RawCSR:
    """Stands in for a CertificateSigningRequest where only its DER is used (build_pkcs_req)."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def public_bytes(self, encoding: serialization.Encoding) -> bytes:
        return self.der


def self_signed(key: PrivateKey, cn: str) -> bytes:
    name = x509.Name.from_rfc4514_string(f"CN={cn}")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(T0 - timedelta(days=1)).not_valid_after(T0 + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def enroll_cmd(key: PrivateKey, cn: str, *, txid: str | None = None,
               challenge: str | None = None, signer: bytes | None = None,
               message_type: int = PKCS_REQ, dns: tuple[str, ...] = (),
               ca_true: bool = False) -> Enroll:
    csr = make_csr(key, cn, dns=dns, ca_true=ca_true)
    return Enroll(
        transaction_id=txid or hashlib.sha256(spki(key)).hexdigest().upper(),
        message_type=message_type,
        subject=csr.subject.public_bytes(),
        subject_text=csr.subject.rfc4514_string(),
        public_key=spki(key),
        requested_extensions=requested_extensions(csr),
        signer_certificate=signer if signer is not None else self_signed(key, cn),
        challenge_sha256=hashlib.sha256(challenge.encode()).digest() if challenge else None,
    )


# -- an in-process SCEP client over HTTP (or to an in-process CA), built on engine/scep -------

IN_PROCESS = InProcessTransport()
"""CAs served without sockets (`serve_in_process(ca, IN_PROCESS, url)`): `http_request` to
their URLs goes through the in-process transport, the same routes as over HTTP."""


def http_request(url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    if IN_PROCESS.serves(url):
        reply = (IN_PROCESS.get(url, {}) if method == "GET"
                 else IN_PROCESS.post(url, {}, body or b""))
        return reply.status, reply.content_type, reply.body
    u = urlsplit(url)
    assert u.hostname is not None and u.port is not None
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    finally:
        conn.close()


class ScepTestClient:
    """One device identity enrolling against `scep_url` with our own SCEP core."""

    def __init__(self, scep_url: str, key: rsa.RSAPrivateKey, cn: str, *,
                 signing_time: datetime | None = T0, cas: CACertificates | None = None) -> None:
        """`cas`: the CA's GetCACert answer, if known (else fetched from `scep_url`)."""
        self.url = scep_url
        self.key = key
        self.cn = cn
        self.signing_time = signing_time
        self.credential = Credential(x509.load_der_x509_certificate(self_signed(key, cn)), key)
        if cas is None:
            status, ctype, body = http_request(f"{scep_url}?operation=GetCACert")
            assert status == 200
            cas = parse_ca_certificates(ctype, body)
        self.cas = cas
        self.transaction_id = transaction_id_for(key.public_key())

    def params(self, *, cipher: ContentCipher = ContentCipher.AES_128_CBC,
               digest: DigestAlgorithm = DigestAlgorithm.SHA256,
               signer: Credential | None = None, transaction_id: str | None = None,
               signing_time: datetime | None = None) -> RequestParameters:
        return RequestParameters(
            signer=signer or self.credential, recipient=self.cas.recipient,
            transaction_id=transaction_id or self.transaction_id,
            sender_nonce=new_nonce(os.urandom), cipher=cipher, digest=digest,
            signing_time=signing_time or self.signing_time)

    def csr(self, challenge: str | None) -> x509.CertificateSigningRequest:
        return make_csr(self.key, self.cn, challenge=challenge, dns=(f"{self.cn}.example.com",))

    def send(self, der: bytes, params: RequestParameters, *, get: bool = False) -> CertRep:
        if get:
            status, ctype, body = http_request(
                f"{self.url}?operation=PKIOperation&message="
                f"{quote(encode_message_param(der), safe='')}")
        else:
            status, ctype, body = http_request(f"{self.url}?operation=PKIOperation", "POST", der)
        assert status == 200, (status, body[:200])
        assert ctype == "application/x-pki-message"
        return parse_cert_rep(body, signers=[self.cas.signer],
                              transaction_id=params.transaction_id,
                              sender_nonce=params.sender_nonce, recipient=params.signer)

    def enroll(self, challenge: str | None = None, *, get: bool = False,
               **kw: Any) -> CertRep:
        p = self.params(**kw)
        return self.send(build_pkcs_req(p, self.csr(challenge), random_bytes=os.urandom), p,
                         get=get)

    def renew(self, current: x509.Certificate, *, renewal_req: bool = True,
              current_key: rsa.RSAPrivateKey | None = None, **kw: Any) -> CertRep:
        """Request a certificate for this identity, signed with `current` (whose key is
        `current_key`, by default this client's)."""
        p = self.params(signer=Credential(current, current_key or self.key), **kw)
        build = build_renewal_req if renewal_req else build_pkcs_req
        return self.send(build(p, self.csr(None), random_bytes=os.urandom), p)

    def poll(self, **kw: Any) -> CertRep:
        p = self.params(**kw)
        der = build_cert_poll(p, issuer=self.cas.ca.subject,
                              subject=x509.Name.from_rfc4514_string(f"CN={self.cn},O=Example"),
                              random_bytes=os.urandom)
        return self.send(der, p)

    def get_cert(self, serial: int, **kw: Any) -> CertRep:
        p = self.params(**kw)
        return self.send(build_get_cert(p, issuer=self.cas.ca.subject, serial_number=serial,
                                        random_bytes=os.urandom), p)

    def get_crl(self, serial: int, **kw: Any) -> CertRep:
        p = self.params(**kw)
        return self.send(build_get_crl(p, issuer=self.cas.ca.subject, serial_number=serial,
                                       random_bytes=os.urandom), p)
