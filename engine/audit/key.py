"""The log's audit key: an Ed25519 key made once per log, sealed in the keystore like every
private key; its public half (and the sealed private half) are in the `AuditKeyCreated` event,
folded into the state as `AuditKey`. The key is named by the log's origin (C2SP signed-note),
so `verifier()` is what `trustledger audit key` prints and `audit verify --key` takes."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.audit.checkpoint import origin_for
from engine.audit.note import Ed25519Verifier, ed25519_verifier, raw_public
from engine.keys import SealedKey

if TYPE_CHECKING:
    from engine.effects import Effect
    from engine.keystore import Keystore
    from events.audit import AuditKeyCreated


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The audit key as the state keeps it (never the private key in clear)."""

    origin: str
    key_id: str
    public_key: bytes  # raw Ed25519
    spki: bytes
    sealed_private_key: bytes
    nonce: bytes
    sealing: str
    created_at: int  # µs

    @classmethod
    def from_event(cls, ev: AuditKeyCreated, at: int) -> AuditKey:
        return cls(ev.origin, ev.key_id, ev.public_key, ev.spki, ev.sealed_private_key,
                   ev.nonce, ev.sealing, at)

    def sealed(self) -> SealedKey:
        return SealedKey(self.key_id, self.spki, self.nonce, self.sealed_private_key,
                         self.sealing)

    def verifier(self) -> Ed25519Verifier:
        return ed25519_verifier(self.origin, self.public_key)

    def open(self, keystore: Keystore) -> Ed25519PrivateKey:
        """The private key, from the keystore (KeystoreError/KeyZeroized if it cannot be)."""
        key = keystore.private_key(self.sealed())
        if not isinstance(key, Ed25519PrivateKey):  # the keystore checked the SPKI: a bug
            raise TypeError("the audit key is not an Ed25519 key")
        return key


def new_audit_key(hostname: str) -> Generator[Effect, Any, AuditKeyCreated]:
    """Make the audit key through the kernel's ports (an Ed25519 key from the KeyGenerator,
    sealed into the keystore by `GenerateKeyPairs`) and return the event that records it.
    The caller appends the event; if that fails it discards the data key
    (`keystore.discard`)."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from engine.keys import KeyAlgorithm, KeySpec
    from engine.keystore import GenerateKeyPairs  # the key effects, when a key is made
    from events.audit import AuditKeyCreated  # event modules load when used (events.registry)

    (sealed,) = yield GenerateKeyPairs((KeySpec(KeyAlgorithm.ED25519, 256),))
    public_key = load_der_public_key(sealed.public_key)
    if not isinstance(public_key, Ed25519PublicKey):  # the effect checked the spec: a bug
        raise TypeError("the audit key is not an Ed25519 key")
    public = raw_public(public_key)
    return AuditKeyCreated(origin_for(hostname, public), sealed.key_id, public,
                           sealed.public_key, sealed.ciphertext, sealed.nonce, sealed.sealing)
