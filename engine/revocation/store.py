"""The CRL blob store: a CRL's bytes, content-addressed by their SHA-256.

`CrlFetched` names a CRL by the hex SHA-256 of its DER; the bytes live here, not in the log
(see events/revocation.py). The port:

- `put(der) -> sha256hex` stores the bytes (once: the same bytes are the same name) and
  returns only when they are durable, so the event that names them can be appended after;
- `get(sha256hex) -> bytes` gives them back, or raises `BlobMissing` when they are not there
  or do not hash to their name (damage is never handed out as a CRL).

`FileCrlBlobs` keeps them under `<data>/crls/<sha256>` (written to a temporary name, fsynced,
renamed, the directory fsynced; mode 0600 files in a 0700 directory); `MemoryCrlBlobs` is the
same in a dict, for in-memory engines and tests.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from engine.errors import OperatorError, Reason
from events.durable import fsync_directory, write_all

CRL_DIR = "crls"
_NAME = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(OperatorError):
    """The stored CRL named by an event is missing or altered."""

    def __init__(self, sha256: str, why: str) -> None:
        super().__init__(Reason.BAD_DATA, f"The stored CRL {sha256} is {why}.")
        self.sha256 = sha256
        self.why = why


class CrlBlobs(Protocol):
    def put(self, der: bytes) -> str:
        """Store `der` durably; its hex SHA-256."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes named `sha256`, checked; BlobMissing if missing or altered."""
        ...


def crl_blobs_of(log: object, local: CrlBlobs | None) -> CrlBlobs | None:
    """Where the CRLs a log names are kept: `local` (a data directory's `crls/`, or None) and,
    for a log in a shared store, the store too (engine/sharedlog.py `crl_blobs`)."""
    shared: Callable[[CrlBlobs | None], CrlBlobs] | None = getattr(log, "crl_blobs", None)
    return shared(local) if shared is not None else local


def _checked(sha256: str, data: bytes | None) -> bytes:
    if data is None:
        raise BlobMissing(sha256, "missing")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BlobMissing(sha256, "altered (its bytes do not hash to its name)")
    return data


class MemoryCrlBlobs:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, der: bytes) -> str:
        name = hashlib.sha256(der).hexdigest()
        self.blobs[name] = bytes(der)
        return name

    def get(self, sha256: str) -> bytes:
        return _checked(sha256, self.blobs.get(sha256))


class FileCrlBlobs:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, sha256: str) -> Path:
        if not _NAME.match(sha256):
            raise BlobMissing(sha256, "not a SHA-256 name")
        return self.directory / sha256

    def put(self, der: bytes) -> str:
        name = hashlib.sha256(der).hexdigest()
        target = self.path(name)
        try:
            if target.exists() and _digest_of(target) == name:
                return name
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.directory / f".{name}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, der)  # a short write (a disk filling up) is not the whole CRL
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            fsync_directory(self.directory)
        except OSError as e:
            raise OperatorError(Reason.BAD_DATA, f"The CRL could not be stored in "
                                f"{self.directory}: {e.strerror or e}.") from e
        return name

    def get(self, sha256: str) -> bytes:
        try:
            data: bytes | None = self.path(sha256).read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as e:
            raise BlobMissing(sha256, f"unreadable ({e.strerror or e})") from e
        return _checked(sha256, data)


def _digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
