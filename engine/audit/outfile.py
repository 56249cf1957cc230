"""Writing an auditor's output file (`audit export -o`, `audit report -o`) whole, or not at all.

Rules: `-o` names a regular file (or none yet): the data goes to a temporary file beside it,
is fsync'ed, and renamed over it, then the directory is fsync'ed, so a reader sees the old file
or the new one, never half of one. A symbolic link is followed: the file it points to is the
one replaced, the link stays. Anything else that exists (a device such as /dev/stdout, a FIFO)
is written to as it is, never replaced by a regular file. A failure is a `%` error naming the
file, and leaves no temporary file behind.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from engine.errors import OperatorError, Reason
from events.durable import fsync_directory

T = TypeVar("T")


def write_out(out: Path, write: Callable[[BinaryIO], T]) -> T:
    """Call `write` with the file to write `out` through (see the module docstring)."""
    target = Path(os.path.realpath(out))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise _failed(out, e, "") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise OperatorError(Reason.INVALID_VALUE, f"{out} is a directory.")
        try:
            with open(target, "wb") as f:
                return write(f)
        except OSError as e:
            raise _failed(out, e, "") from None
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_directory(target.parent)
    except OSError as e:
        raise _failed(out, e, " It is left as it was.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _failed(out: Path, e: OSError, then: str) -> OperatorError:
    return OperatorError(Reason.NOT_ALLOWED, f"Could not write {out}: {e.strerror or e}.{then}")
