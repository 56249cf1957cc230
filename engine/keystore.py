"""The keystore: private keys sealed under per-key data keys, and crypto-shredding.

Theory of operation
-------------------
A private key is never stored in clear. When a key pair is generated (through the
`KeyGenerator` port), the keystore:

1. draws a fresh 256-bit data key (DEK) and a key id;
2. seals the private key: AES-256-GCM(DEK, nonce, PKCS#8 DER, aad = key id + SHA-256(SPKI));
   the result (`SealedKey`: ciphertext, nonce, key id, public key) goes into the
   `KeyPairGenerated` event, so it is in the append-only log;
3. wraps the DEK with the master key (AES-256-GCM again, aad = key id) and writes the wrapped DEK
   to `DATA_DIR/keystore/<key_id>.dek` (mode 0600, fsynced). The DEK is nowhere else.

`crypto key zeroize` destroys the DEK file (overwrite, fsync, unlink, fsync the directory) and
leaves a `<key_id>.zeroized` tombstone; the sealed blob stays in the log, untouched and useless.

Files and failures
------------------
`master.key` and every `.dek` are written to a temporary name (`<name>.<random>.tmp`), fsynced,
linked to their final name (which must not exist yet) and the directory fsynced: a full disk or
a crash leaves a whole file or none, never an empty `master.key` that would refuse key generation
forever, nor an empty `.dek`. `tidy_keystore` (engine/keytidy.py), run when the engine opens a
data directory (it holds the log's lock, so no other writer is at work), removes what an
interrupted write left:

- temporary files: never linked, so nothing refers to them;
- an empty `master.key` when no `.dek` exists: nothing was ever wrapped by it (an empty file
  wraps nothing, and with no data key there is nothing a master key could open), so a key
  generation may create a real one (orphans, below, do not count: whatever wrapped them, it was
  not an empty file);
- the `.dek` of every key id the log says is gone: a `KeyPairZeroized` (from `crypto key
  zeroize`, or from a regeneration that replaced the label's pairs) names it, so the zeroize is
  durable and its destruction did not finish. Crypto-shredding is finished here.

Any other `.dek` the log's state holds no live key pair for is an *orphan*: its
`KeyPairGenerated` never became durable (the sealed private key exists nowhere else, so the DEK
opens nothing), or the log was restored alone from an older backup and the key was made after
it. The open cannot tell these apart, and destroying the second kind would lose a key forever,
so orphans are never deleted: they are moved to `keystore/orphaned/` (0700, files 0600; rename,
then both directories fsynced, an existing file there never replaced) and the operator is told
(`%KEYS-4-ORPHANED`). Restoring the newer log and moving the files back brings the keys back.

Which keys the log says are gone is read from the log's `KeyPairZeroized` events, and only when
a `.dek` has no live pair: in the normal case opening reads nothing more, and after a crash or a
restore the scan runs once (it leaves no such `.dek` behind). The state keeps only live pairs:
folding every destroyed key id into it would grow every state and snapshot for good, to serve
a case that only a crash or a restore creates.

Order against the log (the log's append is the commit point of a command):
- key generation: the DEK is written *before* `KeyPairGenerated` is appended. The other order
  could acknowledge a key whose DEK then fails to be written: an acknowledged event naming a key
  nobody can open. If the append fails, the new DEK is discarded at once: nothing changed. (If
  the discard fails too, the next open finds an orphan and moves it aside.)
- zeroize (and the replaced keys of a new generation): `KeyPairZeroized` is appended *before*
  the DEK is destroyed (`Outcome.then`). Destroying first would make a failed append a lie: the
  command says nothing changed, the state still shows the key, but its private half is gone --
  an irreversible change no event records. Appending first makes the failure case exact (the
  key is untouched) and the success case a roll-forward: the log says zeroized, the destruction
  follows, and if it fails (or the process dies in between) `tidy_keystore` finishes it at the
  next open. The window in which a zeroized key's wrapped DEK still exists is that one step; it
  is useless without the master key, and the operator is told if it could not be closed.
  (Destroyed at open only because the log names the key as zeroized: a `.dek` the log does not
  know is moved aside, never destroyed, see above.)

The master key comes from `$TRUSTLEDGER_MASTER_KEY` (32 bytes written as 64 hex digits, or as
base64 — standard or URL-safe alphabet, padding optional) or else from `DATA_DIR/master.key`
(64 hex digits, mode 0600, created on the first key generation; refused if group or others can
read it). The environment wins when both exist.

What is needed for what
-----------------------
- replay, `show`, audit: the log alone (state keeps public keys and sealed blobs);
- using a private key (signing a CSR, decrypting a SCEP reply): log + keystore + master key.

The trade-off: the issue asked that "backups need only the log and the master key". That would
put the wrapped DEK into the log — and an append-only log can never forget it, so `zeroize` could
not make one key unrecoverable (only destroying the master key would, taking every key with it).
Per-key crypto-shredding needs per-key material that can be destroyed *outside* the log, so a
backup that must restore usable private keys is log + `keystore/` + master key. A backup of the
log alone (e.g. for an auditor) restores every fact but no private key. Caveat: on copy-on-write
or wear-levelled storage an overwrite is best effort; a stale copy of a wrapped DEK is still
useless without the master key, so keep the master key out of those backups (use the
environment variable) when that matters.

For `Engine.in_memory()` (no data dir) `MemoryKeystore` does the same with an ephemeral master key.

Other features use a private key through the `WithPrivateKey` effect (or, from a performer,
`keystore_of(ports).private_key(pair.sealed)`), e.g. to sign a PKCS#10 request:

    pair = ctx.state.keys.signing_pair(KeyAlgorithm.RSA, label)
    csr_der = yield WithPrivateKey(pair.sealed, lambda key: build_csr(key, subject))

Both raise `KeyZeroized` or `KeystoreError` (a TrustledgerError with a `%` message) when the key
cannot be opened.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine.effects import Effect, performs
from engine.errors import OperatorError, Reason
from engine.keyformats import Encoding, NoEncryption, PrivateFormat
from engine.keys import (
    CURVES,
    RSA_MIN_BITS,
    KeyAlgorithm,
    KeySpec,
    PrivateKey,
    SealedKey,
    spki_of,
)
from engine.keytidy import KEY_ID, KEYSTORE_DIR, MASTER_KEY_FILE, TMP_SUFFIX, key_ids
from events.durable import fsync_directory, write_all

if TYPE_CHECKING:
    from engine.runtime import Ports

MASTER_KEY_ENV = "TRUSTLEDGER_MASTER_KEY"
SEALING = "aes-256-gcm/pkcs8-der/v1"

_DEK_MAGIC = b"TLDEK\x01"
_HEX_KEY = re.compile(r"^[0-9A-Fa-f]{64}$")


# -- errors ------------------------------------------------------------------------------------


class KeystoreFailure(enum.Enum):
    ZEROIZED = "the key was zeroized"
    DEK_MISSING = "the key's data key is not in the keystore"
    WRONG_MASTER_KEY = "the master key does not open this data key"
    MASTER_KEY_MISSING = "no master key"
    MASTER_KEY_INVALID = "the master key is malformed"
    MASTER_KEY_EXPOSED = "the master key file is readable by others"
    DAMAGED = "sealed key or data key damaged"
    UNKNOWN_SEALING = "sealed by an unknown scheme"


class KeystoreError(OperatorError):
    """A private key cannot be used; `failure` says why. Shown as an IOS-style `%` message."""

    def __init__(self, failure: KeystoreFailure, message: str) -> None:
        reason = Reason.NOT_FOUND if failure in (KeystoreFailure.ZEROIZED,
                                                 KeystoreFailure.DEK_MISSING) else Reason.BAD_DATA
        super().__init__(reason, message)
        self.failure = failure


class KeystoreWriteFailed(OperatorError):
    """The keystore could not write a file (a full disk, an I/O error); nothing was kept."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(Reason.NOT_ALLOWED, f"Could not write the keystore: "
                                             f"{cause.strerror or cause}. Nothing was changed.")
        self.cause = cause


class KeyZeroized(KeystoreError):
    """The key's data key was destroyed by `crypto key zeroize`: the private key is gone."""

    def __init__(self, key_id: str) -> None:
        super().__init__(KeystoreFailure.ZEROIZED,
                         f"Key {key_id} was zeroized; its private key is unrecoverable.")
        self.key_id = key_id


# -- the master key --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterKey:
    """The 256-bit key that wraps every data key."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a master key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        """8 bytes naming this master key inside wrapped DEKs (to tell "wrong master key"
        from "damaged"). A hash of a random 256-bit key reveals nothing usable about it."""
        return hashlib.sha256(b"trustledger master key id\x00" + self.secret).digest()[:8]

    @classmethod
    def ephemeral(cls) -> MasterKey:
        return cls(os.urandom(32))


def parse_master_key(text: str, source: str) -> MasterKey:
    """64 hex digits, or base64 (standard or URL-safe, padding optional) of 32 bytes."""
    text = text.strip()
    if _HEX_KEY.match(text):
        return MasterKey(bytes.fromhex(text))
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                               validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeystoreError(KeystoreFailure.MASTER_KEY_INVALID,
                            f"{source} must hold a 32-byte key as 64 hex digits or base64.")
    return MasterKey(raw)


def load_master_key(data_dir: Path, environ: Mapping[str, str], *,
                    create: bool) -> MasterKey:
    """The master key from the environment, else `data_dir/master.key` (created if `create`)."""
    if environ.get(MASTER_KEY_ENV):
        return parse_master_key(environ[MASTER_KEY_ENV], f"${MASTER_KEY_ENV}")
    path = data_dir / MASTER_KEY_FILE
    if create and not path.exists():
        fresh = MasterKey.ephemeral()
        try:
            _write_new(path, fresh.secret.hex().encode() + b"\n")
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as e:
            raise KeystoreWriteFailed(e) from e
        else:
            return fresh
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeystoreError(KeystoreFailure.MASTER_KEY_MISSING,
                            f"No master key: {path} is missing and ${MASTER_KEY_ENV} is not "
                            "set.") from None
    if not stat.S_ISREG(mode):  # a directory, or a FIFO whose read would block for ever
        raise KeystoreError(KeystoreFailure.MASTER_KEY_INVALID,
                            f"{path} is not a regular file; it must hold the master key.")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(KeystoreFailure.MASTER_KEY_EXPOSED,
                            f"{path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
                            "chmod 600 it.")
    try:
        text = path.read_text("ascii", errors="replace")
    except OSError as e:
        raise KeystoreError(KeystoreFailure.MASTER_KEY_INVALID,
                            f"Cannot read the master key {path}: {e.strerror or e}.") from e
    return parse_master_key(text, str(path))


# -- the keystore port ---------------------------------------------------------------------------


class Keystore(Protocol):
    def seal(self, key: PrivateKey) -> SealedKey:
        """Seal `key` under a new data key (stored, wrapped, in the keystore)."""
        ...

    def private_key(self, sealed: SealedKey) -> PrivateKey:
        """Open a sealed key. Raises KeyZeroized or KeystoreError."""
        ...

    def destroy(self, key_id: str) -> None:
        """Crypto-shred: destroy the data key of `key_id` (idempotent)."""
        ...

    def discard(self, key_id: str) -> None:
        """Destroy the data key of a key no event names (its command failed): no tombstone."""
        ...

    def holds(self, key_id: str) -> bool:
        """Whether the data key of `key_id` is present (not zeroized, not lost)."""
        ...

    def key_ids(self) -> list[str]:
        """Every key id whose data key is present (to sweep keys no event recorded)."""
        ...


class _WrappingKeystore(ABC):
    """Sealing and opening, common to every adapter; subclasses say where wrapped DEKs live."""

    def seal(self, key: PrivateKey) -> SealedKey:
        # cryptography's AEAD and key loading come with the first key sealed or opened: a
        # `show` opens none (engine/keyformats.py says why serialization is not imported)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key_id = os.urandom(16).hex()
        dek = AESGCM.generate_key(bit_length=256)
        spki = spki_of(key)
        plain = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        nonce = os.urandom(12)
        sealed = AESGCM(dek).encrypt(nonce, plain, _sealing_aad(key_id, spki))
        self._store(key_id, _wrap(self._master(create=True), key_id, dek))
        return SealedKey(key_id, spki, nonce, sealed, SEALING)

    def private_key(self, sealed: SealedKey) -> PrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        _check_id(sealed.key_id)
        if sealed.sealing != SEALING:
            raise KeystoreError(KeystoreFailure.UNKNOWN_SEALING,
                                f"Key {sealed.key_id} is sealed with {sealed.sealing!r}, "
                                "which this build cannot open.")
        wrapped = self._load(sealed.key_id)
        if wrapped is None:
            if self._zeroized(sealed.key_id):
                raise KeyZeroized(sealed.key_id)
            raise KeystoreError(KeystoreFailure.DEK_MISSING,
                                f"The data key of key {sealed.key_id} is missing from the "
                                "keystore (restored the log without the keystore?).")
        dek = _unwrap(self._master(create=False), sealed.key_id, wrapped)
        try:
            plain = AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext,
                                        _sealing_aad(sealed.key_id, sealed.public_key))
            key = serialization.load_der_private_key(plain, password=None)
        except (InvalidTag, ValueError, UnsupportedAlgorithm):
            raise _damaged(sealed.key_id) from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                          | ed25519.Ed25519PrivateKey) or spki_of(key) != sealed.public_key:
            raise _damaged(sealed.key_id)
        return key

    def destroy(self, key_id: str) -> None:
        _check_id(key_id)
        self._erase(key_id, tombstone=True)

    def discard(self, key_id: str) -> None:
        _check_id(key_id)
        self._erase(key_id, tombstone=False)

    def holds(self, key_id: str) -> bool:
        _check_id(key_id)
        try:
            return self._load(key_id) is not None
        except KeystoreError:  # a data key file that cannot be read is not held
            return False

    @abstractmethod
    def _master(self, *, create: bool) -> MasterKey: ...

    @abstractmethod
    def _store(self, key_id: str, wrapped: bytes) -> None: ...

    @abstractmethod
    def _load(self, key_id: str) -> bytes | None: ...

    @abstractmethod
    def _erase(self, key_id: str, *, tombstone: bool) -> None: ...

    @abstractmethod
    def _zeroized(self, key_id: str) -> bool: ...

    @abstractmethod
    def key_ids(self) -> list[str]: ...


class DirectoryKeystore(_WrappingKeystore):
    """Wrapped DEKs as files `ROOT/<key_id>.dek` (0600); zeroized ones leave `.zeroized`."""

    def __init__(self, root: Path, master: Callable[[bool], MasterKey]) -> None:
        self.root = root
        self._master_source = master
        self._cached: MasterKey | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path,
                    environ: Mapping[str, str] | None = None) -> DirectoryKeystore:
        env = dict(os.environ if environ is None else environ)
        return cls(data_dir / KEYSTORE_DIR,
                   lambda create: load_master_key(data_dir, env, create=create))

    def _master(self, *, create: bool) -> MasterKey:
        if self._cached is None:
            self._cached = self._master_source(create)
        return self._cached

    def _path(self, key_id: str, suffix: str) -> Path:
        return self.root / f"{key_id}{suffix}"

    def _store(self, key_id: str, wrapped: bytes) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_new(self._path(key_id, ".dek"), wrapped)
        except OSError as e:
            raise KeystoreWriteFailed(e) from e

    def _load(self, key_id: str) -> bytes | None:
        path = self._path(key_id, ".dek")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # a directory in its place, EIO: this key cannot be opened
            raise KeystoreError(KeystoreFailure.DAMAGED,
                                f"The data key of key {key_id} cannot be read ({path}: "
                                f"{e.strerror or e}).") from e

    def _erase(self, key_id: str, *, tombstone: bool) -> None:
        path = self._path(key_id, ".dek")
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                write_all(fd, os.urandom(os.fstat(fd).st_size))  # fd is at 0
                os.fsync(fd)
            except OSError:
                pass  # best effort (see the caveat above): the unlink below is what counts
            finally:
                os.close(fd)
            path.unlink()
        if not tombstone:
            if fd >= 0:
                fsync_directory(self.root)
        elif self.root.exists():
            tomb = os.open(self._path(key_id, ".zeroized"), os.O_WRONLY | os.O_CREAT, 0o600)
            os.fsync(tomb)
            os.close(tomb)
            fsync_directory(self.root)

    def _zeroized(self, key_id: str) -> bool:
        return self._path(key_id, ".zeroized").exists()

    def key_ids(self) -> list[str]:
        """Key ids whose data key is present (for sweeping keys no event ever recorded)."""
        return key_ids(self.root)


class MemoryKeystore(_WrappingKeystore):
    """The same sealing with wrapped DEKs in a dict, under an ephemeral master key."""

    def __init__(self, master: MasterKey | None = None) -> None:
        self._master_key = master or MasterKey.ephemeral()
        self._wrapped: MutableMapping[str, bytearray] = {}
        self._destroyed: set[str] = set()

    def _master(self, *, create: bool) -> MasterKey:
        return self._master_key

    def _store(self, key_id: str, wrapped: bytes) -> None:
        self._wrapped[key_id] = bytearray(wrapped)

    def _load(self, key_id: str) -> bytes | None:
        got = self._wrapped.get(key_id)
        return bytes(got) if got is not None else None

    def _erase(self, key_id: str, *, tombstone: bool) -> None:
        buf = self._wrapped.pop(key_id, None)
        if buf is not None:
            buf[:] = bytes(len(buf))
        if tombstone:
            self._destroyed.add(key_id)

    def _zeroized(self, key_id: str) -> bool:
        return key_id in self._destroyed

    def key_ids(self) -> list[str]:
        return sorted(self._wrapped)


def open_keystore(data_dir: Path | None,
                  environ: Mapping[str, str] | None = None) -> Keystore:
    """The keystore for a data dir (`DATA_DIR/keystore`), or an in-memory one for None."""
    if data_dir is None:
        return MemoryKeystore()
    return DirectoryKeystore.in_data_dir(data_dir, environ)


# -- wrapping and sealing --------------------------------------------------------------------------


def _sealing_aad(key_id: str, spki: bytes) -> bytes:
    return b"trustledger private key v1\x00" + key_id.encode() + hashlib.sha256(spki).digest()


def _wrap(master: MasterKey, key_id: str, dek: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    aad = b"trustledger dek v1\x00" + key_id.encode()
    return _DEK_MAGIC + master.key_id + nonce + AESGCM(master.secret).encrypt(nonce, dek, aad)


def _unwrap(master: MasterKey, key_id: str, blob: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    head = len(_DEK_MAGIC)
    if len(blob) != head + 8 + 12 + 32 + 16 or not blob.startswith(_DEK_MAGIC):
        raise _damaged(key_id)
    if blob[head:head + 8] != master.key_id:
        raise KeystoreError(KeystoreFailure.WRONG_MASTER_KEY,
                            f"The data key of key {key_id} was wrapped by another master key "
                            f"(check ${MASTER_KEY_ENV} or {MASTER_KEY_FILE}).")
    nonce = blob[head + 8:head + 20]
    try:
        return AESGCM(master.secret).decrypt(nonce, blob[head + 20:],
                                             b"trustledger dek v1\x00" + key_id.encode())
    except InvalidTag:
        raise _damaged(key_id) from None


def _damaged(key_id: str) -> KeystoreError:
    return KeystoreError(KeystoreFailure.DAMAGED,
                         f"The sealed private key or data key of key {key_id} is damaged.")


def _check_id(key_id: str) -> None:
    if not KEY_ID.match(key_id):
        raise ValueError(f"not a key id: {key_id!r}")


# -- files -----------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (must not exist: FileExistsError) with mode 0600 holding `data`, durably
    and whole: written under a temporary name, fsynced, linked to `path`, directory fsynced.
    On any failure the temporary file is removed and `path` does not exist."""
    tmp = path.with_name(f"{path.name}.{os.urandom(6).hex()}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may only narrow it; make it exact
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # unlike rename, never replaces an existing file
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    try:
        fsync_directory(path.parent)
    except OSError:
        path.unlink(missing_ok=True)  # not known to be durable: the caller was told it failed
        raise


# -- key generation port ---------------------------------------------------------------------------


class KeyGenerator(Protocol):
    def generate(self, spec: KeySpec) -> PrivateKey:
        """A new private key of `spec`."""
        ...


@runtime_checkable
class SaysItsRsaFloor(Protocol):
    """A key generator that cannot make every RSA size the IOS range offers says its smallest,
    so the modulus question offers only what it makes and refuses the rest at the answer."""

    smallest_rsa_bits: int


class KeyGenerationRefused(OperatorError):
    """The key generator cannot make a key of this spec (nothing was generated or stored)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.INVALID_VALUE, message)


CRYPTOGRAPHY_MIN_RSA_BITS = 1024


class CryptographyKeyGenerator:
    """Real key generation (pyca/cryptography, OpenSSL's CSPRNG); RSA uses e = 65537.

    pyca/cryptography refuses RSA moduli under 1024 bits, so the 512..1023 part of the IOS
    range is offered by no question (`smallest_rsa_bits`, asked through `SmallestRsaModulus`)
    and refused here too with a clear message (such keys are broken anyway)."""

    smallest_rsa_bits = CRYPTOGRAPHY_MIN_RSA_BITS

    def generate(self, spec: KeySpec) -> PrivateKey:
        if spec.algorithm is KeyAlgorithm.RSA:
            if spec.size < CRYPTOGRAPHY_MIN_RSA_BITS:
                raise KeyGenerationRefused(
                    f"Cannot generate a {spec.size}-bit RSA key: this build's crypto library "
                    f"makes RSA keys of {CRYPTOGRAPHY_MIN_RSA_BITS} bits or more. No keys were "
                    "generated.")
            return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
        if spec.algorithm is KeyAlgorithm.ECDSA:
            return ec.generate_private_key(CURVES[spec.curve][0]())
        return ed25519.Ed25519PrivateKey.generate()


class KeyPoolExhausted(LookupError):
    """A test asked a KeyPool for more keys of a spec than it was given (a test bug)."""


class KeyPool:
    """Pre-generated keys handed out in order, each once: fast, deterministic key generation
    for tests. Never for a live device: the keys are known to whoever built the pool."""

    def __init__(self, keys: Iterable[PrivateKey]) -> None:
        self._keys = list(keys)
        self.handed_out: list[PrivateKey] = []

    def generate(self, spec: KeySpec) -> PrivateKey:
        for i, key in enumerate(self._keys):
            if spec.matches(key):
                self.handed_out.append(self._keys.pop(i))
                return key
        raise KeyPoolExhausted(f"no pre-generated key left for {spec}")


# -- effects (performed by the runtime through the ports) ------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class GenerateKeyPairs(Effect):
    """Generate one key per spec, then seal them all; the answer is the tuple of `SealedKey`s
    (never the keys). If any generation fails, nothing was sealed or stored."""

    specs: tuple[KeySpec, ...]


@dataclass(frozen=True)
class SmallestRsaModulus(Effect):
    """The smallest RSA modulus, in bits, the key generator makes: `engine.keys.RSA_MIN_BITS`
    unless the generator says a larger one (`SaysItsRsaFloor`). Asked before the modulus
    question, so an answer the generator would refuse is refused where it is typed."""


@dataclass(frozen=True)
class DestroyKeys(Effect):
    """Crypto-shred the data keys of `key_ids`, once the zeroize event is durable (an
    `Outcome.then` effect)."""

    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class WithPrivateKey(Effect, Generic[T]):
    """Open a sealed key and answer `use(private_key)`: the key never reaches the handler."""

    sealed: SealedKey
    use: Callable[[PrivateKey], T]


def keystore_of(ports: Ports) -> Keystore:
    """The ports' keystore, built on first use from `ports.data_dir` if none was injected."""
    if ports.keystore is None:
        ports.keystore = open_keystore(ports.data_dir)
    return ports.keystore


def keygen_of(ports: Ports) -> KeyGenerator:
    if ports.keygen is None:
        ports.keygen = CryptographyKeyGenerator()
    return ports.keygen


@performs(GenerateKeyPairs)
def _generate(ports: Ports, eff: GenerateKeyPairs) -> tuple[SealedKey, ...]:
    keygen = keygen_of(ports)
    keys = [keygen.generate(spec) for spec in eff.specs]
    for spec, key in zip(eff.specs, keys, strict=True):
        if not spec.matches(key):
            raise TypeError(f"the key generator returned a key that is not {spec}")
    store = keystore_of(ports)
    sealed: list[SealedKey] = []
    try:
        for key in keys:
            sealed.append(store.seal(key))
    except BaseException:
        for done in sealed:  # all or nothing: no data key of a key no event will name
            with contextlib.suppress(OSError):
                store.discard(done.key_id)
        raise
    return tuple(sealed)


@performs(SmallestRsaModulus)
def _smallest_rsa(ports: Ports, eff: SmallestRsaModulus) -> int:
    keygen = keygen_of(ports)
    floor = keygen.smallest_rsa_bits if isinstance(keygen, SaysItsRsaFloor) else RSA_MIN_BITS
    return max(RSA_MIN_BITS, floor)


@performs(DestroyKeys)
def _destroy(ports: Ports, eff: DestroyKeys) -> None:
    """Performed once the zeroize is in the log (`Outcome.then`): a failure here cannot undo
    it, so it is reported and finished by `tidy_keystore` at the next open."""
    store = keystore_of(ports)
    for key_id in eff.key_ids:
        try:
            store.destroy(key_id)
        except OSError as e:
            ports.say(f"% Warning: destroying the data key of key {key_id} could not be "
                      f"completed ({e.strerror or e}); it is finished when the data "
                      "directory is next opened.\n")


@performs(WithPrivateKey)
def _with_private_key(ports: Ports, eff: WithPrivateKey[Any]) -> Any:
    return eff.use(keystore_of(ports).private_key(eff.sealed))


# -- log redaction ---------------------------------------------------------------------------------

_SECRET_NAMES = re.compile(r"(private|secret|password|passphrase|challenge|dek|master|"
                           r"plaintext|token)", re.IGNORECASE)
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE "
                          r"KEY-----|$)", re.DOTALL)
REDACTED = "[redacted]"


def redact_secrets(logger: Any, method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """structlog processor: secrets never reach a log line.

    Masks any field whose name looks secret (private*, *secret*, password, challenge, dek,
    master*, ...), any private key object, any bytes value (keys and blobs are bytes; a log
    line needs their length, not their content), and any PEM private key block inside text.
    A yes/no or a count under a secret-sounding name (`static_challenge=False`) is no secret
    and is shown as it is. Put it first in the processor chain."""
    for name, value in list(event_dict.items()):
        if isinstance(value, bool | None):
            continue
        if _SECRET_NAMES.search(name) or isinstance(value, PrivateKey | MasterKey):
            event_dict[name] = REDACTED
        elif isinstance(value, bytes | bytearray | memoryview):
            event_dict[name] = f"<{len(value)} bytes redacted>"
        elif isinstance(value, str) and "PRIVATE KEY" in value:
            event_dict[name] = _PEM_PRIVATE.sub(REDACTED, value)
    return event_dict
