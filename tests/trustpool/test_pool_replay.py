"""Replay: any sequence of imports, cleans and timed updates folds back from the log to the
same pool; the built-in bundle is recorded once, again only when it changes, and replay never
reads the installed bundle."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from engine import Engine
from engine.ports import FakeClock
from engine.trustpool.builtin import certifi_bundle
from engine.trustpool.schedule import DAY, HOUR
from events.trustpool import TrustpoolBuiltinsRecorded
from tests.trustpool.pool_certs import ca, pem, years
from tests.trustpool.pool_support import fixed_builtins

T0 = 1_764_201_600_000_000
_ROOTS = [ca(f"Replay Root {n}", *years(2020, 2026 + n))[0] for n in range(4)]
BUNDLES = {"a": pem(_ROOTS[:2]), "b": pem(_ROOTS[1:]), "bad": b"garbage"}

OPS = st.lists(st.one_of(
    st.tuples(st.just("import"), st.sampled_from(sorted(BUNDLES))),
    st.tuples(st.just("clean"), st.just("")),
    st.tuples(st.just("serve"), st.sampled_from([*sorted(BUNDLES), "none"])),
    st.tuples(st.just("wait"), st.sampled_from([HOUR, DAY, 7 * DAY, 200 * DAY, 400 * DAY])),
    st.tuples(st.just("url"), st.sampled_from(["on", "off"])),
), max_size=14)


def _builtins_file(root: Path) -> Path:
    path = root / "builtin.pem"
    if not path.exists():
        path.write_bytes(pem([ca("Replay Builtin", *years(2020, 2027))[0]]))
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_any_sequence_replays_to_the_same_pool(ops: list[tuple[str, object]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="tp-replay-"))
    try:
        _check(root, ops)
    finally:
        shutil.rmtree(root)


def _check(root: Path, ops: list[tuple[str, object]]) -> None:
    for name, data in BUNDLES.items():
        (root / f"{name}.pem").write_bytes(data)
    clock = FakeClock(T0)
    served = root / "served.pem"
    builtins = fixed_builtins(_builtins_file(root))
    with Engine.open(root / "dev", clock=clock, builtins=builtins) as live:
        for op, arg in ops:
            if op == "import":
                live.execute(f"crypto ca trustpool import url file://{root / f'{arg}.pem'}")
            elif op == "clean":
                live.execute("crypto ca trustpool import url clean")
            elif op == "serve":
                served.unlink(missing_ok=True)
                if arg != "none":
                    served.write_bytes(BUNDLES[str(arg)])
            elif op == "wait":
                clock.advance(int(str(arg)) / 1_000_000)
                while live.run_due():
                    pass
            else:
                lines = (["crypto ca trustpool policy", f"cabundle url file://{served}"]
                         if arg == "on" else ["no crypto ca trustpool policy"])
                for line in ["configure", *lines, "commit", "end"]:
                    live.execute(line)
        expected, seq = live.state.trustpool, live.state.seq
        logged = live.execute("show logging").output
    with Engine.open(root / "dev", clock=clock, builtins=None, use_snapshots=False) as again:
        assert again.state.seq == seq
        assert again.state.trustpool == expected
        assert again.execute("show logging").output == logged


def test_builtins_recorded_once_then_on_change_and_replay_reads_no_file(tmp_path: Path
                                                                       ) -> None:
    clock = FakeClock(T0)
    with Engine.open(tmp_path / "dev", clock=clock, builtins=certifi_bundle) as dev:
        first = dev.state.trustpool
        shipped = certifi_bundle()
        assert first.builtin_source == shipped.describe() and len(first.builtin) > 100
        assert dev.state.seq == 1
    with Engine.open(tmp_path / "dev", clock=clock, builtins=certifi_bundle) as dev:
        assert dev.state.seq == 1  # the same bundle: nothing recorded
    other = tmp_path / "upgrade.pem"
    other.write_bytes(shipped.data + pem([ca("Upgrade Root", *years(2020, 2040))[0]]))
    with Engine.open(tmp_path / "dev", clock=clock,
                     builtins=fixed_builtins(other, "certifi next")) as dev:
        assert dev.state.seq == 2
        assert dev.state.trustpool.builtin_source == "certifi next"
        assert len(dev.state.trustpool.builtin) == len(first.builtin) + 1
        upgraded = dev.state.trustpool
    # Replay folds the pool from the log alone: the bundle files are not read (a source
    # that fails if called is never called when the engine is told not to look).
    with Engine.open(tmp_path / "dev", clock=clock, builtins=None,
                     use_snapshots=False) as replayed:
        assert replayed.state.trustpool == upgraded
        rows = list(replayed.store.read_rows(1))
    assert [r[2] for r in rows] == [TrustpoolBuiltinsRecorded.type_name] * 2


def test_replay_until_shows_the_pool_of_that_time(tmp_path: Path) -> None:
    """`replay --until` builds a frozen engine from the log: the pool as it was."""
    from engine.cli import main

    clock = FakeClock(T0)
    (tmp_path / "a.pem").write_bytes(BUNDLES["a"])
    with Engine.open(tmp_path / "dev", clock=clock, builtins=fixed_builtins(
            _builtins_file(tmp_path))) as dev:
        assert dev.execute(f"crypto ca trustpool import url file://{tmp_path / 'a.pem'}").ok
        assert dev.execute("crypto ca trustpool import url clean").ok
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(tmp_path / "dev"), "--until", "2",
                     "--show", "show crypto ca trustpool policy"]) == 0
    assert "Downloaded certificates : 2" in out.getvalue()
