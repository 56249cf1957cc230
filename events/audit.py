"""Events of the audit trail (issue 18): the log's audit key.

The audit key signs the log's checkpoints (engine/audit/). Like every private key it is kept
sealed (engine.keystore): the log holds the public key, the sealed private key and its nonce;
the data key that opens it is in the keystore, wrapped by the master key. `origin` is the name
the checkpoints carry and the key is named by (C2SP tlog-checkpoint / signed-note).
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("AuditKeyCreated", version=1)
@dataclass(frozen=True, slots=True)
class AuditKeyCreated(Event):
    origin: str  # trustledger.example/<hostname>/<log id> (engine.audit.checkpoint.origin_for)
    key_id: str  # 32 lowercase hex digits: the keystore's data key file
    public_key: bytes  # the raw 32-byte Ed25519 public key
    spki: bytes  # DER SubjectPublicKeyInfo of it (bound into the sealing's associated data)
    sealed_private_key: bytes  # AES-256-GCM(DEK, nonce, PKCS#8 DER, aad)
    nonce: bytes
    sealing: str
