"""C2SP tlog-checkpoint: the body of a signed note that commits to a log's size and root.

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <root hash, standard base64>\\n
    [extension lines]\\n...

The origin names the log; trustledger's is `trustledger.example/<hostname>/<log id>`, fixed
when the log's audit key is made (its `AuditKeyCreated` event records it): the hostname then,
and as log id the first 16 hex digits of SHA-256 of the audit public key. The key is made for
one log (the device's, or the CA's) and never replaced, so the id is stable for the life of
the log and differs between logs; it is known before the key's own event is written, which a
hash of the log's first event would not be on a new log. The checkpoint is signed
(engine.audit.note) by the audit key, whose key name is the origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from engine.audit.note import NoteError

ORIGIN_DOMAIN = "trustledger.example"


def origin_for(hostname: str, public_key: bytes) -> str:
    """The device's (or CA's) origin line for the raw Ed25519 `public_key` of its audit key;
    see the module docstring."""
    host = "".join(c for c in hostname if not c.isspace() and c != "+") or "router"
    return f"{ORIGIN_DOMAIN}/{host}/{hashlib.sha256(public_key).hexdigest()[:16]}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def format(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(),
                 *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def checkpoint_body(origin_line: bytes, size: int, root: bytes) -> bytes:
    """`Checkpoint(origin, size, root).format()`, encoded, for a signer of many checkpoints:
    `origin_line` is the origin encoded once, its newline included."""
    return b"%s%d\n%s\n" % (origin_line, size, base64.b64encode(root))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body; NoteError (a ValueError) saying what is wrong."""
    if not text.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root hash line")
    origin, size_text, root_text, *ext = lines
    if not origin or any(not line for line in ext):
        raise NoteError("a checkpoint's origin and extension lines are not empty")
    if not size_text.isascii() or not size_text.isdigit() or \
            (size_text != "0" and size_text.startswith("0")):
        raise NoteError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the root hash is not base64") from None
    if len(root) != 32:
        raise NoteError(f"the root hash is {len(root)} bytes, not 32")
    return Checkpoint(origin, int(size_text), root, tuple(ext))
