"""Witness co-signing off the command path (the exchange itself: engine/audit/witness_client.py).

Theory of operation
-------------------
A trust decision's checkpoint is signed and kept synchronously, on the command path
(engine/audit/trail.py: one Ed25519 signature, no network). Only the witnesses' round-trip is
handed to a `Cosigner`: one daemon thread per engine, started on the first job. `submit`
replaces a job not yet started by the newer one: witnesses co-sign the latest checkpoint, and
the consistency proof from what they co-signed before covers the checkpoints skipped.

The thread reads the log's leaves (for a proof) through a read-only log of its own, never the
writer's handle. What a round-trip got back waits in `finished` until the command thread
`collect`s it (between commands: the shell's scheduler tick, a script's `run_due`, `close`):
the engine adds the cosignature lines to the checkpoint they were made for if it is still the
latest one, and prints the messages as asynchronous messages. `wait` blocks until the thread
is idle: `trustledger audit checkpoint` waits for its own round-trip. A process that ends with
a round-trip in flight abandons it; the next checkpoint's round-trip covers it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from engine.audit.checkpoint import Checkpoint
from engine.audit.merkle import CompactRange
from engine.audit.witness_client import LeafSource, Outcome, Witness, WitnessClient


@dataclass(frozen=True)
class Job:
    witnesses: tuple[Witness, ...]
    note: bytes  # the signed checkpoint, as it was when submitted
    checkpoint: Checkpoint
    range: CompactRange  # the tree at the checkpoint (a copy: the trail's keeps growing)


@dataclass(frozen=True)
class Finished:
    note: bytes  # the note that was sent (`Job.note`)
    outcome: Outcome


Leaves = Callable[[], AbstractContextManager[LeafSource]]  # a reader's leaves, opened per job


class Cosigner:
    """One background thread posting the newest checkpoint to its witnesses."""

    def __init__(self, client: WitnessClient, leaves: Leaves) -> None:
        self.client = client
        self.leaves = leaves
        self._cond = threading.Condition()
        self._pending: Job | None = None
        self._busy = False
        self._finished: list[Finished] = []
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        with self._cond:
            self._pending = job  # a job not yet started is replaced: the newest is enough
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="witness-cosigner",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def collect(self) -> list[Finished]:
        """What finished since the last call, oldest first."""
        with self._cond:
            done, self._finished = self._finished, []
        return done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or running; False if `timeout` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy,
                                       timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None)
                job, self._pending = self._pending, None
                self._busy = True
            assert job is not None
            outcome = Outcome(b"", ())
            try:
                outcome = self._exchange(job)
            except Exception as e:  # never die quietly: the engine says it
                outcome = Outcome(b"", (f"%AUDIT-4-WITNESS: co-signing failed: "
                                        f"{type(e).__name__}: {e}",))
            finally:
                with self._cond:
                    self._finished.append(Finished(job.note, outcome))
                    self._busy = False
                    self._cond.notify_all()

    def _exchange(self, job: Job) -> Outcome:
        with self.leaves() as leaves:
            return self.client.cosign(job.witnesses, job.note, job.checkpoint, job.range,
                                      leaves)
