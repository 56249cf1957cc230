"""Run the interop matrix: one line per cell, `PASS|FAIL peer case: detail`, then
`N passed, M failed` as the last line. Exit status 0 only when every cell passed.

    python tools/interop/run.py                 # every cell, in order
    python tools/interop/run.py -k strongswan   # cells whose `peer-case` id contains a word
    python tools/interop/run.py --list          # the cells, and the peer bugs known to keep
                                                # some red
    python tools/interop/run.py --keep          # keep each cell's directory (logs, certs)
    python tools/interop/run.py -j 2            # two cells at a time (output stays in order)

The peers come from Debian packages (tools/install-peers.sh) and ../shared/peers beside the
checkout ($TRUSTLEDGER_PEERS overrides); everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from tools.interop.matrix import Cell, all_cells, run_cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="words", action="append", default=[], metavar="WORD",
                        help="only cells whose id (peer-case) contains WORD (repeatable: any)")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")
    parser.add_argument("--keep", action="store_true", help="keep the cells' directories")
    parser.add_argument("-j", dest="jobs", type=int, default=1, metavar="N",
                        help="cells run at a time (default 1)")
    args = parser.parse_args(argv)
    cells = [c for c in all_cells() if not args.words or any(w in c.id for w in args.words)]
    if args.list:
        for c in cells:
            print(f"{c.peer} {c.case}" + (f"  (known peer bug: {c.known_peer_bug})"
                                          if c.known_peer_bug else ""))
        return 0
    if not cells:
        print(f"no cell matches {' '.join(args.words)}", file=sys.stderr)
        return 2
    return run(cells, jobs=max(1, args.jobs), keep=args.keep)


def run(cells: list[Cell], *, jobs: int = 1, keep: bool = False) -> int:
    t0 = time.monotonic()
    passed = failed = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_cell, c, keep=keep) for c in cells]
        for future in futures:  # in order, each as soon as it and those before it are done
            outcome = future.result()
            print(outcome.line(), flush=True)
            if outcome.kept is not None:
                print(f"  kept: {outcome.kept}", file=sys.stderr, flush=True)
            passed += outcome.passed
            failed += not outcome.passed
    print(f"(matrix took {time.monotonic() - t0:.0f} s)", file=sys.stderr)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
