"""Trustpool benchmark: what recording the built-in bundle (certifi) costs a device's open.

    python tools/bench/trustpool_bench.py [--rounds R]

Best of R rounds, each row: with the built-in bundle / without (builtins=None) / ratio:
- first open of a new data directory (with: reads certifi, records one event, folds ~150
  certificates);
- reopen with a snapshot (with: reads and hashes certifi's file, records nothing);
- reopen without snapshots (full replay; with: folds the built-in event again);
- the log's size on disk after the first open.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine import Engine  # noqa: E402
from engine.trustpool.builtin import BuiltinSource, certifi_bundle  # noqa: E402


def _best(rounds: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _measure(root: Path, label: str, builtins: BuiltinSource | None, rounds: int
             ) -> dict[str, float]:
    made = iter(range(1, 1_000_000))
    first = _best(rounds, lambda: Engine.open(root / f"{label}{next(made)}",
                                              builtins=builtins).close())
    d = root / f"{label}1"
    return {
        "first open": first,
        "reopen (snapshot)": _best(rounds, lambda: Engine.open(d, builtins=builtins).close()),
        "reopen (full replay)": _best(rounds, lambda: Engine.open(
            d, builtins=builtins, use_snapshots=False).close()),
        "log bytes": float(_size(d / "log")),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tp-bench-"))
    try:
        with_ = _measure(root, "with", certifi_bundle, args.rounds)
        without = _measure(root, "without", None, args.rounds)
    finally:
        shutil.rmtree(root)
    print(f"{'':24} {'with':>12} {'without':>12} {'ratio':>8}")
    for what, a in with_.items():
        b = without[what]
        shown = (f"{a:12.0f} {b:12.0f}" if what == "log bytes"
                 else f"{a * 1000:10.2f}ms {b * 1000:10.2f}ms")
        print(f"{what:24} {shown} " + (f"{a / b:8.1f}x" if b else "       -"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
