"""C2SP tlog-cosignature/v1 (Ed25519): a witness's timestamped signature on a checkpoint.

Theory of operation
-------------------
A cosignature is a signed-note signature line (engine.audit.note) on the checkpoint, by the
witness's key, of signature type 0x04:

    key id    = SHA-256(<name> || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4]
    signature = u64 big-endian timestamp (POSIX seconds) || Ed25519 signature (64 bytes)
    message   = "cosignature/v1\\n" "time <timestamp>\\n" <checkpoint body, final newline in>

The spec: "The key ID for Ed25519 cosignatures MUST be computed as SHA-256(<name> || "\\n" ||
0x04 || 32-byte Ed25519 cosigner public key)[:4]"; "The signature MUST be a
`timestamped_signature` structure"; the timestamp "MUST NOT exceed 2^63 - 1". A cosignature
states that, as of that time, this is the largest consistent tree head the witness saw for
the origin. The witness's verifier key is written `<name>+<hex key id>+<base64(0x04 || key)>`
(a C2SP vkey with signature type 0x04), the form `audit verify --witness-key` takes.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.audit.note import NoteError, Verifier, key_id, raw_public, signature_line

ALG_COSIGNATURE_V1 = 0x04
MAX_TIMESTAMP = 2**63 - 1


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosignature signs: the header line, the time line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """The cosignature line of witness `name` on the checkpoint `body` at `timestamp`."""
    public = raw_public(private_key.public_key())
    sig = private_key.sign(cosigned_message(body, timestamp))
    return signature_line(name, key_id(name, ALG_COSIGNATURE_V1, public),
                          struct.pack(">Q", timestamp) + sig)


@dataclass(frozen=True)
class CosignatureVerifier(Verifier):
    """A witness's key: checks a cosignature line (note.verify_note plugs it in)."""

    public: bytes  # the raw 32-byte Ed25519 public key

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return False
        message = cosigned_message(text.decode(), timestamp)
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature[8:], message)
        except InvalidSignature:
            return False
        return True

    def key_string(self) -> str:
        blob = base64.b64encode(bytes((ALG_COSIGNATURE_V1,)) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"


def cosignature_verifier(name: str, public_key: Ed25519PublicKey | bytes) -> CosignatureVerifier:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"witness name {name!r} is empty or holds a space or '+'")
    public = public_key if isinstance(public_key, bytes) else raw_public(public_key)
    return CosignatureVerifier(name, key_id(name, ALG_COSIGNATURE_V1, public), public)


def parse_cosignature_key(text: str) -> CosignatureVerifier:
    """Parse `<name>+<hex key id>+<base64(0x04 || public key)>`; NoteError if malformed, of
    another signature type, or if the key id does not match the name and key."""
    fields = text.strip().split("+", 2)
    if len(fields) != 3:
        raise NoteError("malformed witness key: expected NAME+KEYID+BASE64")
    name, hex_id, blob = fields
    try:
        raw_id = bytes.fromhex(hex_id)
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("malformed witness key: bad key id or base64") from None
    if len(raw_id) != 4 or len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
        raise NoteError("not an Ed25519 cosignature/v1 key (signature type 0x04, 32 bytes)")
    verifier = cosignature_verifier(name, raw[1:])
    if verifier.key_id != raw_id:
        raise NoteError(f"key id {hex_id} does not match the witness key named {name}")
    return verifier


def timestamp_of(signature: bytes) -> int:
    """The POSIX time a cosignature (key id stripped) says it was made."""
    if len(signature) < 8:
        raise NoteError("a cosignature is too short to hold its timestamp")
    return int(struct.unpack(">Q", signature[:8])[0])
