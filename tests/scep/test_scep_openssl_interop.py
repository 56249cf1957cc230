"""Cross-check the CMS shapes with an independent implementation: the openssl command.

Our SignedData must verify and our EnvelopedData decrypt in `openssl cms`; envelopes that
openssl makes must open in our core.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from engine.scep import ContentCipher, RequestParameters, build_csr, build_pkcs_req, new_nonce
from engine.scep.cms import envelope, open_envelope, read_signed, verify_signed
from tests.scep.scep_support import name, pki, random_bytes

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

OPENSSL_CIPHER = {
    ContentCipher.AES_128_CBC: "-aes128", ContentCipher.AES_256_CBC: "-aes256",
    ContentCipher.DES_EDE3_CBC: "-des3", ContentCipher.DES_CBC: "-des",
}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _legacy(cipher: ContentCipher) -> list[str]:
    # OpenSSL 3 keeps single DES in the legacy provider
    return ["-provider", "legacy", "-provider", "default"] if cipher is ContentCipher.DES_CBC \
        else []


def _write_pki(tmp: Path) -> None:
    p = pki()
    for label, cred in (("ca", p.ca), ("client", p.client)):
        (tmp / f"{label}.pem").write_bytes(cred.certificate.public_bytes(
            serialization.Encoding.PEM))
        (tmp / f"{label}.key").write_bytes(cred.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


@pytest.mark.parametrize("cipher", list(ContentCipher))
def test_openssl_verifies_and_decrypts_our_pkcsreq(tmp_path: Path, cipher: ContentCipher) -> None:
    p = pki()
    _write_pki(tmp_path)
    csr = build_csr(p.client_key, name("router1"), challenge_password="pw")
    params = RequestParameters(signer=p.client, recipient=p.ca.certificate,
                               transaction_id="TX", sender_nonce=new_nonce(random_bytes(1)),
                               cipher=cipher)
    (tmp_path / "req.der").write_bytes(build_pkcs_req(params, csr, random_bytes=random_bytes(2)))
    _openssl("cms", "-verify", "-noverify", "-binary", "-inform", "DER",
             "-in", str(tmp_path / "req.der"), "-out", str(tmp_path / "env.der"))
    _openssl("cms", "-decrypt", *_legacy(cipher), "-binary", "-inform", "DER",
             "-in", str(tmp_path / "env.der"), "-recip", str(tmp_path / "ca.pem"),
             "-inkey", str(tmp_path / "ca.key"), "-out", str(tmp_path / "csr.der"))
    assert (tmp_path / "csr.der").read_bytes() == csr.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("cipher", list(ContentCipher))
def test_we_open_openssl_envelopes(tmp_path: Path, cipher: ContentCipher) -> None:
    p = pki()
    _write_pki(tmp_path)
    (tmp_path / "plain.bin").write_bytes(b"certs-only payload " * 20)
    _openssl("cms", "-encrypt", *_legacy(cipher), "-binary", OPENSSL_CIPHER[cipher],
             "-in", str(tmp_path / "plain.bin"), "-outform", "DER",
             "-out", str(tmp_path / "env.der"), str(tmp_path / "client.pem"))
    plain, used = open_envelope((tmp_path / "env.der").read_bytes(), [p.client])
    assert used is cipher
    assert plain == b"certs-only payload " * 20


def test_we_verify_openssl_signed_data(tmp_path: Path) -> None:
    """An OpenSSL-signed, BER (streamed, indefinite-length) SignedData reads and verifies."""
    p = pki()
    _write_pki(tmp_path)
    payload = envelope(b"x" * 100, recipient=p.ca.certificate, cipher=ContentCipher.AES_128_CBC,
                       random_bytes=random_bytes(3))
    (tmp_path / "env.der").write_bytes(payload)
    _openssl("cms", "-sign", "-binary", "-stream", "-nodetach", "-md", "sha256",
             "-in", str(tmp_path / "env.der"), "-signer", str(tmp_path / "client.pem"),
             "-inkey", str(tmp_path / "client.key"), "-outform", "DER",
             "-out", str(tmp_path / "signed.der"))
    msg = read_signed((tmp_path / "signed.der").read_bytes())
    assert msg.content == payload
    verify_signed(msg, p.client.certificate)
