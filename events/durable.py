"""Durability helpers shared by every writer of files (the log, its head marker, snapshots, the
keystore, the CA's key files).

`write_all` writes the whole of its bytes (os.write may write fewer). A created, renamed or
removed file is durable only once its directory is synced too (POSIX
leaves directory entries in the page cache until then): every writer that makes a file appear
or disappear calls `fsync_directory` on its parent before it reports success.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make the entries of directory `path` (files created, renamed, removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`: a short write (a disk filling up, a signal) is followed by
    the rest, never taken for the whole."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
