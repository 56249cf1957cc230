"""Replay equals live: whatever sequence of commands ran, folding the log from disk (from the
start, or from a snapshot plus the tail) gives the same state and the same show outputs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine import Engine, snapshot
from engine.ports import FakeClock
from engine.state import DeviceState, replay_rows
from events.filelog import FileEventLog
from tests.core.engine_support import SHOWS, open_engine

NAMES = st.sampled_from(["r1", "r2", "edge-7", "core01"])
DOMAINS = st.sampled_from(["example.com", "lab.example.net", "a.b"])


def replayed(path: Path, use_snapshot: bool) -> DeviceState:
    with FileEventLog.open(path / "log", readonly=True) as log:
        state = snapshot.load(path / "snapshots", log) if use_snapshot else None
        state = state or DeviceState()
        return replay_rows(state, log.read_rows(state.seq + 1, typed=True))


def shows(state: DeviceState) -> dict[str, str]:
    frozen = Engine.frozen(state)
    return {line: frozen.execute(line).output for line in SHOWS}


class ReplayEqualsLive(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tl-replay-"))
        self.clock = FakeClock()
        self.engine = open_engine(self.dir, self.clock)

    def teardown(self) -> None:
        self.engine.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, line: str, answers: list[str] | None = None) -> None:
        self.clock.advance(1)
        self.engine.execute(line, answers=answers)

    @rule()
    def configure(self) -> None:
        self._run("configure")

    @rule(name=NAMES)
    def hostname(self, name: str) -> None:
        self._run(f"hostname {name}")

    @rule(domain=DOMAINS)
    def domain(self, domain: str) -> None:
        self._run(f"domain name {domain}")

    @rule(what=st.sampled_from(["no hostname", "no domain name"]))
    def remove(self, what: str) -> None:
        self._run(what)

    @rule(line=st.sampled_from(["commit", "abort", "exit", "show configuration"]))
    def session(self, line: str) -> None:
        self._run(line, ["yes"])

    @rule(answer=st.sampled_from(["yes", "no", "cancel", ""]))
    def end(self, answer: str) -> None:
        self._run("end", [answer])

    @rule(n=st.integers(1, 3))
    def rollback(self, n: int) -> None:
        self._run(f"rollback configuration last {n}")

    @rule()
    def snapshot_now(self) -> None:
        snapshot.save(self.dir / "snapshots", self.engine.state, self.engine.store.head)

    @invariant()
    def replay_equals_live(self) -> None:
        if not hasattr(self, "engine"):
            return
        live = self.engine.state
        for use_snapshot in (False, True):
            again = replayed(self.dir, use_snapshot)
            assert again == live
        assert shows(live) == shows(replayed(self.dir, False))


ReplayEqualsLive.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestReplayEqualsLive = ReplayEqualsLive.TestCase


def test_reopen_uses_the_snapshot_and_matches_a_full_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "EVERY", 5)
    e = open_engine(tmp_path)
    for i in range(12):
        e.execute("configure")
        e.execute(f"hostname r{i}")
        e.execute("end", answers=["yes"])
    e.close()
    snaps = sorted((tmp_path / "snapshots").glob("*.snap"))
    # Every 5 events; the newest two kept, and older ones one per SPAN (all in one here).
    assert [int(p.stem) for p in snaps] == [5, 10, 12]
    loaded: list[tuple[DeviceState, object] | None] = []
    real_load = snapshot.load_with_tail
    monkeypatch.setattr(snapshot, "load_with_tail", lambda d, log, *rest: loaded.append(
        real_load(d, log, *rest)) or loaded[-1])
    again = open_engine(tmp_path)
    assert loaded[0] is not None and loaded[0][0].seq == 12
    assert again.state == replayed(tmp_path, use_snapshot=False)
    assert again.state.hostname == "r11"
    again.close()


def test_a_snapshot_that_no_longer_matches_the_log_is_ignored(tmp_path: Path) -> None:
    e = open_engine(tmp_path)
    for line in ("configure", "hostname r1", "commit", "hostname r2", "commit", "end"):
        e.execute(line)
    state, head = e.state, e.store.head
    e.close()
    bogus = snapshot.encode(state, (head[0], b"\x00" * 32))
    (tmp_path / "snapshots").mkdir(exist_ok=True)
    for p in (tmp_path / "snapshots").glob("*.snap"):
        p.unlink()
    (tmp_path / "snapshots" / f"{head[0]:020d}.snap").write_bytes(bogus)
    with FileEventLog.open(tmp_path / "log", readonly=True) as log:
        assert snapshot.load(tmp_path / "snapshots", log) is None
    (tmp_path / "snapshots" / f"{head[0]:020d}.snap").write_bytes(b"\x92garbage")
    with FileEventLog.open(tmp_path / "log", readonly=True) as log:
        assert snapshot.load(tmp_path / "snapshots", log) is None
    reopened = open_engine(tmp_path)
    assert reopened.state == state
    reopened.close()


def test_a_log_shorter_than_its_snapshot_refuses_to_open(tmp_path: Path) -> None:
    """Losing the last acknowledged batch whole (cut at a frame boundary) leaves a valid
    log; the snapshot proves it was longer, so the engine refuses instead of going back in
    time silently."""
    from events.filelog import LogError, iter_frames

    e = open_engine(tmp_path)
    for line in ("configure", "hostname r1", "commit", "hostname r2", "commit", "end"):
        e.execute(line)
    e.close()  # writes a snapshot at seq 2
    seg = sorted((tmp_path / "log").glob("*.seg"))[-1]
    last = list(iter_frames(seg))[-1]
    with open(seg, "r+b") as f:
        f.truncate(last.offset)
    with pytest.raises(LogError, match="was acknowledged: event 2 is missing"):
        open_engine(tmp_path)  # the head marker written at close says so first
    (tmp_path / "log" / "HEAD").unlink()  # and without it, the snapshot still does
    with pytest.raises(LogError, match="acknowledged events are missing"):
        open_engine(tmp_path)


def test_a_recovered_torn_tail_is_reported(tmp_path: Path) -> None:
    e = open_engine(tmp_path)
    for line in ("configure", "hostname r1", "commit", "end"):
        e.execute(line)
    e.store.close()  # a crash: no snapshot written at close
    seg = sorted((tmp_path / "log").glob("*.seg"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\x10\x00")  # the start of a frame header that never finished
    again = open_engine(tmp_path)
    assert again.recovered == (f"cut 2 bytes at segment {seg.name} offset "
                               f"{seg.stat().st_size}: an incomplete last write (a crash) or "
                               "a truncated file")
    assert again.state.hostname == "r1"
    again.close()


def test_retention_keeps_the_newest_and_one_per_span_of_older_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "KEEP", 2)
    monkeypatch.setattr(snapshot, "SPAN", 100)
    monkeypatch.setattr(snapshot, "SPANS", 3)
    files = [Path(f"{seq:020d}.snap") for seq in
             (10, 60, 110, 150, 199, 230, 260, 300, 340, 399, 410, 420)]
    dropped = {int(p.stem) for p in snapshot.pruned(files)}
    # newest two: 410, 420; then the newest in each of the 3 newest spans: 399, 260, 199.
    assert sorted({10, 60, 110, 150, 199, 230, 260, 300, 340, 399, 410, 420} - dropped) == \
        [199, 260, 399, 410, 420]


def _commits(path: Path, n: int) -> None:
    e = open_engine(path)
    for i in range(n):
        e.execute("configure")
        e.execute(f"hostname r{i}")
        e.execute("end", answers=["yes"])
    e.close()


def test_open_checks_the_hash_chain_of_the_tail_after_the_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame after the snapshot rewritten with valid checksums (a careful forger) passed
    the old open, which checked only CRCs: the tail's chain is now checked from the bytes."""
    import struct

    import crc32c
    import msgpack

    from events.filelog import _FRAME_PREFIX, LogCorrupted, iter_frames

    monkeypatch.setattr(snapshot, "EVERY", 4)
    _commits(tmp_path, 10)
    [seg] = sorted((tmp_path / "log").glob("*.seg"))
    victim = list(iter_frames(seg))[-2]  # after the snapshot at seq 8, not its first frame
    rows = msgpack.unpackb(victim.body)
    rows[0][7]["user"] = "mallory"
    body = msgpack.packb(rows, use_bin_type=True)
    prefix = _FRAME_PREFIX.pack(len(body), victim.first_seq, crc32c.crc32c(body))
    data = seg.read_bytes()
    seg.write_bytes(data[:victim.offset] + prefix + struct.pack("<I", crc32c.crc32c(prefix))
                    + body + data[victim.end:])
    (tmp_path / "snapshots" / f"{10:020d}.snap").unlink()  # open from the one at seq 8
    with pytest.raises(LogCorrupted, match="hash chain broken"):
        open_engine(tmp_path)


def test_replay_until_from_a_snapshot_equals_the_replay_from_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    monkeypatch.setattr(snapshot, "EVERY", 3)
    _commits(tmp_path, 12)
    assert len(list((tmp_path / "snapshots").glob("*.snap"))) >= 3
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "log", bare / "log")  # the same log, no snapshots
    tried: list[int] = []
    real = snapshot.load_with_tail
    monkeypatch.setattr(snapshot, "load_with_tail", lambda *a, **kw: tried.append(
        kw["upto"]) or real(*a, **kw))
    for seq in (1, 2, 3, 4, 7, 9, 11, 12, 40):
        assert main(["replay", str(tmp_path), "--until", str(seq)]) == 0
        from_snapshot = capsys.readouterr().out
        assert main(["replay", str(bare), "--until", str(seq)]) == 0
        assert from_snapshot == capsys.readouterr().out
    assert tried and tried[-1] == 11  # past the head (40): replayed to the head, 12


def test_replay_until_past_the_head_shows_the_head_and_its_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """It showed the clock at the epoch (no row after the head's snapshot gave it a time)."""
    from engine.cli import main

    monkeypatch.setattr(snapshot, "EVERY", 3)
    _commits(tmp_path, 12)
    shows = ["--show", "show clock", "--show", "show running-config"]
    assert main(["replay", str(tmp_path), "--until", "12", *shows]) == 0
    at_head = capsys.readouterr().out
    assert main(["replay", str(tmp_path), "--until", "40", *shows]) == 0
    assert capsys.readouterr().out == at_head
    assert "1970" not in at_head
