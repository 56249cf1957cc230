"""Digest, content-encryption and signature algorithms SCEP uses, by OID.

Content encryption is CBC with PKCS#7 padding (RFC 5652 §6.3). Single DES (the cipher
micromdm's server and client actually send) is computed as TripleDES with the 8-byte key
repeated three times, which is mathematically DES; `cryptography` keeps TripleDES under
`hazmat.decrepit`. Keys and IVs come from the caller's `random_bytes`; nothing here draws
randomness of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from engine.scep.errors import ScepError, ScepErrorReason

__all__ = [
    "ContentCipher",
    "DigestAlgorithm",
    "RandomBytes",
    "signature_hash_oid",
    "x509_signature_algorithm",
]

X509Hash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

RandomBytes = Callable[[int], bytes]
"""The injected randomness source: `random_bytes(n)` returns exactly n random bytes."""


class DigestAlgorithm(enum.Enum):
    """SignerInfo digestAlgorithm; value = OID."""

    SHA1 = "1.3.14.3.2.26"
    SHA256 = "2.16.840.1.101.3.4.2.1"
    SHA384 = "2.16.840.1.101.3.4.2.2"
    SHA512 = "2.16.840.1.101.3.4.2.3"

    @property
    def oid(self) -> str:
        return self.value

    @property
    def caps_keyword(self) -> str:
        """Its GetCACaps keyword ("SHA-1", "SHA-256", ...)."""
        return _DIGEST_INFO[self][0]

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _DIGEST_INFO[self][1]()

    def x509_hash_algorithm(self) -> X509Hash:
        """The hash for an X.509/PKCS#10 signature; cryptography refuses SHA-1 there."""
        algo = self.hash_algorithm()
        if not isinstance(algo, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
            raise ValueError(f"{self.caps_keyword} cannot sign certificates or requests")
        return algo

    def digest(self, data: bytes) -> bytes:
        h = hashes.Hash(self.hash_algorithm())
        h.update(data)
        return h.finalize()

    @classmethod
    def from_oid(cls, oid: str) -> DigestAlgorithm:
        try:
            return cls(oid)
        except ValueError:
            raise ScepError(
                ScepErrorReason.UNSUPPORTED_ALGORITHM, f"unsupported digest algorithm {oid}"
            ) from None

    @classmethod
    def from_hash(cls, algorithm: hashes.HashAlgorithm | None) -> DigestAlgorithm:
        """The digest a `cryptography` hash object names (SHA-1/256/384/512 only)."""
        for digest in cls:
            if algorithm is not None and digest.hash_algorithm().name == algorithm.name:
                return digest
        name = algorithm.name if algorithm is not None else "none"
        raise ScepError(ScepErrorReason.UNSUPPORTED_ALGORITHM, f"unsupported digest {name}")


_DIGEST_INFO: dict[DigestAlgorithm, tuple[str, Callable[[], hashes.HashAlgorithm]]] = {
    DigestAlgorithm.SHA1: ("SHA-1", hashes.SHA1),
    DigestAlgorithm.SHA256: ("SHA-256", hashes.SHA256),
    DigestAlgorithm.SHA384: ("SHA-384", hashes.SHA384),
    DigestAlgorithm.SHA512: ("SHA-512", hashes.SHA512),
}

# signatureAlgorithm OIDs that name a hash; it must agree with the SignerInfo digestAlgorithm.
_SIGNATURE_HASH: dict[str, DigestAlgorithm | None] = {
    "1.2.840.113549.1.1.1": None,  # rsaEncryption: hash = digestAlgorithm (RFC 3370 §3.2)
    "1.2.840.113549.1.1.5": DigestAlgorithm.SHA1,  # sha1WithRSAEncryption (micromdm)
    "1.2.840.113549.1.1.11": DigestAlgorithm.SHA256,
    "1.2.840.113549.1.1.12": DigestAlgorithm.SHA384,
    "1.2.840.113549.1.1.13": DigestAlgorithm.SHA512,
    "1.2.840.10045.4.1": DigestAlgorithm.SHA1,  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.2": DigestAlgorithm.SHA256,
    "1.2.840.10045.4.3.3": DigestAlgorithm.SHA384,
    "1.2.840.10045.4.3.4": DigestAlgorithm.SHA512,
}
RSA_ENCRYPTION_OID = "1.2.840.113549.1.1.1"
RSASSA_PSS_OID = "1.2.840.113549.1.1.10"  # its hash is in the parameters, not the OID
MGF1_OID = "1.2.840.113549.1.1.8"  # id-mgf1 (RFC 4055 §2.2), PSS's one mask generation
ECDSA_SIGNATURE_OID = {
    DigestAlgorithm.SHA1: "1.2.840.10045.4.1",
    DigestAlgorithm.SHA256: "1.2.840.10045.4.3.2",
    DigestAlgorithm.SHA384: "1.2.840.10045.4.3.3",
    DigestAlgorithm.SHA512: "1.2.840.10045.4.3.4",
}


def signature_hash_oid(signature_oid: str, digest: DigestAlgorithm) -> str:
    """Check a SignerInfo signatureAlgorithm against its digestAlgorithm; return its family.

    Returns "rsa" or "ecdsa". rsaEncryption (RFC 8894 CertReps, ours) and the
    shaNWithRSAEncryption forms (micromdm sends sha1WithRSAEncryption) are both accepted.
    """
    if signature_oid not in _SIGNATURE_HASH:
        raise ScepError(
            ScepErrorReason.UNSUPPORTED_ALGORITHM,
            f"unsupported signature algorithm {signature_oid}",
        )
    implied = _SIGNATURE_HASH[signature_oid]
    if implied is not None and implied is not digest:
        raise ScepError(
            ScepErrorReason.UNSUPPORTED_ALGORITHM,
            f"signature algorithm {signature_oid} disagrees with digest {digest.caps_keyword}",
        )
    return "ecdsa" if signature_oid.startswith("1.2.840.10045.") else "rsa"


def x509_signature_algorithm(signature_oid: str) -> tuple[str, DigestAlgorithm]:
    """The family ("rsa" = PKCS#1 v1.5, "ecdsa") and hash of an X.509/PKCS#10
    signatureAlgorithm that names its hash (RSASSA-PSS, whose hash is a parameter, is not
    here). Bare rsaEncryption names no hash, so it cannot sign a request."""
    digest = _SIGNATURE_HASH.get(signature_oid)
    if digest is None:
        raise ScepError(
            ScepErrorReason.UNSUPPORTED_ALGORITHM,
            f"unsupported signature algorithm {signature_oid}",
        )
    return ("ecdsa" if signature_oid.startswith("1.2.840.10045.") else "rsa"), digest


class ContentCipher(enum.Enum):
    """EnvelopedData contentEncryptionAlgorithm (all CBC); value = OID."""

    AES_128_CBC = "2.16.840.1.101.3.4.1.2"
    AES_256_CBC = "2.16.840.1.101.3.4.1.42"
    DES_EDE3_CBC = "1.2.840.113549.3.7"
    DES_CBC = "1.3.14.3.2.7"

    @property
    def oid(self) -> str:
        return self.value

    @property
    def key_size(self) -> int:
        return _CIPHER_SIZES[self][0]

    @property
    def block_size(self) -> int:
        return _CIPHER_SIZES[self][1]

    @classmethod
    def from_oid(cls, oid: str) -> ContentCipher:
        try:
            return cls(oid)
        except ValueError:
            raise ScepError(
                ScepErrorReason.UNSUPPORTED_ALGORITHM, f"unsupported content cipher {oid}"
            ) from None

    def new_key(self, random_bytes: RandomBytes) -> bytes:
        """A fresh content-encryption key from `random_bytes` (DES keys get odd parity)."""
        key = _exactly(random_bytes, self.key_size)
        if self in (ContentCipher.DES_CBC, ContentCipher.DES_EDE3_CBC):
            key = bytes(_odd_parity(b) for b in key)
        return key

    def new_iv(self, random_bytes: RandomBytes) -> bytes:
        return _exactly(random_bytes, self.block_size)

    def encrypt(self, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """CBC-encrypt with PKCS#7 padding (RFC 5652 §6.3)."""
        self._check(key, iv)
        pad = self.block_size - len(plaintext) % self.block_size
        enc = self._cipher(key, iv).encryptor()
        return enc.update(plaintext + bytes([pad]) * pad) + enc.finalize()

    def decrypt(self, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        """CBC-decrypt and strip PKCS#7 padding; any inconsistency is DECRYPTION_FAILED."""
        if len(key) != self.key_size or len(iv) != self.block_size:
            raise ScepError(
                ScepErrorReason.DECRYPTION_FAILED,
                f"{self.name}: key or IV of the wrong length",
            )
        if not ciphertext or len(ciphertext) % self.block_size:
            raise ScepError(
                ScepErrorReason.DECRYPTION_FAILED,
                f"{self.name}: ciphertext is not a whole number of blocks",
            )
        dec = self._cipher(key, iv).decryptor()
        padded = dec.update(ciphertext) + dec.finalize()
        pad = padded[-1]
        if not 1 <= pad <= self.block_size or padded[-pad:] != bytes([pad]) * pad:
            raise ScepError(ScepErrorReason.DECRYPTION_FAILED, f"{self.name}: bad padding")
        return padded[:-pad]

    def _check(self, key: bytes, iv: bytes) -> None:
        if len(key) != self.key_size or len(iv) != self.block_size:
            raise ValueError(f"{self.name} needs a {self.key_size}-byte key and "
                             f"{self.block_size}-byte IV")

    def _cipher(self, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
        algo: algorithms.AES | TripleDES
        if self is ContentCipher.DES_CBC:
            algo = TripleDES(key * 3)  # K1 = K2 = K3: EDE collapses to single DES
        elif self is ContentCipher.DES_EDE3_CBC:
            algo = TripleDES(key)
        else:
            algo = algorithms.AES(key)
        return Cipher(algo, modes.CBC(iv))


_CIPHER_SIZES = {
    ContentCipher.AES_128_CBC: (16, 16),
    ContentCipher.AES_256_CBC: (32, 16),
    ContentCipher.DES_EDE3_CBC: (24, 8),
    ContentCipher.DES_CBC: (8, 8),
}


def _odd_parity(b: int) -> int:
    b &= 0xFE
    return b | (bin(b).count("1") + 1) % 2


def _exactly(random_bytes: RandomBytes, n: int) -> bytes:
    out = random_bytes(n)
    if len(out) != n:
        raise ValueError(f"random_bytes({n}) returned {len(out)} bytes")
    return out
