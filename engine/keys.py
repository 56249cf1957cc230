"""Key pairs as the device knows them: the pure model, folded from `events.keys`.

A `KeyRing` holds, per algorithm and label, the device's own key pairs (`KeyPair`: public key,
sealed private key, when it was made) and, per label, imported peer public keys (`ImportedKey`).
It is part of `DeviceState`, so it stays snapshot-encodable: frozen dataclasses, tuples, enums
and read-only mappings only. Nothing here performs I/O: generating, sealing and unsealing private
keys happens in `engine.keystore`, through ports.

Labels live in one namespace per algorithm (an RSA `mykey` and an ECDSA `mykey` are two things,
as on IOS XR). Usage keys are two pairs under one label, a signature pair and an encryption pair;
general-purpose keys are one pair.

What an operator pastes for `crypto key import authentication rsa` is checked in
engine/keyimport.py (only that command loads it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine.keyformats import Encoding, PublicFormat

if TYPE_CHECKING:
    from events.keys import KeyPairGenerated, PublicKeyImported

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

DEFAULT_LABEL = "the_default"
RSA_MIN_BITS = 512
RSA_MAX_BITS = 4096
RSA_DEFAULT_BITS = 2048
RSA_WEAK_BELOW = 2048  # NIST SP 800-131A: RSA moduli under 2048 bits are disallowed for signing


class KeyAlgorithm(enum.Enum):
    RSA = "rsa"
    ECDSA = "ecdsa"
    ED25519 = "ed25519"

    @property
    def shown(self) -> str:
        """As IOS prints it in messages: `RSA`, `ECDSA`, `ED25519`."""
        return self.value.upper()


class KeyUsage(enum.Enum):
    GENERAL = "general"
    SIGNATURE = "signature"
    ENCRYPTION = "encryption"


CURVES: Mapping[str, tuple[Callable[[], ec.EllipticCurve], int]] = MappingProxyType({
    "nistp256": (ec.SECP256R1, 256),
    "nistp384": (ec.SECP384R1, 384),
    "nistp521": (ec.SECP521R1, 521),
})
_CURVE_BY_OID_NAME = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What to generate: `KeySpec(RSA, 2048)`, `KeySpec(ECDSA, 384, "nistp384")`,
    `KeySpec(ED25519, 256)`. Bad combinations raise ValueError."""

    algorithm: KeyAlgorithm
    size: int
    curve: str = ""

    def __post_init__(self) -> None:
        if self.algorithm is KeyAlgorithm.RSA:
            if not RSA_MIN_BITS <= self.size <= RSA_MAX_BITS or self.curve:
                raise ValueError(f"bad RSA key spec: {self.size} bits, curve {self.curve!r}")
        elif self.algorithm is KeyAlgorithm.ECDSA:
            if self.curve not in CURVES or CURVES[self.curve][1] != self.size:
                raise ValueError(f"bad ECDSA key spec: {self.curve!r} with {self.size} bits")
        elif self.size != 256 or self.curve:
            raise ValueError("an Ed25519 key spec is 256 bits with no curve")

    @classmethod
    def ecdsa(cls, curve: str) -> KeySpec:
        return cls(KeyAlgorithm.ECDSA, CURVES[curve][1], curve)

    def matches(self, key: PrivateKey) -> bool:
        """Whether `key` is a key of this spec (used by key pools and generator checks)."""
        if self.algorithm is KeyAlgorithm.RSA:
            return isinstance(key, rsa.RSAPrivateKey) and key.key_size == self.size
        if self.algorithm is KeyAlgorithm.ECDSA:
            return (isinstance(key, ec.EllipticCurvePrivateKey)
                    and _CURVE_BY_OID_NAME.get(key.curve.name) == self.curve)
        return isinstance(key, ed25519.Ed25519PrivateKey)


# -- sealed private keys -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedKey:
    """A private key as the log keeps it: encrypted under its data key (see engine.keystore).

    Opening it needs the keystore's wrapped DEK for `key_id` and the master key."""

    key_id: str
    public_key: bytes  # DER SubjectPublicKeyInfo, bound into the AEAD's associated data
    nonce: bytes
    ciphertext: bytes
    sealing: str


# -- the key ring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyPair:
    """One of the device's own key pairs. The private half is only ever `sealed`."""

    key_id: str
    label: str
    algorithm: KeyAlgorithm
    usage: KeyUsage
    size: int
    curve: str
    public_key: bytes  # DER SubjectPublicKeyInfo
    nonce: bytes
    sealed_private_key: bytes
    sealing: str
    created: int  # µs since the epoch (the event's time)

    @property
    def sealed(self) -> SealedKey:
        """What `Keystore.private_key` (or the `WithPrivateKey` effect) needs to open it."""
        return SealedKey(self.key_id, self.public_key, self.nonce, self.sealed_private_key,
                         self.sealing)

    @classmethod
    def from_event(cls, ev: KeyPairGenerated, at: int) -> KeyPair:
        return cls(ev.key_id, ev.label, KeyAlgorithm(ev.algorithm), KeyUsage(ev.usage), ev.size,
                   ev.curve, ev.public_key, ev.nonce, ev.sealed_private_key, ev.sealing, at)


@dataclass(frozen=True, slots=True)
class ImportedKey:
    """A peer's public key imported with `crypto key import authentication`."""

    label: str
    algorithm: KeyAlgorithm
    usage: KeyUsage
    size: int
    public_key: bytes  # DER SubjectPublicKeyInfo
    imported: int  # µs since the epoch

    @classmethod
    def from_event(cls, ev: PublicKeyImported, at: int) -> ImportedKey:
        return cls(ev.label, KeyAlgorithm(ev.algorithm), KeyUsage(ev.usage), ev.size,
                   ev.public_key, at)


V = TypeVar("V")
_NO_PAIRS: Mapping[str, tuple[KeyPair, ...]] = MappingProxyType({})
_NO_IMPORTS: Mapping[str, tuple[ImportedKey, ...]] = MappingProxyType({})
_USAGE_ORDER = {KeyUsage.GENERAL: 0, KeyUsage.SIGNATURE: 1, KeyUsage.ENCRYPTION: 2}


def _slot(algorithm: KeyAlgorithm, label: str) -> str:
    return f"{algorithm.value} {label}"  # labels never hold spaces (they are one CLI word)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every key pair and imported public key, in the order they were made."""

    pairs: Mapping[str, tuple[KeyPair, ...]] = field(default_factory=lambda: _NO_PAIRS)
    imported: Mapping[str, tuple[ImportedKey, ...]] = field(default_factory=lambda: _NO_IMPORTS)

    # -- reading ----------------------------------------------------------------------------

    def pairs_of(self, algorithm: KeyAlgorithm, label: str) -> tuple[KeyPair, ...]:
        """The pairs under `label` (one general pair, or signature + encryption); () if none."""
        return self.pairs.get(_slot(algorithm, label), ())

    def labels(self, algorithm: KeyAlgorithm) -> tuple[str, ...]:
        return tuple(ps[0].label for ps in self.pairs.values() if ps[0].algorithm is algorithm)

    def all_pairs(self, algorithm: KeyAlgorithm) -> tuple[KeyPair, ...]:
        return tuple(p for ps in self.pairs.values() for p in ps if p.algorithm is algorithm)

    def signing_pair(self, algorithm: KeyAlgorithm, label: str) -> KeyPair | None:
        """The pair that signs for `label` (general, else the signature usage pair)."""
        pairs = self.pairs_of(algorithm, label)
        return next((p for p in pairs if p.usage is not KeyUsage.ENCRYPTION), None)

    def by_key_id(self, key_id: str) -> KeyPair | None:
        return next((p for ps in self.pairs.values() for p in ps if p.key_id == key_id), None)

    def imported_of(self, algorithm: KeyAlgorithm, label: str) -> tuple[ImportedKey, ...]:
        return self.imported.get(_slot(algorithm, label), ())

    def imported_labels(self, algorithm: KeyAlgorithm) -> tuple[str, ...]:
        return tuple(ks[0].label for ks in self.imported.values() if ks[0].algorithm is algorithm)

    def all_imported(self, algorithm: KeyAlgorithm) -> tuple[ImportedKey, ...]:
        return tuple(k for ks in self.imported.values() for k in ks if k.algorithm is algorithm)

    # -- folding (used by the evolve functions in engine.commands.keys) ------------------------

    def with_pair(self, pair: KeyPair) -> KeyRing:
        slot = _slot(pair.algorithm, pair.label)
        kept = [p for p in self.pairs.get(slot, ()) if p.usage is not pair.usage]
        merged = tuple(sorted([*kept, pair], key=lambda p: _USAGE_ORDER[p.usage]))
        return replace(self, pairs=_put(self.pairs, slot, merged))

    def without_keys(self, algorithm: KeyAlgorithm, label: str,
                     key_ids: tuple[str, ...]) -> KeyRing:
        slot = _slot(algorithm, label)
        left = tuple(p for p in self.pairs.get(slot, ()) if p.key_id not in key_ids)
        return replace(self, pairs=_put(self.pairs, slot, left))

    def with_imported(self, key: ImportedKey) -> KeyRing:
        slot = _slot(key.algorithm, key.label)
        kept = [k for k in self.imported.get(slot, ()) if k.usage is not key.usage]
        merged = tuple(sorted([*kept, key], key=lambda k: _USAGE_ORDER[k.usage]))
        return replace(self, imported=_put(self.imported, slot, merged))

    def without_imported(self, algorithm: KeyAlgorithm, label: str) -> KeyRing:
        return replace(self, imported=_put(self.imported, _slot(algorithm, label), ()))


def _put(table: Mapping[str, tuple[V, ...]], slot: str,
         value: tuple[V, ...]) -> Mapping[str, tuple[V, ...]]:
    new = {k: v for k, v in table.items() if k != slot}
    if value:
        new[slot] = value
    return MappingProxyType(new)


# -- public keys -----------------------------------------------------------------------------------


def spki_of(key: PrivateKey | PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a key (RFC 5280 §4.1.2.7)."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def describe(key: PrivateKey | PublicKey) -> tuple[KeyAlgorithm, int, str]:
    """(algorithm, size in bits, curve name) of a key."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    if isinstance(public, rsa.RSAPublicKey):
        return KeyAlgorithm.RSA, public.key_size, ""
    if isinstance(public, ec.EllipticCurvePublicKey):
        curve = _CURVE_BY_OID_NAME.get(public.curve.name, public.curve.name)
        return KeyAlgorithm.ECDSA, public.curve.key_size, curve
    return KeyAlgorithm.ED25519, 256, ""
