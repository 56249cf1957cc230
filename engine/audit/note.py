"""C2SP signed-note: a text signed by one or more named Ed25519 keys.

Theory of operation
-------------------
A note is its text (UTF-8, non-empty, ending in a newline), one blank line, then one
signature line per signer: `— <name> <base64(key id || signature)>` (U+2014, a space, the key
name, a space). A signature covers the text bytes, final newline included. A key is named (no
spaces, no `+`) and identified by a 4-byte key id, for Ed25519 (type byte 0x01) the first four
bytes of SHA-256(name || 0x0A || 0x01 || public key). A verifier key is written
`<name>+<hex key id>+<base64(0x01 || public key)>` (the form `audit verify --key` takes and
`audit key` prints); a signer key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.

`verify_note` keeps the rule of golang.org/x/mod/sumdb/note: signatures by keys it does not
know are ignored, a signature by a known key (same name and key id) that does not verify makes
the note invalid, and at least one known key must have signed. Other signature types (a
witness's cosignature, type 0x04) plug in as another `Verifier` with their own `verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.keyformats import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # an em dash and a space start every signature line
MAX_SIGNATURES = 100  # the C2SP limit a verifier may enforce


class NoteError(ValueError):
    """A note or a key that does not parse or does not verify (text says which)."""


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes((key_type,)) + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} is empty or holds a space or '+'")


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier(ABC):
    """A named key that can check a signature over a note's text (Ed25519 below; a witness's
    cosignature in engine/audit/cosignature.py)."""

    name: str
    key_id: bytes

    @abstractmethod
    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (the bytes after the key id) signs `text` with this key."""


@dataclass(frozen=True)
class Ed25519Verifier(Verifier):
    public: bytes  # the raw 32-byte Ed25519 public key

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text)
        except InvalidSignature:
            return False
        return True

    def key_string(self) -> str:
        """`<name>+<hex key id>+<base64(0x01 || public key)>`."""
        blob = base64.b64encode(bytes((ALG_ED25519,)) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"


def ed25519_verifier(name: str, public_key: Ed25519PublicKey | bytes) -> Ed25519Verifier:
    _check_name(name)
    public = public_key if isinstance(public_key, bytes) else raw_public(public_key)
    return Ed25519Verifier(name, key_id(name, ALG_ED25519, public), public)


def verifier_key(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    return ed25519_verifier(name, public_key).key_string()


def _split_key(text: str, parts: int) -> list[str]:
    # The base64 part may itself hold a '+': split from the left only.
    fields = text.strip().split("+", parts - 1)
    if len(fields) != parts:
        raise NoteError("malformed key: expected NAME+KEYID+BASE64")
    return fields


def _key_blob(hex_id: str, blob: str) -> tuple[bytes, int, bytes]:
    try:
        raw_id = bytes.fromhex(hex_id)
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("malformed key: bad key id or base64") from None
    if len(raw_id) != 4 or len(raw) < 2:
        raise NoteError("malformed key: bad key id or key length")
    return raw_id, raw[0], raw[1:]


def parse_verifier_key(text: str) -> Ed25519Verifier:
    """Parse `<name>+<hex key id>+<base64(0x01 || public key)>`; NoteError if it is not an
    Ed25519 verifier key or its key id does not match its name and key."""
    name, hex_id, blob = _split_key(text, 3)
    _check_name(name)
    raw_id, alg, public = _key_blob(hex_id, blob)
    if alg != ALG_ED25519 or len(public) != 32:
        raise NoteError(f"unsupported key type {alg} (only Ed25519, 0x01) or key length")
    if key_id(name, alg, public) != raw_id:
        raise NoteError(f"key id {hex_id} does not match the key named {name}")
    return Ed25519Verifier(name, raw_id, public)


def signer_key(name: str, private_key: Ed25519PrivateKey) -> str:
    """`PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` (Go's note.NewSigner form)."""
    seed = private_key.private_bytes_raw()
    kid = key_id(name, ALG_ED25519, raw_public(private_key.public_key()))
    return f"PRIVATE+KEY+{name}+{kid.hex()}+" + \
        base64.b64encode(bytes((ALG_ED25519,)) + seed).decode()


def parse_signer_key(text: str) -> tuple[str, Ed25519PrivateKey]:
    fields = _split_key(text, 5)
    if fields[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("malformed signer key: expected PRIVATE+KEY+NAME+KEYID+BASE64")
    name, hex_id, blob = fields[2:]
    _check_name(name)
    raw_id, alg, seed = _key_blob(hex_id, blob)
    if alg != ALG_ED25519 or len(seed) != 32:
        raise NoteError("unsupported signer key type or length")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    if key_id(name, alg, raw_public(private.public_key())) != raw_id:
        raise NoteError(f"key id {hex_id} does not match the key named {name}")
    return name, private


def _check_text(text: str) -> bytes:
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text is non-empty lines, each ending in a newline")
    return text.encode()


def signature_line(name: str, kid: bytes, signature: bytes) -> str:
    return f"{SIG_PREFIX}{name} {base64.b64encode(kid + signature).decode()}\n"


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey, *,
              kid: bytes | None = None) -> bytes:
    """The signed note: `text`, a blank line, and the Ed25519 signature line of `name`.
    `kid`: the key id, if the caller keeps it (a signer of many notes saves deriving it)."""
    _check_name(name)
    msg = _check_text(text)
    if kid is None:
        kid = key_id(name, ALG_ED25519, raw_public(private_key.public_key()))
    return msg + b"\n" + signature_line(name, kid, private_key.sign(msg)).encode()


class NoteSigner:
    """One key signing many notes (a log's checkpoints): the key's name is checked and the
    signature line's fixed part built once, so each note costs its signature and a few
    concatenations. `sign(text)` equals `sign_note(text, name, private_key)` byte for byte;
    the caller gives well-formed text (`_check_text`), as a checkpoint's body always is."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, kid: bytes) -> None:
        _check_name(name)
        self._sign = private_key.sign
        self._line = f"\n{SIG_PREFIX}{name} ".encode()  # the blank line, then the line's start
        self._kid = kid

    def sign(self, text: bytes) -> bytes:
        return b"".join((text, self._line, base64.b64encode(self._kid + self._sign(text)),
                         b"\n"))


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def parse_note(note: bytes) -> tuple[str, list[Signature]]:
    """Split a note into its text and its signature lines (nothing verified)."""
    try:
        whole = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("a note is UTF-8 text") from None
    cut = whole.rfind("\n\n")
    if cut < 0 or not whole.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    text, sig_block = whole[:cut + 1], whole[cut + 2:]
    _check_text(text)
    sigs: list[Signature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        fields = line[len(SIG_PREFIX):].split(" ")
        if len(fields) != 2:
            raise NoteError(f"malformed signature line {line[:40]!r}")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {fields[0]} is not base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature of {fields[0]} is too short")
        sigs.append(Signature(fields[0], blob[:4], blob[4:]))
    if not sigs or len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"a note holds 1 to {MAX_SIGNATURES} signatures, not {len(sigs)}")
    return text, sigs


def verify_note(note: bytes, verifiers: Sequence[Verifier]) -> tuple[str, list[str]]:
    """The note's text and the names of the `verifiers` whose signatures on it verified.
    NoteError if it is malformed, if a known key's signature does not verify, or if no known
    key signed it."""
    text, sigs = parse_note(note)
    msg = text.encode()
    known = {(v.name, v.key_id): v for v in verifiers}
    names: list[str] = []
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if not v.verify(msg, sig.signature):
            raise NoteError(f"the signature of {sig.name} ({sig.key_id.hex()}) does not verify")
        if sig.name not in names:
            names.append(sig.name)
    if not names:
        raise NoteError("the note is not signed by any of the given keys")
    return text, names
