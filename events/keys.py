"""Events of the device's key pairs (stream `device`): generated, zeroized, imported, removed.

What the log holds about a key pair: its label, algorithm, usage and size, the public key (DER
SubjectPublicKeyInfo), and the private key *sealed*: PKCS#8 DER encrypted with AES-256-GCM under
a per-key data key (DEK). The DEK itself is not in the log: it lives, wrapped by the master key,
in the keystore beside the log (`DATA_DIR/keystore/<key_id>.dek`), so `crypto key zeroize` can
destroy it (crypto-shredding) while every event stays untouched. No private key material ever
appears here in clear.

Algorithms are `"rsa" | "ecdsa" | "ed25519"`; usages `"general" | "signature" | "encryption"`
(usage keys are two pairs under one label, one event each, appended in the same batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("KeyPairGenerated", version=1)
@dataclass(frozen=True, slots=True)
class KeyPairGenerated(Event):
    key_id: str  # 32 lowercase hex digits; names the DEK file in the keystore
    label: str
    algorithm: str  # "rsa" | "ecdsa" | "ed25519"
    usage: str  # "general" | "signature" | "encryption"
    size: int  # RSA modulus bits; EC field bits (256, 384, 521); 256 for Ed25519
    curve: str  # "nistp256" | "nistp384" | "nistp521" for ECDSA, else ""
    public_key: bytes  # DER SubjectPublicKeyInfo
    sealed_private_key: bytes  # AES-256-GCM(DEK, nonce, PKCS#8 DER, aad) — ciphertext + tag
    nonce: bytes  # 12 bytes, the GCM nonce of sealed_private_key
    sealing: str  # the sealing scheme, so a later build can read older blobs


@event("KeyPairZeroized", version=1)
@dataclass(frozen=True, slots=True)
class KeyPairZeroized(Event):
    """The data keys of every pair under `label` were destroyed: the private keys are gone.

    `reason` is "zeroize" (`crypto key zeroize`) or "replaced" (regenerating an existing label
    destroys the old pairs first). Trustpoints using the label lose their certificates."""

    label: str
    algorithm: str
    key_ids: tuple[str, ...]
    reason: str


@event("PublicKeyImported", version=1)
@dataclass(frozen=True, slots=True)
class PublicKeyImported(Event):
    """`crypto key import authentication rsa`: a peer's public key, normalised to DER SPKI."""

    label: str
    algorithm: str  # "rsa"
    usage: str  # "general" | "signature" | "encryption"
    size: int
    public_key: bytes  # DER SubjectPublicKeyInfo
    pasted_format: str  # "spki" | "pkcs1" | "pem-spki" | "pem-pkcs1" | "openssh"


@event("PublicKeyRemoved", version=1)
@dataclass(frozen=True, slots=True)
class PublicKeyRemoved(Event):
    """An imported public key label was removed (zeroize, or replaced by a new import)."""

    label: str
    algorithm: str
    reason: str  # "zeroize" | "replaced"
