"""A witness directory: the witness's key, its log, and the one lock its decisions take.

    DIR/witness.key   `PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || Ed25519 seed)>`, 0600
    DIR/log/          the witness's event log (events/witness.py, stream `witness`)

`WitnessService.open` folds the log into a `WitnessState` (the logs followed, the latest
checkpoint co-signed per origin) and holds the log's writer lock: one witness process per
directory. `add_checkpoint` decides (engine.audit.witness) and appends under one lock, and a
co-signature is returned only once its `CheckpointCosigned` is durable (the log's append
fdatasyncs), so a crash or a restart never forgets what it vouched for. The witness key is a
file (0600) and not the device's keystore: a witness is a separate party, usually on another
host, with nothing else to protect.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.cosignature import (
    ALG_COSIGNATURE_V1,
    CosignatureVerifier,
    cosignature_verifier,
)
from engine.audit.note import NoteError, key_id, parse_verifier_key, raw_public
from engine.audit.witness import (
    AddCheckpoint,
    BadRequest,
    Decision,
    Latest,
    WitnessState,
    decide,
    parse_add_checkpoint,
    refuse,
)
from engine.errors import OperatorError, Reason
from engine.folds import FoldTable
from engine.ports import Clock, SystemClock
from events.durable import fsync_directory
from events.filelog import FileEventLog
from events.store import PendingEvent
from events.witness import CheckpointCosigned, CheckpointRefused, WitnessLogFollowed

KEY_FILE = "witness.key"
STREAM = "witness"
DEFAULT_NAME = "trustledger.example/witness"


def _signer_text(name: str, key: Ed25519PrivateKey) -> str:
    kid = key_id(name, ALG_COSIGNATURE_V1, raw_public(key.public_key()))
    seed = bytes((ALG_COSIGNATURE_V1,)) + key.private_bytes_raw()
    return f"PRIVATE+KEY+{name}+{kid.hex()}+{base64.b64encode(seed).decode()}\n"


def _read_signer(path: Path) -> tuple[str, Ed25519PrivateKey]:
    try:
        fields = path.read_text().strip().split("+", 4)
        blob = base64.b64decode(fields[4], validate=True)
        if fields[:2] != ["PRIVATE", "KEY"] or len(blob) != 33 or \
                blob[0] != ALG_COSIGNATURE_V1:
            raise ValueError
        key = Ed25519PrivateKey.from_private_bytes(blob[1:])
    except (ValueError, IndexError):
        raise OperatorError(Reason.INVALID_VALUE, f"{path} is not a witness key.") from None
    return fields[2], key


def init_witness(d: Path, name: str = DEFAULT_NAME) -> CosignatureVerifier:
    """Make a new witness directory with a fresh key; its verifier key."""
    try:
        cosignature_verifier(name, b"\0" * 32)
    except NoteError as err:
        raise OperatorError(Reason.INVALID_VALUE, f"Witness name: {err}.") from None
    path = d / KEY_FILE
    if path.exists():
        raise OperatorError(Reason.NOT_ALLOWED,
                            f"{d} already holds a witness key: it is never replaced.")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)  # as a device's (the umask cannot widen)
    (d / "log").mkdir(mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        text = _signer_text(name, key).encode()
        while text:  # a short write is followed by the rest
            text = text[os.write(fd, text):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(tmp, path)  # never over an existing key
    tmp.unlink()
    fsync_directory(d)
    return cosignature_verifier(name, key.public_key())


def witness_key(d: Path) -> CosignatureVerifier:
    name, key = _read_signer(_key_path(d))
    return cosignature_verifier(name, key.public_key())


def _key_path(d: Path) -> Path:
    path = d / KEY_FILE
    if not path.is_file():
        raise OperatorError(Reason.NOT_FOUND, f"{d} is not a witness directory (no "
                            f"{KEY_FILE}): `trustledger audit witness init {d}` makes one.")
    return path


def _followed(state: WitnessState, ev: WitnessLogFollowed, at: int) -> WitnessState:
    verifier = parse_verifier_key(ev.verifier_key)
    keys = tuple(k for k in state.logs.get(ev.origin, ()) if k != verifier)
    return replace(state, logs={**state.logs, ev.origin: (*keys, verifier)})


def _cosigned(state: WitnessState, ev: CheckpointCosigned, at: int) -> WitnessState:
    return replace(state, latest={**state.latest, ev.origin: Latest(ev.size, ev.root)})


WITNESS_FOLDS: FoldTable[WitnessState] = FoldTable("witness", {
    WitnessLogFollowed: [_followed],
    CheckpointCosigned: [_cosigned],
    CheckpointRefused: [],  # evidence: changes nothing
})
"""The witness aggregate's fold table (engine/folds.py): its whole state comes from these."""


class WitnessService:
    """An open witness directory (see the module docstring)."""

    def __init__(self, d: Path, clock: Clock | None = None) -> None:
        self.name, self._key = _read_signer(_key_path(d))
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self.log = FileEventLog.open(d / "log")
        state = WitnessState()
        try:
            for rec in self.log.read():
                state = WITNESS_FOLDS.fold(state, rec.event, rec.at, rec.seq)
        except BaseException:
            self.log.close()
            raise
        self.state = state

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> WitnessService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def follow(self, verifier_keys: Iterable[str]) -> list[str]:
        """Follow the logs of these verifier keys (`audit key` prints them; the key's name
        is the log's origin); the origins newly followed."""
        added: list[str] = []
        for text in verifier_keys:
            try:
                verifier = parse_verifier_key(text)
            except NoteError as err:
                raise OperatorError(Reason.INVALID_VALUE, f"Log key: {err}.") from None
            if verifier in self.state.logs.get(verifier.name, ()):
                continue
            self._append(WitnessLogFollowed(verifier.name, verifier.key_string()))
            added.append(verifier.name)
        return added

    def add_checkpoint(self, body: bytes) -> Decision:
        """Answer one add-checkpoint request; the check and the durable record are one step."""
        try:
            request: AddCheckpoint = parse_add_checkpoint(body)
        except BadRequest as err:
            return refuse(HTTPStatus.BAD_REQUEST, f"malformed request: {err}")
        with self._lock:
            decision = decide(request, self.state, self.name, self._key,
                              self.clock.now_us() // 1_000_000)
            cp = decision.checkpoint
            if decision.cosigned is not None and cp is not None:
                self._append(CheckpointCosigned(cp.origin, cp.size, cp.root,
                                                decision.timestamp, request.note))
            elif decision.evidence and cp is not None:
                self._append(CheckpointRefused(cp.origin, request.old_size, cp.size,
                                               int(decision.status), decision.reason,
                                               request.note))
        return decision

    def _append(self, event: WitnessLogFollowed | CheckpointCosigned | CheckpointRefused
                ) -> None:
        [rec] = self.log.append([PendingEvent(event, STREAM, self.clock.now_us(), "witness")])
        self.state = WITNESS_FOLDS.fold(self.state, event, rec.at, rec.seq)

