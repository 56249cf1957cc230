"""`parse_public_key`: what an operator pastes for `crypto key import authentication rsa` ->
a DER SubjectPublicKeyInfo, or a `KeyImportError` saying what was wrong with it.

Apart from engine/keys.py (the key model every open folds) because only that command needs it:
a `show` does not define its classes or compile its PEM pattern (issue 12's start-up row).
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm

from engine.errors import OperatorError, Reason
from engine.keys import RSA_MIN_BITS, KeyAlgorithm, PublicKey, describe, spki_of

IMPORT_MAX_BITS = 16384


class ImportProblem(enum.Enum):
    EMPTY = "nothing was pasted"
    NOT_BASE64 = "not base64"
    NOT_A_PUBLIC_KEY = "not a DER public key"
    PRIVATE_KEY = "a private key was pasted"
    WRONG_ALGORITHM = "a key of another algorithm"
    BAD_SIZE = "key size out of range"


class KeyImportError(OperatorError):
    """A pasted public key was refused; `problem` says why (nothing was recorded)."""

    def __init__(self, problem: ImportProblem, message: str) -> None:
        super().__init__(Reason.BAD_DATA, message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ParsedPublicKey:
    """A pasted public key, as `crypto key import` checked it."""

    spki: bytes  # DER SubjectPublicKeyInfo, whatever the pasted form was
    size: int
    pasted_format: str


_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_PUBLIC_PEM = {"PUBLIC KEY": "pem-spki", "RSA PUBLIC KEY": "pem-pkcs1"}


def parse_public_key(text: str, want: KeyAlgorithm) -> ParsedPublicKey:
    """What the operator pasted -> a public key of algorithm `want`.

    Accepted: base64 of a DER SubjectPublicKeyInfo or of a PKCS#1 RSAPublicKey (RFC 8017
    §A.1.1), the same in PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`), or an OpenSSH `ssh-rsa` line.
    A private key in any form is refused without echoing any of it."""
    text = text.strip()
    if not text:
        raise KeyImportError(ImportProblem.EMPTY, "No public key was entered.")
    if "PRIVATE KEY" in text:
        raise _private_pasted()
    if text.startswith(("ssh-", "ecdsa-sha2-")):
        return _check(_load_openssh(text), want, "openssh")
    pem = _PEM.search(text)
    if pem is not None:
        fmt = _PUBLIC_PEM.get(pem.group(1))
        if fmt is None:
            raise KeyImportError(ImportProblem.NOT_A_PUBLIC_KEY,
                                 f"A PEM '{pem.group(1)}' is not a public key.")
        der = _b64(pem.group(2))
    elif text.startswith("-----"):
        raise KeyImportError(ImportProblem.NOT_A_PUBLIC_KEY,
                             "The PEM block is incomplete (no matching END line).")
    else:
        der, fmt = _b64(text), ""
    public = _load_der(der)
    if not fmt:
        fmt = "spki" if spki_of(public) == der else "pkcs1"
    return _check(public, want, fmt)


def _b64(text: str) -> bytes:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KeyImportError(ImportProblem.NOT_BASE64,
                             "The pasted text is not valid base64 (nor PEM).") from None


def _private_pasted() -> KeyImportError:
    return KeyImportError(ImportProblem.PRIVATE_KEY,
                          "That is a PRIVATE key: paste only the public key. Nothing was "
                          "stored; treat that private key as exposed.")


def _load_der(der: bytes) -> PublicKey:
    from cryptography.hazmat.primitives import serialization  # see engine.keyformats

    try:
        public = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        if _is_private_der(der):
            raise _private_pasted() from None
        raise KeyImportError(ImportProblem.NOT_A_PUBLIC_KEY,
                             "The pasted data is not a DER SubjectPublicKeyInfo or PKCS#1 "
                             "RSAPublicKey (truncated or damaged?).") from None
    if not isinstance(public, PublicKey):
        raise KeyImportError(ImportProblem.WRONG_ALGORITHM,
                             f"Unsupported public key type ({type(public).__name__}).")
    return public


def _is_private_der(der: bytes) -> bool:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_der_private_key(der, password=None)
    except TypeError:
        return True  # an encrypted PKCS#8: still a private key
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _load_openssh(text: str) -> PublicKey:
    from cryptography.hazmat.primitives import serialization

    try:
        public = serialization.load_ssh_public_key(text.splitlines()[0].encode())
    except (ValueError, UnsupportedAlgorithm):
        raise KeyImportError(ImportProblem.NOT_A_PUBLIC_KEY,
                             "The OpenSSH public key line is damaged.") from None
    if not isinstance(public, PublicKey):
        raise KeyImportError(ImportProblem.WRONG_ALGORITHM,
                             f"Unsupported public key type ({type(public).__name__}).")
    return public


def _check(public: PublicKey, want: KeyAlgorithm, fmt: str) -> ParsedPublicKey:
    algorithm, size, _curve = describe(public)
    if algorithm is not want:
        raise KeyImportError(ImportProblem.WRONG_ALGORITHM,
                             f"The pasted key is an {algorithm.shown} public key; an "
                             f"{want.shown} public key was expected.")
    if algorithm is KeyAlgorithm.RSA and not RSA_MIN_BITS <= size <= IMPORT_MAX_BITS:
        raise KeyImportError(ImportProblem.BAD_SIZE,
                             f"A {size}-bit RSA key is out of range ({RSA_MIN_BITS} to "
                             f"{IMPORT_MAX_BITS} bits).")
    return ParsedPublicKey(spki_of(public), size, fmt)
