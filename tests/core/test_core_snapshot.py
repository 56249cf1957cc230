"""Snapshots cannot lie to the engine (issue 10 item 1): types come from a closed table, the
body is bound to the (seq, hash) it covers by a digest, decoding is strict, and any snapshot
that fails is ignored with `%LOG-4-SNAPSHOT_IGNORED` and the state rebuilt from the log.
Every case below ends with either the exact live state or that warning and a full replay —
never a traceback, never code run from the file, never a silently different state."""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engine import snapshot
from engine.engine import Engine
from engine.ports import FakeClock
from engine.state import DeviceState, replay_rows
from events.filelog import FileEventLog, LogError
from tests.core.snapshot_support import build_rich, open_device, shows


@dataclasses.dataclass(frozen=True)
class Device:
    """A closed device directory (close() wrote its snapshot) and what it showed live."""

    root: Path
    state: DeviceState
    shown: dict[str, str]
    pristine: bytes = b""  # the snapshot close() wrote

    @property
    def snap(self) -> Path:
        (path,) = sorted((self.root / "snapshots").glob("*.snap"))
        return path

    def copy(self, to: Path) -> Device:
        shutil.copytree(self.root, to)
        return Device(to, self.state, self.shown, self.snap.read_bytes())


def _closed_device(root: Path, drive: Callable[[Engine, FakeClock], None],
                   **kw: object) -> Device:
    clock = FakeClock()
    e = open_device(root, clock, **kw)
    drive(e, clock)
    state = e.state
    e.close()
    return Device(root, state, shows(state))


def _small(e: Engine, clock: FakeClock) -> None:
    for line in ("configure", "hostname r7", "domain name example.net", "commit", "end"):
        assert e.execute(line).ok


@pytest.fixture(scope="module")
def rich_master(tmp_path_factory: pytest.TempPathFactory) -> Device:
    return _closed_device(tmp_path_factory.mktemp("rich") / "dev", build_rich, audit=True)


@pytest.fixture(scope="module")
def small_master(tmp_path_factory: pytest.TempPathFactory) -> Device:
    return _closed_device(tmp_path_factory.mktemp("small") / "dev", _small)


@pytest.fixture
def rich(rich_master: Device, tmp_path: Path) -> Device:
    return rich_master.copy(tmp_path / "rich")


@pytest.fixture
def small(small_master: Device, tmp_path: Path) -> Device:
    return small_master.copy(tmp_path / "small")


def reopen(dev: Device) -> Engine:
    e = open_device(dev.root, FakeClock())
    e.store.close()  # not e.close(): that would write a new snapshot over the evidence
    return e


def assert_live(dev: Device, e: Engine) -> None:
    assert e.state == dev.state
    assert shows(e.state) == dev.shown


def assert_ignored(dev: Device, why: str | None = None) -> Engine:
    """Opening ignores the (only) snapshot with a warning naming it and rebuilds the state."""
    e = reopen(dev)
    assert_live(dev, e)
    (ignored,) = e.snapshots_ignored
    assert ignored.path == dev.snap
    line = ignored.render()
    assert line.startswith(f"%LOG-4-SNAPSHOT_IGNORED: {dev.snap}: ")
    assert line.endswith("; rebuilding the state from the log")
    if why is not None:
        assert why in ignored.reason
    return e


def body_of(data: bytes) -> Any:
    return msgpack.unpackb(data[snapshot.HEADER_SIZE:], raw=False)


def forge(dev: Device, body: Any, *, packed: bytes | None = None) -> None:
    """Replace the snapshot with `body`, sealed with a valid digest for the same (seq, hash):
    what someone who can write the data directory can do."""
    raw = dev.snap.read_bytes()
    seq = int.from_bytes(raw[8:16], "big")
    data = packed if packed is not None else msgpack.packb(body, use_bin_type=True)
    dev.snap.write_bytes(snapshot.frame(seq, raw[16:48], data))


# -- the closed table ----------------------------------------------------------------------------


def test_the_table_holds_exactly_the_types_the_state_declares() -> None:
    assert set(snapshot.reachable_types()) == set(snapshot.TABLE.values())
    assert len(set(snapshot.TABLE.values())) == len(snapshot.TABLE)


def test_every_table_type_has_a_decoder() -> None:
    """Decoders are built at a class's first decode (engine.snapshot._decoder_of), not at
    import: each TABLE class's hints must still be ones the strict decoder takes."""
    for cls in snapshot.TABLE.values():
        assert callable(snapshot._decoder_of(cls)), cls


def test_opening_from_a_snapshot_resolves_only_the_types_it_holds(tmp_path: Path) -> None:
    """A fresh process decoding a small snapshot (no key, no certificate, no CRL) builds
    decoders for the types that snapshot holds only."""
    eng = Engine.open(tmp_path / "d")
    eng.execute("configure")
    eng.execute("hostname r1")
    eng.execute("commit")
    eng.close()
    probe = ("import sys; from engine.engine import Engine; from engine import snapshot; "
             "Engine.open(sys.argv[1]).close(); "
             "print(','.join(sorted(c.__name__ for c in snapshot._DECODERS)))")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    built = set(done.stdout.splitlines()[-1].split(","))
    assert "DeviceState" in built and "ConfigTree" in built
    assert not built & {"KeyPair", "RouterCertificate", "PoolCert", "CachedCrl"}, built


@dataclasses.dataclass(frozen=True)
class _Unlisted:
    x: int


class _Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class _Holder:
    """What a new state type would look like: it and what it names must join the table."""

    items: tuple[_Unlisted, ...]
    colour: _Colour | None


def test_a_state_type_missing_from_the_table_is_caught() -> None:
    assert snapshot.reachable_types(_Holder) == {_Holder, _Unlisted, _Colour}
    with pytest.raises(TypeError, match=r"is not in snapshot\.TABLE"):
        snapshot._decoder(_Holder)
    for value in (_Unlisted(1), _Colour.RED, 1.5, [1], {1, 2}):
        state = dataclasses.replace(DeviceState(), seq=1, config=value)  # type: ignore[arg-type]
        with pytest.raises(snapshot.SnapshotUnencodable):
            snapshot.encode(state, (1, bytes(32)))


def test_a_rich_live_state_round_trips_and_uses_every_table_type(rich: Device) -> None:
    seen: set[type] = set()

    def walk(obj: Any) -> None:
        if type(obj) in snapshot.TABLE.values():
            seen.add(type(obj))
        if isinstance(obj, enum.Enum):
            return
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name))
        elif isinstance(obj, tuple):
            for x in obj:
                walk(x)
        elif hasattr(obj, "values"):
            for x in obj.values():
                walk(x)

    walk(rich.state)
    assert seen == set(snapshot.TABLE.values())
    snap = snapshot.read(rich.snap)
    assert snap.state == rich.state and snap.seq == rich.state.seq
    e = reopen(rich)
    assert e.snapshots_ignored == []
    assert_live(rich, e)
    assert "Router certificate" in rich.shown["show crypto ca certificates"]
    assert "%PKI-6-CERTRET" in rich.shown["show logging"]  # messages: fixed-size tuples


def test_opening_uses_the_snapshot(rich: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.engine as engine_module

    folded: list[int] = []

    def counting(state: DeviceState, rows: Any) -> DeviceState:
        rows = list(rows)
        folded.append(len(rows))
        return replay_rows(state, rows)

    monkeypatch.setattr(engine_module, "replay_rows", counting)
    assert_live(rich, reopen(rich))
    assert folded == [0]  # nothing after the snapshot: it was used


def test_opening_reads_and_hashes_the_snapshot_once(rich: Device,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding how far the log must reach and loading the state is one pass over the file."""
    reads: list[Path] = []
    digests: list[int] = []
    real_read, real_digest = snapshot._read_bytes, snapshot._digest
    monkeypatch.setattr(snapshot, "_read_bytes", lambda p: reads.append(p) or real_read(p))
    monkeypatch.setattr(snapshot, "_digest",
                        lambda seq, *rest: digests.append(seq) or real_digest(seq, *rest))
    assert_live(rich, reopen(rich))
    assert reads == [rich.snap] and digests == [rich.state.seq]


@pytest.mark.parametrize("use_snapshots", [True, False])
def test_a_log_that_ends_before_its_newest_snapshot_refuses(small: Device,
                                                             use_snapshots: bool) -> None:
    """A snapshot beyond the log's end proves acknowledged events are missing; a damaged file
    newer still proves nothing and is passed over."""
    ahead = small.state.seq + 5
    snaps = small.root / "snapshots"
    forged = dataclasses.replace(small.state, seq=ahead)
    (snaps / f"{ahead:020d}.snap").write_bytes(snapshot.encode(forged, (ahead, b"\0" * 32)))
    (snaps / f"{ahead + 1:020d}.snap").write_bytes(b"damaged")
    with pytest.raises(LogError) as err:
        open_device(small.root, FakeClock(), use_snapshots=use_snapshots)
    assert str(err.value) == (
        f"event log {small.root / 'log'} ends at seq {small.state.seq}, but a snapshot of seq "
        f"{ahead} exists: acknowledged events are missing. Restore the log from a backup (or "
        f"move {snaps} aside to accept the loss).")


# -- the old exploit, and other hostile payloads ---------------------------------------------------


def test_the_old_exploit_no_longer_runs_code(small: Device, tmp_path: Path) -> None:
    """A 100-byte file that the old decoder turned into `os.mkdir(target)` (its enum branch
    imported `engine.snapshot` and walked `os.mkdir` from the file)."""
    target = tmp_path / "pwned"
    payload = msgpack.ExtType(4, msgpack.packb(["engine.snapshot", "os.mkdir", str(target)]))
    head = snapshot.read(small.snap)
    small.snap.write_bytes(msgpack.packb(
        {"v": 1, "seq": head.seq, "hash": head.chain_hash, "state": payload},
        use_bin_type=True))
    assert_ignored(small, "not a version-3 snapshot")
    assert not target.exists()
    # The same inside a correctly sealed version-2 body, as an extension or as tags.
    for hostile in (payload, ["os.mkdir", str(target)], ["engine.snapshot.os.mkdir",
                                                         {"path": str(target)}]):
        body = body_of(small.pristine)
        body[1]["config"] = hostile
        forge(small, body)
        assert_ignored(small)
        assert not target.exists()


HOSTILE_TAGS = ["subprocess.Popen", "os.system", "builtins.eval", "posix.mkdir", "Popen",
                "engine.state.DeviceState", "KeySpec", "Session", "", "x" * 10_000]


@pytest.mark.parametrize("tag", HOSTILE_TAGS)
def test_tags_outside_the_table_are_ignored(small: Device, tag: str) -> None:
    body = body_of(small.pristine)
    body[0] = tag
    forge(small, body)
    assert_ignored(small, "unknown tag")


def _mutations() -> Iterator[tuple[str, Callable[[Any], Any], str]]:
    """(name, body -> hostile body, expected reason fragment)."""
    def with_field(name: str, value: Any) -> Callable[[Any], Any]:
        def change(body: Any) -> Any:
            body[1][name] = value
            return body
        return change

    def without(name: str) -> Callable[[Any], Any]:
        def change(body: Any) -> Any:
            del body[1][name]
            return body
        return change

    yield "extra field", with_field("evil", 1), "fields differ"
    yield "missing field", without("keys"), "fields differ"
    yield "seq as text", with_field("seq", "1"), "str where int"
    yield "seq as float", with_field("seq", 1.0), "float where int"
    yield "seq as bool", with_field("seq", True), "bool where int"
    yield "wrong class", with_field("config", ["CommitHistory", {"recent": [], "count": 0}]), \
        "a CommitHistory where a ConfigTree"
    yield "callable-looking", with_field("keys", ["KeyRing", {"pairs": "os.system",
                                                            "imported": {}}]), "str where dict"
    yield "extension type", with_field("trustpoints", msgpack.ExtType(42, b"\x00")), \
        "ExtType where dict"
    yield "timestamp", with_field("trustpoints", msgpack.Timestamp(0)), "Timestamp where dict"
    yield "enum member unknown", lambda b: _enum(b, "RSA", "os.mkdir"), "no KeyAlgorithm member"
    yield "enum by name", lambda b: _enum(b, "RSA", "RSA"), "no KeyAlgorithm member"
    yield "not tagged", lambda b: b[1], "not a tagged DeviceState"
    yield "top level list", lambda b: [b], "not a tagged DeviceState"
    yield "nil state", lambda b: None, "not a tagged DeviceState"
    yield "bytes map keys", with_field("trustpoints", {b"myca": None}), "bytes where str"


def _enum(body: Any, member: str, replacement: Any) -> Any:
    """Replace the first `[KeyAlgorithm, <value of member>]` found in the body."""
    def walk(x: Any) -> bool:
        if isinstance(x, list):
            if len(x) == 2 and x[0] == "KeyAlgorithm":
                x[1] = replacement
                return True
            return any(walk(y) for y in x)
        if isinstance(x, dict):
            return any(walk(y) for y in x.values())
        return False

    assert walk(body), member
    return body


@pytest.mark.parametrize(("change", "why"), [(m[1], m[2]) for m in _mutations()],
                         ids=[m[0] for m in _mutations()])
def test_wrong_shapes_and_types_are_ignored(rich: Device, change: Callable[[Any], Any],
                                            why: str) -> None:
    forge(rich, change(body_of(rich.pristine)))
    assert_ignored(rich, why)


def test_deep_and_huge_values_are_ignored(small: Device) -> None:
    node: Any = ["Node", {"line": "x", "children": {}}]
    for _ in range(150):
        node = ["Node", {"line": "x", "children": {"x": node}}]
    body = body_of(small.pristine)
    body[1]["config"] = ["ConfigTree", {"roots": {"x": node}}]
    forge(small, body)
    assert_ignored(small, "nested too deep")

    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    body[1]["config"] = nested
    with pytest.raises(ValueError):  # msgpack itself refuses to pack it; build it by hand
        msgpack.packb(nested)
    deep = b"\x91" * 100_000 + b"\x90"  # 100,000 nested one-element arrays
    forge(small, None, packed=b"\x92\xabDeviceState" + deep)
    assert_ignored(small, "undecodable")

    for packed in (b"\xc6\xff\xff\xff\xff" + b"\x00" * 16,  # a 4 GiB bin, 16 bytes present
                   b"\xdd\xff\xff\xff\xff\x01",  # a 4-billion-element array
                   b"\xdf\xff\xff\xff\xff",  # a 4-billion-entry map
                   msgpack.packb(["DeviceState", {"seq": 1, "x": "y" * 5_000_000}]),
                   msgpack.packb(list(range(200_000))),
                   b"", b"\xc1", msgpack.packb(body_of(small.pristine)) + b"\x00"):
        forge(small, None, packed=packed)
        assert_ignored(small)


# -- damage: every byte flip, every truncation ----------------------------------------------------


@pytest.mark.slow
def test_every_byte_flip_of_a_small_snapshot(small: Device) -> None:
    good = small.snap.read_bytes()
    assert len(good) < 920  # the empty trustpool's fields are ~150 of them, the CRL cache ~40,
    # the validation counters ~90
    for i in range(len(good)):
        damaged = bytearray(good)
        damaged[i] ^= 0xFF
        small.snap.write_bytes(bytes(damaged))
        assert_ignored(small)


@pytest.mark.slow
def test_every_truncation_of_a_small_snapshot(small: Device) -> None:
    good = small.snap.read_bytes()
    for n in range(len(good)):
        small.snap.write_bytes(good[:n])
        assert_ignored(small)
    small.snap.write_bytes(good + b"\x00")
    assert_ignored(small, "digest")


def test_every_bit_flip_of_a_rich_snapshot_is_caught_before_decoding(rich: Device) -> None:
    good = rich.pristine
    for i in range(len(good) * 8):
        damaged = bytearray(good)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(snapshot.SnapshotMismatch, match=r"digest|version-3"):
            snapshot.decode(bytes(damaged))


def test_resealed_byte_flips_never_escape_the_strict_decoder(rich: Device) -> None:
    """The digest recomputed after a flip of every fifth byte (a hand-made snapshot):
    decoding raises nothing but SnapshotMismatch, whatever it builds is made of the table's
    types only (it encodes again), and `log verify` reports each state that differs."""
    raw = rich.snap.read_bytes()
    head, body = raw[:snapshot.HEADER_SIZE], raw[snapshot.HEADER_SIZE:]
    seq, chain_hash = int.from_bytes(head[8:16], "big"), head[16:48]
    outcomes = {"ignored": 0, "same": 0, "different": 0}
    lies: list[bytes] = []
    for i in range(0, len(body), 5):
        damaged = bytearray(body)
        damaged[i] ^= 0xFF
        forged = snapshot.frame(seq, chain_hash, bytes(damaged))
        try:
            state = snapshot.decode(forged).state
        except snapshot.SnapshotMismatch:
            outcomes["ignored"] += 1
            continue
        again = snapshot.decode(snapshot.encode(state, (state.seq, chain_hash))).state
        assert again == state
        outcomes["same" if state == rich.state else "different"] += 1
        if state != rich.state and len(lies) < 25:
            lies.append(forged)
    assert outcomes["ignored"] and outcomes["different"], outcomes
    # What the digest cannot catch, `log verify` does: it folds the log and compares.
    for forged in lies:
        rich.snap.write_bytes(forged)
        with FileEventLog.open(rich.root / "log", readonly=True) as log:
            (check,) = snapshot.verify(rich.root / "snapshots", log)
        assert check.problem == f"its state differs from the log folded to seq {seq}"


# -- a snapshot of other folds ---------------------------------------------------------------------


def test_a_snapshot_folded_by_other_folds_is_ignored(rich: Device,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A fold fix that keeps the state's shape (marked by bumping FOLD_VERSION) makes every
    older snapshot unusable: it decodes cleanly but into what the old folds produced. The
    build's fingerprint is the written-out `FOLDS_FINGERPRINT` (test_core_fold_tables.py
    checks it is `folds_fingerprint()`): another build is another value there."""
    other = bytes(32 - len(b"other folds")) + b"other folds"
    monkeypatch.setattr(snapshot, "FOLDS_FINGERPRINT", other)
    assert_ignored(rich, "written by a build whose folds differ (an event version or "
                         "FOLD_VERSION changed)")


def test_the_folds_fingerprint_follows_event_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.state import folds_fingerprint
    from events.device import ConfigurationCommitted

    before = folds_fingerprint()
    monkeypatch.setattr(ConfigurationCommitted, "version", ConfigurationCommitted.version + 1)
    assert folds_fingerprint() != before


# -- a snapshot of another log, or of another seq --------------------------------------------------


def test_a_snapshot_of_another_log_is_ignored(small: Device, rich: Device) -> None:
    other = snapshot.read(rich.snap)
    # Same seq, same file name, another chain: a snapshot copied from another device.
    forged = dataclasses.replace(other.state, seq=small.state.seq)
    small.snap.write_bytes(snapshot.encode(forged, (small.state.seq, other.chain_hash)))
    assert_ignored(small, "of another log")


def test_a_snapshot_whose_name_lies_about_its_seq_is_ignored(rich: Device) -> None:
    snap = snapshot.read(rich.snap)
    renamed = rich.snap.with_name(f"{snap.seq - 3:020d}.snap")
    rich.snap.rename(renamed)
    e = reopen(rich)
    assert_live(rich, e)
    assert [i.path for i in e.snapshots_ignored] == [renamed]
    assert "its name does not match" in e.snapshots_ignored[0].reason


def test_a_header_seq_changed_with_a_valid_digest_is_ignored(rich: Device) -> None:
    snap = snapshot.read(rich.snap)
    body = rich.snap.read_bytes()[snapshot.HEADER_SIZE:]
    lower = rich.snap.with_name(f"{snap.seq - 1:020d}.snap")
    rich.snap.unlink()
    lower.write_bytes(snapshot.frame(snap.seq - 1, snap.chain_hash, body))
    e = reopen(rich)
    assert_live(rich, e)
    assert "its state is at seq" in e.snapshots_ignored[0].reason


def test_an_older_good_snapshot_is_used_when_the_newest_is_bad(
        small: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    e = open_device(small.root, FakeClock())
    for line in ("configure", "hostname r8", "commit", "end"):
        assert e.execute(line).ok
    live = e.state
    e.close()
    newest = sorted((small.root / "snapshots").glob("*.snap"))[-1]
    newest.write_bytes(newest.read_bytes()[:-1])
    again = open_device(small.root, FakeClock())
    assert again.state == live
    assert [i.path for i in again.snapshots_ignored] == [newest]
    again.close()  # the tail it folded is snapshotted again: the bad file is replaced
    assert snapshot.read(newest).state == live
    third = reopen(Device(small.root, live, shows(live)))
    assert third.snapshots_ignored == []


def test_log_verify_in_a_fresh_process_folds_every_feature(rich: Device) -> None:
    """`log verify` must fold key and trustpoint events too (their folds are registered by
    the modules that define them), or every rich snapshot would look like a lie."""
    done = subprocess.run([sys.executable, "-m", "engine.cli", "log", "verify", str(rich.root)],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"snapshot  : {rich.snap.name} seq {rich.state.seq} OK"
