"""Regenerate our own golden CertRep vectors (run once, by hand; tests never rerun it).

    python tests/vectors/scep/make_own_vectors.py

They answer micromdm's captured PKCSReq, signed with the captured micromdm CA key, with a
fixed senderNonce and signingTime. PENDING and FAILURE carry no envelope and RSA PKCS#1 v1.5
signatures are deterministic, so the bytes depend only on those inputs: the tests rebuild
them and compare byte for byte, pinning our encoding (attribute set and order, empty
eContent, rsaEncryption SignerInfo).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.scep import (
    Credential,
    FailInfo,
    build_cert_rep_failure,
    build_cert_rep_pending,
    parse_request,
)

HERE = Path(__file__).resolve().parent
SENDER_NONCE = bytes(range(16))
SIGNING_TIME = dt.datetime(2026, 11, 27, 0, 30, 0, tzinfo=dt.UTC)


def micromdm_ca() -> Credential:
    key = serialization.load_pem_private_key((HERE / "micromdm_ca.key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate((HERE / "micromdm_ca.pem").read_bytes())
    return Credential(cert, key)


def build() -> dict[str, bytes]:
    ca = micromdm_ca()
    req = parse_request((HERE / "pkcsreq_des_sha1_micromdm.der").read_bytes(), recipients=[ca])
    return {
        "certrep_pending_ours.der": build_cert_rep_pending(
            req.reply_to, signer=ca, sender_nonce=SENDER_NONCE, signing_time=SIGNING_TIME),
        "certrep_failure_badrequest_ours.der": build_cert_rep_failure(
            req.reply_to, FailInfo.BAD_REQUEST, signer=ca, sender_nonce=SENDER_NONCE,
            signing_time=SIGNING_TIME),
    }


if __name__ == "__main__":
    for name, data in build().items():
        (HERE / name).write_bytes(data)
        print("wrote", name, len(data), "bytes")
