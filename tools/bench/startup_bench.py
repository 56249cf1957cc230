"""Start-up benchmark: `trustledger exec` of one `show running-config` against the cost of
importing cryptography's X.509 module, measured in the same run (issue 12's start-up rows).

    python tools/bench/startup_bench.py                  # the small-dir row, ~10 s
    python tools/bench/startup_bench.py --big DIR        # also: the same exec on DIR
    python tools/bench/startup_bench.py --build-big 1000000 [--keep]  # build DIR first (~1 min)

Rows (printed as ours / baseline / ratio / target / PASS|FAIL):

- `exec`, small data dir: a fresh process running `trustledger exec --data SMALL -f SCRIPT`
  (SCRIPT is the one line `show running-config`) against a fresh `python -c 'import
  cryptography.x509'`; target <= 2x.
- `exec`, big data dir (with --big or --build-big): the same exec on the big dir against the
  small dir; target <= 1.5x. A built big dir holds N one-hostname commits and a snapshot of
  the state at its head, as a long-lived device has.

Each side runs `--rounds` times, interleaved with its baseline so that load elsewhere on the
machine hits both; the medians are compared on wall-clock time (the target) and, for
reference on a busy machine, on the CPU time of the process. With `--instructions`, the
small-dir row is also given in instructions executed (valgrind's callgrind, one run of each
side, ~1 min): a figure the load of other processes does not move, for reference only. The
exit status is 0 only if every row passes. A script, not a test: it never runs under pytest.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SETUP = """configure
hostname edge-1
domain name example.net
crypto ca trustpoint myca
 enrollment url http://127.0.0.1:8080
 subject-name CN=edge-1,O=Example
commit
end
"""
EPOCH_US = 1_700_000_000_000_000


def trustledger() -> list[str]:
    """The `trustledger` an operator runs: the console script beside this Python, else the
    same entry point through `-c`."""
    script = Path(sys.executable).with_name("trustledger")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]


# Children write and use .pyc files, as an installed trustledger does (pip compiles at
# install): without them every run would compile every module it imports, ours and the
# baseline's, and measure the compiler.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Timing:
    wall: float  # seconds, the figure the targets are about
    cpu: float  # user + system seconds of the child: steadier on a busy machine


def run_once(argv: Sequence[str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n"
                         f"{done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def median(runs: list[Timing]) -> Timing:
    return Timing(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs))


def paired(ours: Sequence[str], baseline: Sequence[str], rounds: int) -> tuple[Timing, Timing]:
    """Medians of `rounds` runs of each, interleaved; one warm-up run of each first (the page
    cache, .pyc files)."""
    run_once(ours)
    run_once(baseline)
    a: list[Timing] = []
    b: list[Timing] = []
    for _ in range(rounds):
        a.append(run_once(ours))
        b.append(run_once(baseline))
    return median(a), median(b)


def exec_show(data: Path, script: Path) -> list[str]:
    return [*trustledger(), "exec", "--data", str(data), "-f", str(script)]


def build_small(root: Path) -> Path:
    """A device with a few commits: hostname, domain, one trustpoint."""
    data = root / "small"
    setup = root / "setup.txt"
    setup.write_text(SETUP)
    subprocess.run(exec_show(data, setup), cwd=REPO, check=True, capture_output=True,
                   env=ENV)
    return data


def build_big(root: Path, events: int) -> Path:
    """`events` one-hostname commits written straight to the log (10,000 appends per group
    commit, as tools/bench/log_bench.py does), then one open, whose close writes the snapshot."""
    from engine.engine import Engine
    from engine.trustpool.builtin import certifi_bundle
    from events.device import ConfigurationCommitted
    from events.filelog import FileEventLog
    from events.store import PendingEvent

    data = root / "big"
    (data / "log").mkdir(parents=True)
    with FileEventLog.open(data / "log") as log:
        for start in range(0, events, 10_000):
            with log.group_commit():
                for n in range(start, min(events, start + 10_000)):
                    old = f"hostname edge-{n - 1:07d}" if n else None
                    ev = ConfigurationCommitted(1_000_000_001 + n, "admin", "", "",
                                                ((("hostname",), old, f"hostname edge-{n:07d}"),))
                    log.append([PendingEvent(ev, "device", EPOCH_US + n, "admin",
                                             f"cmd-{n:07d}")])
    # Opened as `trustledger exec` opens it (the built-in bundle and the audit key recorded):
    # its close writes the snapshot at the head, with the log position it covers, so every
    # exec the row times reads the snapshot and an empty tail, as on the small dir.
    Engine.open(data, builtins=certifi_bundle, audit=True).close()
    return data


def instructions(argv: Sequence[str]) -> int:
    """Instructions `argv` executes (valgrind --tool=callgrind's `Collected` count)."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *argv], cwd=REPO, capture_output=True, text=True, check=False,
                          env={**ENV, "PYTHONHASHSEED": "0"})  # the same dict layouts
    counts = [line.split()[-1] for line in done.stderr.splitlines() if "Collected :" in line]
    if done.returncode != 0 or not counts:
        raise SystemExit(f"valgrind {' '.join(argv)} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return int(counts[-1])


def instruction_row(ours: Sequence[str], baseline: Sequence[str]) -> None:
    a, b = instructions(ours), instructions(baseline)
    print(f"{'  (the same, instructions, for reference)':<44} {a / 1e6:>8.0f} M  "
          f"{b / 1e6:>8.0f} M  {a / b:>6.2f}x")


def row(label: str, ours: Timing, baseline: Timing, target: float) -> bool:
    """The row on wall-clock time (PASS|FAIL), then the same on CPU time for reference."""
    ratio = ours.wall / baseline.wall
    ok = ratio <= target
    print(f"{label:<44} {ours.wall * 1000:>8.1f} ms {baseline.wall * 1000:>8.1f} ms "
          f"{ratio:>6.2f}x   <= {target:g}x  {'PASS' if ok else 'FAIL'}")
    print(f"{'  (the same, CPU time of the process)':<44} {ours.cpu * 1000:>8.1f} ms "
          f"{baseline.cpu * 1000:>8.1f} ms {ours.cpu / baseline.cpu:>6.2f}x")
    return ok


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        script = root / "show.txt"
        script.write_text("show running-config\n")
        small = build_small(root)
        big = args.big
        if big is None and args.build_big:
            t0 = time.perf_counter()
            big = build_big(root, args.build_big)
            print(f"(built {args.build_big:,} events + snapshot in "
                  f"{time.perf_counter() - t0:.1f} s: setup, not a target)")
        print(f"{'row':<44} {'ours':>11} {'baseline':>11} {'ratio':>7}   target")
        baseline = [sys.executable, "-c", "import cryptography.x509"]
        ours, base = paired(exec_show(small, script), baseline, args.rounds)
        ok = row("exec show running-config, small dir", ours, base, 2.0)
        if args.instructions:
            instruction_row(exec_show(small, script), baseline)
        print(f"{'  baseline: python -c import cryptography.x509':<44}")
        if big is not None:
            ours_big, ours_small = paired(exec_show(big, script), exec_show(small, script),
                                          args.rounds)
            ok = row("exec show running-config, big dir", ours_big, ours_small, 1.5) and ok
            print(f"{'  baseline: the same exec on the small dir':<44}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="runs of each side (default 15)")
    p.add_argument("--big", type=Path, default=None, metavar="DIR",
                   help="a big device data dir (e.g. 1M events and a fresh snapshot)")
    p.add_argument("--build-big", type=int, default=0, metavar="N",
                   help="build a data dir of N commits and a snapshot (unless --big)")
    p.add_argument("--keep", action="store_true", help="leave the temporary files")
    p.add_argument("--instructions", action="store_true",
                   help="also count instructions of the small-dir row (needs valgrind)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
