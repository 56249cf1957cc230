"""The log's bytes for one fixed history, pinned: what a change to the append path (issue 12's
group commit) must leave byte for byte as it was.

The history takes every way an append goes: one-event commits synced at once (the chain hash
from `COLD_SHA256`) and inside a group (hashlib's), batches of several events (spliced
cores), an imported `StoredEvent` (its stored form as it was), a group that outgrows one
segment, and the head marker a clean close writes. The digests were taken from the code
before the one-pass append (`events.filelog.sealed_frame`, main at bd4a418); the file
format, each command's frame position and the hash chain are all in these bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from events.device import ConfigurationCommitted
from events.filelog import HEAD_FILE, FileEventLog
from events.store import PendingEvent, StoredEvent
from tests.events.eventlog_support import Noted, Sampled

T0 = 1_700_000_000_000_000


def commit(n: int) -> PendingEvent:
    ev = ConfigurationCommitted(1_000_000_001 + n, "admin", "", "",
                                ((("hostname",), f"edge-{n - 1}" if n else None,
                                  f"edge-{n}"),))
    return PendingEvent(ev, "device", T0 + n, "admin", f"cmd-{n:04d}")


def noted(n: int) -> PendingEvent:
    return PendingEvent(Noted(f"note {n}" * (n % 7), n * 1_000_003), f"s{n % 3}", T0 - n)


def sampled(n: int) -> PendingEvent:
    return PendingEvent(Sampled("é" * n, -(2 ** (n % 64)), bytes(range(n % 256)), n % 2 == 0,
                                None, (n, ("x",) * (n % 4), {"k": n})), "s", T0 + 7 * n,
                        "actor" * (n % 3), "c" * n)


def write_history(root: Path) -> None:
    with FileEventLog.open(root, segment_bytes=4096) as log:
        log.append([commit(0)])  # a segment's first frame, synced at once
        for n in range(1, 4):
            log.append([commit(n)])
        log.append([noted(1), sampled(2), commit(4)])  # one command, three events
        with log.group_commit():
            for n in range(5, 40):  # outgrows the 4 KiB segment: two rotations
                log.append([commit(n) if n % 5 else noted(n)])
            log.append([sampled(40), sampled(41)])
        log.append([PendingEvent(StoredEvent("LogTestNoted", 1, {"text": "as stored", "n": 9,
                                                                 "extra": [1, 2]}),
                                 "import", T0, "importer", "log import")])
        with log.group_commit():
            log.append([sampled(300)])
            log.append([])  # nothing: no frame
            log.append([commit(41)])


EXPECTED = {
    # file name: SHA-256 of its bytes (sizes 4,069, 3,793, 2,098 and 105 bytes), from the
    # code before the one-pass append
    "00000000000000000001.seg": "4059d2599c957ffb2dac638b7b4d6b8a2bfb73027036e22eaba3b7d089f722c1",
    "00000000000000000023.seg": "5424a8407688a769f476cd6c0ddfa8faa70b67cda63e665522989723c9ee4edb",
    "00000000000000000043.seg": "31e74eb8f72f39073d806fbd92c8b3278569cd6bc61907fe7ede471755548cb0",
    "HEAD": "1888a04f40af46c0627bd1cc0529ccdc47adcdbb47275513a0194717b23f3f37",
}


def test_a_fixed_history_leaves_the_bytes_it_always_left(tmp_path: Path) -> None:
    write_history(tmp_path)
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(tmp_path.iterdir()) if p.suffix == ".seg" or p.name == HEAD_FILE}
    assert found == EXPECTED
