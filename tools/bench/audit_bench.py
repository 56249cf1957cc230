"""Audit benchmark (issue 18 item 8): the Merkle tree's cost on the commit path, the outsider's
verifier against `sha256sum` and against the log's own replay, and proof generation.

    python tools/bench/audit_bench.py [--events N] [--syncs N] [--rounds N] [--dir DIR] [--keep]

Everything runs in one process, in one directory (one disk), and is printed beside a baseline
measured in the same run (DESIGN.md: ratios, never absolute promises). Rows:

- tree append: `CompactRange.append(leaf_hash(chain hash))` per event (the cost every append
  pays when the log has an audit key), against SHA-256 of one 32-byte chain hash alone.
- commits with checkpoints: one `ConfigurationCommitted` appended and fdatasync'ed per commit
  (`FileEventLog.append`), then the audit trail's `observe` and `checkpoint` (every commit is a
  trust decision: one Ed25519 signature each, made by the log's thread while the next
  commit's fdatasync runs in the kernel, events/fdsync.py), the trail written in the
  head-marker step, wired as the engine wires it (`on_mark`, `while_syncing`); the clock
  stops once every checkpoint is signed. Against the raw floor (`os.write` of the very frame
  bytes the log writes + `os.fdatasync`). Target: >= 0.9x the floor. Printed for reference:
  the same commits without the audit; the floor with its fdatasync made through Linux AIO
  as ours is (submit, wait: nothing overlapped), so the row's margin is not read as the AIO
  path's own; ours where the kernel has no AIO (the signatures made before each fdatasync);
  and the CPU each commit costs, the process's and the command thread's (the kernel's
  fdatasync work runs on a kernel worker with AIO: not in either).
- verify: `audit verify` of an N-event export (`verify_bundle`: every chain hash recomputed, the
  tree rebuilt, the signature checked), in events/s, against `sha256sum` of the same bundle
  file (bytes/s turned into events/s at the bundle's bytes per event) and against replaying the
  same log into the device state (`replay_rows`, what opening without a snapshot does).
- proofs: building the prover's tree from N chain hashes, then inclusion proofs of random
  seqs and consistency proofs from random sizes, per second.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import engine.engine  # noqa: E402,F401  (every feature's folds, as replay needs them)
from engine.audit.bundle import verify_bundle  # noqa: E402
from engine.audit.checkpoint import Checkpoint, origin_for  # noqa: E402
from engine.audit.export import export_bundle  # noqa: E402
from engine.audit.key import AuditKey  # noqa: E402
from engine.audit.merkle import CompactRange, MerkleTree, leaf_hash  # noqa: E402
from engine.audit.note import raw_public, sign_note  # noqa: E402
from engine.audit.trail import AuditTrail, Bound  # noqa: E402
from engine.state import DeviceState, replay_rows  # noqa: E402
from events.device import ConfigurationCommitted  # noqa: E402
from events.fdsync import Syncer  # noqa: E402
from events.filelog import FileEventLog, encode_frame  # noqa: E402
from events.store import GENESIS, PendingEvent, Recorded, seal  # noqa: E402

EPOCH_US = 1_700_000_000_000_000


def commit(n: int) -> PendingEvent:
    old = f"hostname edge-{n - 1:07d}" if n else None
    ev = ConfigurationCommitted(1_000_000_001 + n, "admin", "", "",
                                ((("hostname",), old, f"hostname edge-{n:07d}"),))
    return PendingEvent(ev, "device", EPOCH_US + n, "admin", f"cmd-{n:07d}")


def audit_key(private: Ed25519PrivateKey) -> AuditKey:
    public = raw_public(private.public_key())
    return AuditKey(origin_for("bench", public), "0" * 32, public, b"", b"", b"", "", 0)


def best(rounds: int, fn):  # type: ignore[no-untyped-def]
    """The fastest of `rounds` runs of fn() -> (count, seconds)."""
    results = [fn() for _ in range(rounds)]
    return min(results, key=lambda r: r[1] / max(r[0], 1))


def row(name: str, count: int, seconds: float, unit: str = "events/s") -> float:
    rate = count / seconds if seconds else float("inf")
    print(f"  {name:<58} {rate:>14,.0f} {unit}")
    return rate


# -- tree append ------------------------------------------------------------------------------


def tree_append(n: int) -> tuple[int, float]:
    hashes = [i.to_bytes(32, "big") for i in range(n)]
    rng = CompactRange()
    append = rng.append
    t0 = time.perf_counter()
    for h in hashes:
        append(leaf_hash(h))
    return n, time.perf_counter() - t0


def sha_only(n: int) -> tuple[int, float]:
    import hashlib

    hashes = [i.to_bytes(32, "big") for i in range(n)]
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for h in hashes:
        sha(b"\x00" + h).digest()
    return n, time.perf_counter() - t0


# -- commits ----------------------------------------------------------------------------------


Timing = tuple[int, float, float, float]  # commits, wall s, process CPU s, thread CPU s


def our_frames(n: int) -> list[bytes]:
    """The frames the log writes for n one-event commits, byte for byte (the floor's)."""
    frames, prev = [], GENESIS
    for i in range(n):
        [rec] = seal([commit(i)], i + 1, prev)
        frames.append(encode_frame(i + 1, [rec]))
        prev = rec.hash
    return frames


def raw_floor(path: Path, frames: list[bytes],
              sync: Callable[[int], None] = os.fdatasync) -> Timing:
    """`os.write` of each frame, then `sync` (os.fdatasync: the floor)."""
    n = len(frames)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    try:
        t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
        for frame in frames:
            os.write(fd, frame)
            sync(fd)
        return (n, time.perf_counter() - t0, time.process_time() - c0,
                time.thread_time() - h0)
    finally:
        os.close(fd)


def aio_floor(path: Path, frames: list[bytes]) -> Timing:
    """The floor with the fdatasync submitted to the kernel and waited for (events/fdsync.py
    with nothing to do meanwhile)."""
    syncer = Syncer()
    try:
        return raw_floor(path, frames, lambda fd: syncer.fdatasync(fd, _nothing))
    finally:
        syncer.close()


def _nothing() -> None:
    """The work done meanwhile by the AIO floor: none."""


def commits(root: Path, n: int, audited: bool) -> Timing:
    shutil.rmtree(root, ignore_errors=True)
    private = Ed25519PrivateKey.generate()
    events = [commit(i) for i in range(n)]
    with FileEventLog.open(root) as log:
        trail = AuditTrail(root, audit_key(private), lambda: private,
                           Bound(0, (), GENESIS, None), None) if audited else None
        if trail is not None:
            log.on_mark, log.while_syncing = trail.on_mark, trail.sign_pending
        t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
        for ev in events:
            records = log.append([ev])
            if trail is not None and trail.observe(records, log.position):
                trail.checkpoint()
        if trail is not None:
            assert trail.latest is not None  # every signature made
        return (n, time.perf_counter() - t0, time.process_time() - c0,
                time.thread_time() - h0)


def no_aio_commits(root: Path, n: int) -> Timing:
    """Ours where the kernel offers no Linux AIO: each commit's signature job runs before
    its fdatasync."""
    with mock.patch.object(Syncer, "_context", lambda self: None):
        return commits(root, n, True)


def interleaved(base: Path, frames: list[bytes], rounds: int) -> dict[str, list[Timing]]:
    """Chunks of the floor, ours and the reference rows, interleaved: load elsewhere hits
    all alike, each one first in turn."""
    chunk = len(frames)
    measure = {"floor": lambda: raw_floor(base / "raw", frames),
               "ours": lambda: commits(base / "audited", chunk, True),
               "plain": lambda: commits(base / "plain", chunk, False),
               "aio": lambda: aio_floor(base / "aio", frames),
               "noaio": lambda: no_aio_commits(base / "noaio", chunk)}
    runs: dict[str, list[Timing]] = {key: [] for key in measure}
    order = list(measure)
    for i in range(rounds * 5):
        turn = i % len(order)
        for key in order[turn:] + order[:turn]:
            runs[key].append(measure[key]())
    return runs


def rate_of(count: int, seconds: float, *cpu: float) -> float:
    return count / seconds


def audit_cpu(n: int) -> tuple[int, float]:
    """What the audit adds to a commit, without the disk: observe + checkpoint, every
    signature made (by `latest`, at the end: no fdatasync here)."""
    private = Ed25519PrivateKey.generate()
    trail = AuditTrail(Path("."), audit_key(private), lambda: private,
                       Bound(0, (), GENESIS, None), None)
    records = [Recorded(i + 1, "device", ConfigurationCommitted.type_name, 1, 0, "", "", {},
                        b"", i.to_bytes(32, "big"), []) for i in range(n)]
    t0 = time.perf_counter()
    for rec in records:
        if trail.observe([rec], None):
            trail.checkpoint()
    assert trail.latest is not None and trail.latest.checkpoint.size == n
    return n, time.perf_counter() - t0


# -- verify, replay, proofs ------------------------------------------------------------------


def build_log(root: Path, n: int) -> tuple[AuditKey, bytes, Checkpoint, list[bytes]]:
    """An n-event log (100-event batches, one group commit), its key and checkpoint."""
    shutil.rmtree(root, ignore_errors=True)
    private = Ed25519PrivateKey.generate()
    key = audit_key(private)
    rng, chains = CompactRange(), []
    with FileEventLog.open(root) as log, log.group_commit():
        for start in range(0, n, 100):
            for rec in log.append([commit(i) for i in range(start, min(start + 100, n))]):
                rng.append(leaf_hash(rec.hash))
                chains.append(rec.hash)
    cp = Checkpoint(key.origin, n, rng.root())
    return key, sign_note(cp.format(), key.origin, private), cp, chains


def sha256sum(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def replay(root: Path) -> tuple[int, float]:
    with FileEventLog.open(root, readonly=True) as log:
        t0 = time.perf_counter()
        state = replay_rows(DeviceState(), log.read_rows(typed=True))
        return state.seq, time.perf_counter() - t0


def proofs(chains: list[bytes], count: int) -> None:
    n = len(chains)
    t0 = time.perf_counter()
    tree = MerkleTree(leaf_hash(h) for h in chains)
    row("prover's tree built from the chain hashes", n, time.perf_counter() - t0)
    pick = random.Random(18)
    seqs = [pick.randrange(n) for _ in range(count)]
    t0 = time.perf_counter()
    for i in seqs:
        tree.inclusion_proof(i, n)
    row("inclusion proofs (random seq, full tree)", count, time.perf_counter() - t0,
        "proofs/s")
    olds = [pick.randrange(1, n) for _ in range(count)]
    t0 = time.perf_counter()
    for m in olds:
        tree.consistency_proof(m, n)
    row("consistency proofs (random old size)", count, time.perf_counter() - t0, "proofs/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="export / replay size")
    ap.add_argument("--syncs", type=int, default=1000,
                    help="durable commits per round (in 5 interleaved chunks)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=args.dir))
    ok = True
    try:
        print(f"audit_bench: {args.events:,} events, {args.syncs:,} durable commits, "
              f"best of {args.rounds}, in {base}")
        print("tree append")
        sha = row("baseline: SHA-256 of 0x00 || chain hash", *best(args.rounds,
                                                                    lambda: sha_only(200_000)))
        app = row("CompactRange.append(leaf_hash(chain hash))", *best(
            args.rounds, lambda: tree_append(200_000)))
        print(f"  {'tree append cost / bare leaf hash':<58} {sha / app:>14.2f} x")
        print("commits (1 event, 1 fdatasync each): best chunk of each, chunks interleaved")
        chunk = max(args.syncs // 5, 1)
        frames = our_frames(chunk)
        runs = interleaved(base, frames, args.rounds)
        floor, ours, plain, aio, noaio = (max(rate_of(*t) for t in runs[k])
                                          for k in ("floor", "ours", "plain", "aio", "noaio"))
        row(f"baseline: raw append + fdatasync of our frames ({len(frames[-1])} B)",
            int(floor), 1.0)
        row("ours: append + tree + signed checkpoint per commit", int(ours), 1.0)
        row("(reference) ours without the audit", int(plain), 1.0)
        row("(reference) the floor, its fdatasync through Linux AIO", int(aio), 1.0)
        row("(reference) ours without Linux AIO (signing, then fdatasync)", int(noaio), 1.0)
        for name, key in (("raw floor", "floor"), ("ours", "ours"), ("without the audit",
                                                                    "plain")):
            proc = min(t[2] / t[0] for t in runs[key]) * 1e6
            thread = min(t[3] / t[0] for t in runs[key]) * 1e6
            print(f"  {'CPU per commit, ' + name + ' (process / command thread)':<58} "
                  f"{proc:>7.0f} / {thread:.0f} us")
        ratio = ours / floor
        ok &= ratio >= 0.9
        print(f"  {'with checkpoints / raw floor (target >= 0.90)':<58} {ratio:>14.2f} x"
              f"  {'PASS' if ratio >= 0.9 else 'FAIL'}")
        print(f"  {'with checkpoints / the floor through Linux AIO':<58} {ours / aio:>14.2f} x")
        print(f"  {'with checkpoints / without the audit':<58} {ours / plain:>14.2f} x")
        print(f"  {'without Linux AIO / raw floor':<58} {noaio / floor:>14.2f} x")
        paired = statistics.median(rate_of(*o) / rate_of(*f)
                                   for o, f in zip(runs["ours"], runs["floor"], strict=True))
        print(f"  {'(load check) median of chunk / the floor chunk of its round':<58} "
              f"{paired:>14.2f} x")
        n, seconds = audit_cpu(2000)
        row("(diagnostic) observe + checkpoint alone, no disk", n, seconds, "commits/s")
        print(f"verify of a {args.events:,}-event export")
        t0 = time.perf_counter()
        key, note, cp, chains = build_log(base / "log", args.events)
        print(f"  (log written in {time.perf_counter() - t0:.1f} s)")
        bundle = base / "export.bundle"
        with FileEventLog.open(base / "log", readonly=True) as log, open(bundle, "wb") as f:
            t0 = time.perf_counter()
            export_bundle(log, key, note, cp, f)
            row("export (audit export)", args.events, time.perf_counter() - t0)
        size = bundle.stat().st_size
        data = bundle.read_bytes()
        verifier = key.verifier()
        vrate = sum_rate = rrate = 0.0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            report = verify_bundle(data, verifier)
            seconds = time.perf_counter() - t0
            assert report.ok, report.failure
            vrate = max(vrate, row("ours: audit verify (chain + tree + signature)",
                                   args.events, seconds))
            sum_rate = max(sum_rate, row(f"baseline: sha256sum of the bundle "
                                         f"({size / args.events:.0f} B/event)",
                                         args.events, sha256sum(bundle)))
            rrate = max(rrate, row("baseline: replay of the same log into the state",
                                   *replay(base / "log")))
        print(f"  {'best: verify / sha256sum':<58} {vrate / sum_rate:>14.2f} x")
        print(f"  {'best: verify / replay':<58} {vrate / rrate:>14.2f} x")
        print(f"proofs over {args.events:,} events")
        proofs(chains, 20_000)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
