"""The CA's private key files: PEM PKCS#8, created 0600, refused if others can read them.

The keys live beside the log (`DIR/ca.key`, and `DIR/ra-signing.key`, `DIR/ra-encryption.key`
in RA mode), never in it, and are never logged. They are unencrypted on disk, like an OpenSSL
`-nodes` key: protect DIR (the file mode is checked on every open, as ssh does).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.ca.errors import CAError
from engine.errors import Reason
from engine.keys import KeyAlgorithm, KeySpec
from engine.ports import PrivateKey
from events.durable import fsync_directory, write_all

KEY_SPECS = ("rsa:2048", "rsa:4096", "ecdsa:p256")
"""The CA key types `ca init --key` takes."""


def key_spec(name: str) -> KeySpec:
    """The KeySpec (engine.keys) of a CA key type, one of `KEY_SPECS`."""
    if name == "ecdsa:p256":
        return KeySpec.ecdsa("nistp256")
    if name in KEY_SPECS:
        return KeySpec(KeyAlgorithm.RSA, int(name.split(":")[1]))
    raise ValueError(f"unknown key spec {name!r}; expected one of {', '.join(KEY_SPECS)}")


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Create `path` (mode 0600, must not exist) holding `key` as PEM PKCS#8, durably."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_new_file(path, pem, 0o600)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` (must not exist) with exactly `mode`, holding `data`, durably: the file
    and its directory entry are synced. A file this could not complete is removed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CAError(Reason.NOT_ALLOWED, f"{path} already exists") from None
    try:
        try:
            os.fchmod(fd, mode)  # the umask may only narrow it; make it exact
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(path.parent)
    except BaseException:
        path.unlink(missing_ok=True)
        raise



def load_private_key(path: Path) -> PrivateKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CAError(Reason.NOT_FOUND, f"{path} is missing") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CAError(Reason.NOT_ALLOWED, f"{path} is accessible by others "
                                          f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as e:
        raise CAError(Reason.BAD_DATA, f"{path} is not a PEM private key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CAError(Reason.BAD_DATA, f"{path} holds an unsupported key type")
    return key
