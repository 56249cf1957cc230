"""`crypto key import authentication rsa`: every accepted form, and every refused paste writes
nothing."""

from __future__ import annotations

import base64
import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine import Engine
from engine.keyimport import ImportProblem, KeyImportError, parse_public_key
from engine.keys import KeyAlgorithm, KeyUsage
from engine.keys import PrivateKey as AnyPrivateKey
from events.keys import PublicKeyImported, PublicKeyRemoved
from tests.keys.keys_support import data_bytes

Enc = serialization.Encoding
Pub = serialization.PublicFormat


def rsa_key(pregenerated: list[AnyPrivateKey], n: int = 0) -> rsa.RSAPrivateKey:
    keys = [k for k in pregenerated if isinstance(k, rsa.RSAPrivateKey) and k.key_size == 1024]
    return keys[n]


def b64_lines(der: bytes) -> list[str]:
    return textwrap.wrap(base64.b64encode(der).decode(), 64)


def forms(key: rsa.RSAPrivateKey) -> dict[str, list[str]]:
    pub = key.public_key()
    spki = pub.public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)
    pkcs1 = pub.public_bytes(Enc.DER, Pub.PKCS1)
    return {
        "spki": b64_lines(spki),
        "pkcs1": b64_lines(pkcs1),
        "pem-spki": pub.public_bytes(Enc.PEM, Pub.SubjectPublicKeyInfo).decode().splitlines(),
        "pem-pkcs1": pub.public_bytes(Enc.PEM, Pub.PKCS1).decode().splitlines(),
        "openssh": [pub.public_bytes(Enc.OpenSSH, Pub.OpenSSH).decode() + " admin@host"],
    }


@pytest.mark.parametrize("fmt", ["spki", "pkcs1", "pem-spki", "pem-pkcs1", "openssh"])
@pytest.mark.parametrize("end", ["", "quit"])
def test_every_accepted_form_imports_the_same_spki(engine: Engine,
                                                   pregenerated: list[AnyPrivateKey],
                                                   fmt: str, end: str) -> None:
    key = rsa_key(pregenerated)
    spki = key.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)
    r = engine.execute("crypto key import authentication rsa general-keys peer",
                       answers=[*forms(key)[fmt], end])
    assert r.ok, r.output
    assert r.output.startswith("Enter the public key")
    assert r.output.endswith("[OK]\n")
    (ev,) = [rec.event for rec in r.events]
    assert ev == PublicKeyImported("peer", "rsa", "general", 1024, spki, fmt)
    out = engine.execute("show crypto key authentication rsa").output
    assert out.splitlines()[:3] == ["Key label:peer", "Type      :RSA public key authentication",
                                    "Size      :1024"]
    assert out.splitlines()[3].startswith("Imported  :")
    assert data_bytes(out) == [spki]


def test_usage_keys_import_reads_two_keys(engine: Engine,
                                          pregenerated: list[AnyPrivateKey]) -> None:
    a, b = rsa_key(pregenerated, 0), rsa_key(pregenerated, 1)
    r = engine.execute("crypto key import authentication rsa usage-keys",
                       answers=[*forms(a)["spki"], "", *forms(b)["pem-spki"], ""])
    assert r.ok, r.output
    assert "Enter the signature public key" in r.output
    assert "Enter the encryption public key" in r.output
    keys = engine.state.keys.imported_of(KeyAlgorithm.RSA, "the_default")
    assert [k.usage for k in keys] == [KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION]
    assert keys[0].public_key != keys[1].public_key
    out = engine.execute("show crypto key authentication rsa the_default").output
    assert "Type      :RSA public key authentication (Signature)" in out
    assert "Type      :RSA public key authentication (Encryption)" in out


def test_reimport_asks_before_replacing(engine: Engine, pregenerated: list[AnyPrivateKey]) -> None:
    a, b = rsa_key(pregenerated, 0), rsa_key(pregenerated, 1)
    assert engine.execute("crypto key import authentication rsa p",
                          answers=[*forms(a)["spki"], ""]).ok
    r = engine.execute("crypto key import authentication rsa p", answers=["no"])
    assert r.ok and r.events == []
    r = engine.execute("crypto key import authentication rsa p",
                       answers=["yes", *forms(b)["spki"], ""])
    assert r.ok
    assert isinstance(r.events[0].event, PublicKeyRemoved)
    (key,) = engine.state.keys.imported_of(KeyAlgorithm.RSA, "p")
    assert key.public_key == b.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)


def test_zeroize_authentication_removes_imported_keys(engine: Engine,
                                                      pregenerated: list[AnyPrivateKey]) -> None:
    assert engine.execute("crypto key import authentication rsa p",
                          answers=[*forms(rsa_key(pregenerated))["spki"], ""]).ok
    r = engine.execute("crypto key zeroize authentication rsa p")
    assert r.ok and [rec.event for rec in r.events] == [PublicKeyRemoved("p", "rsa", "zeroize")]
    assert engine.execute("show crypto key authentication rsa").output == ""


def test_show_mypubkey_rsa_lists_imported_keys_after_the_devices_own(
        engine: Engine, pregenerated: list[AnyPrivateKey]) -> None:
    # The reference's "Import Public Key to the Router", step 2: `show crypto key mypubkey rsa`.
    assert engine.execute("crypto key generate rsa mine", answers=["1024"]).ok
    own_only = engine.execute("show crypto key mypubkey rsa").output
    a, b, c = (rsa_key(pregenerated, n) for n in (2, 3, 4))
    assert engine.execute("crypto key import authentication rsa general-keys imp1",
                          answers=[*forms(a)["spki"], ""]).ok
    assert engine.execute("crypto key import authentication rsa usage-keys imp2",
                          answers=[*forms(b)["spki"], "", *forms(c)["spki"], ""]).ok
    out = engine.execute("show crypto key mypubkey rsa").output
    blocks = out.split("\n\n")
    assert out.startswith(own_only)  # the device's own blocks, byte for byte, first
    assert [blk.splitlines()[:3] for blk in blocks[1:]] == [
        ["Key label:imp1", "Type      :RSA Imported public key, no private key",
         "Size      :1024"],
        ["Key label:imp2", "Type      :RSA Imported public key (Signature), no private key",
         "Size      :1024"],
        ["Key label:imp2", "Type      :RSA Imported public key (Encryption), no private key",
         "Size      :1024"]]
    assert all(blk.splitlines()[3].startswith("Imported  :") for blk in blocks[1:])
    spki = [k.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo) for k in (a, b, c)]
    assert data_bytes(out)[1:] == spki
    one = engine.execute("show crypto key mypubkey rsa imp1")
    assert one.ok and one.output == blocks[1] + "\n"
    assert engine.execute("show crypto key mypubkey rsa mine").output == own_only
    none = engine.execute("show crypto key mypubkey rsa nosuch")
    assert not none.ok and none.output == "% No RSA key pair named 'nosuch'.\n"
    assert engine.execute("show crypto key mypubkey ecdsa").output == ""


# -- refused pastes --------------------------------------------------------------------------------


def bad_pastes(pregenerated: list[AnyPrivateKey]) -> dict[str, tuple[list[str], ImportProblem]]:
    key = rsa_key(pregenerated)
    spki = key.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)
    ec_key = next(k for k in pregenerated if isinstance(k, ec.EllipticCurvePrivateKey))
    ec_spki = ec_key.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)
    pkcs8_pem = key.private_bytes(Enc.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode().splitlines()
    trad_pem = key.private_bytes(Enc.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode().splitlines()
    pkcs8_der = key.private_bytes(Enc.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    return {
        "garbage base64": (["this is not base64 at all!!"], ImportProblem.NOT_BASE64),
        "base64 of junk": ([base64.b64encode(b"hello world, not DER").decode()],
                           ImportProblem.NOT_A_PUBLIC_KEY),
        "truncated DER": (b64_lines(spki[:-7]), ImportProblem.NOT_A_PUBLIC_KEY),
        "trailing garbage": (b64_lines(spki + b"\x00\x00"), ImportProblem.NOT_A_PUBLIC_KEY),
        "PKCS#8 PEM private key": (pkcs8_pem, ImportProblem.PRIVATE_KEY),
        "RSA PRIVATE KEY PEM": (trad_pem, ImportProblem.PRIVATE_KEY),
        "PKCS#8 DER private key as base64": (b64_lines(pkcs8_der), ImportProblem.PRIVATE_KEY),
        "EC key where RSA was asked": (b64_lines(ec_spki), ImportProblem.WRONG_ALGORITHM),
        "EC key in PEM": (ec_key.public_key().public_bytes(
            Enc.PEM, Pub.SubjectPublicKeyInfo).decode().splitlines(),
            ImportProblem.WRONG_ALGORITHM),
        "certificate PEM": (["-----BEGIN CERTIFICATE-----", "MIIB", "-----END CERTIFICATE-----"],
                            ImportProblem.NOT_A_PUBLIC_KEY),
        "unterminated PEM": (["-----BEGIN PUBLIC KEY-----", *b64_lines(spki)],
                             ImportProblem.NOT_A_PUBLIC_KEY),
        "nothing": ([], ImportProblem.EMPTY),
    }


CASES = ["garbage base64", "base64 of junk", "truncated DER", "trailing garbage",
         "PKCS#8 PEM private key", "RSA PRIVATE KEY PEM", "PKCS#8 DER private key as base64",
         "EC key where RSA was asked", "EC key in PEM", "certificate PEM", "unterminated PEM",
         "nothing"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_paste_gets_a_clear_error_and_writes_nothing(engine: Engine,
                                                           pregenerated: list[AnyPrivateKey],
                                                           case: str) -> None:
    lines, problem = bad_pastes(pregenerated)[case]
    assert engine.execute("crypto key generate ed25519").ok  # something in the log already
    head = engine.store.head
    r = engine.execute("crypto key import authentication rsa peer", answers=[*lines, ""])
    assert not r.ok and r.events == []
    assert isinstance(r.error, KeyImportError) and r.error.problem is problem
    assert r.error.message.startswith("% ")
    assert engine.store.head == head
    assert engine.state.keys.imported_labels(KeyAlgorithm.RSA) == ()


def test_a_pasted_private_key_is_never_echoed_in_the_error(
        pregenerated: list[AnyPrivateKey]) -> None:
    lines, _ = bad_pastes(pregenerated)["PKCS#8 PEM private key"]
    with pytest.raises(KeyImportError) as err:
        parse_public_key("\n".join(lines), KeyAlgorithm.RSA)
    body = "".join(lines[1:-1])
    assert not any(chunk in err.value.message for chunk in textwrap.wrap(body, 16))
    assert "PRIVATE key" in err.value.message


def test_an_rsa_key_out_of_range_is_refused() -> None:
    # 256-bit RSA modulus built by hand (p, q small primes are enough to make a public key).
    numbers = rsa.RSAPublicNumbers(65537, (2**127 - 1) * (2**89 - 1))
    der = numbers.public_key().public_bytes(Enc.DER, Pub.SubjectPublicKeyInfo)
    with pytest.raises(KeyImportError) as err:
        parse_public_key(base64.b64encode(der).decode(), KeyAlgorithm.RSA)
    assert err.value.problem is ImportProblem.BAD_SIZE
