"""Events of a checkpoint witness (stream `witness`, its own log in the witness directory):
the logs it follows, the checkpoints it co-signed, and the ones it refused as evidence.

The witness's state is the fold of these events (engine/audit/witness.py `WitnessState`): for
each origin it follows, the log's verifier keys and the latest checkpoint it co-signed. A
co-signature is returned only after its `CheckpointCosigned` is durable, so a restart never
forgets a checkpoint it vouched for (C2SP tlog-witness: "The witness MUST persist the new
checkpoint before responding").
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("WitnessLogFollowed", version=1)
@dataclass(frozen=True, slots=True)
class WitnessLogFollowed(Event):
    """From now on the witness accepts checkpoints of `origin` signed by this key."""

    origin: str
    verifier_key: str  # `<name>+<hex key id>+<base64(0x01 || key)>`, name = origin


@event("CheckpointCosigned", version=1)
@dataclass(frozen=True, slots=True)
class CheckpointCosigned(Event):
    """The witness verified and co-signed a checkpoint: its latest for `origin`."""

    origin: str
    size: int
    root: bytes
    timestamp: int  # the cosignature's POSIX time
    note: bytes  # the checkpoint as submitted (signed note)


@event("CheckpointRefused", version=1)
@dataclass(frozen=True, slots=True)
class CheckpointRefused(Event):
    """A checkpoint correctly signed by a followed log that the witness refused to co-sign:
    a rollback, a fork of what it co-signed, or a consistency proof that does not verify.
    Kept as evidence of the log's misbehaviour (C2SP tlog-witness: the witness "MAY log the
    request even if the consistency proof doesn't verify")."""

    origin: str
    old_size: int
    size: int
    status: int  # the HTTP status answered
    reason: str
    note: bytes
