"""CRL loading benchmark: a 100,000-entry CRL into the cache's index, against cryptography.

    python tools/bench/crl_bench.py [--entries N] [--repeat R]

What is measured, on the same CRL in one run (best of R):
- index: `engine.revocation.index.build_index` (the DER walk that `revocation_of` uses),
  entry extensions checked; target (issue 16): < 1 s for 100,000 entries;
- verify: `engine.revocation.verify.verify_crl`, everything a fetch checks before caching
  (parse, issuer, signature, extensions, scope) including the index;
- baseline: cryptography's own objects, `{e.serial_number: e for e in crl}` plus each entry's
  reason and date (what indexing with cryptography per entry would cost);
- lookup: one `revocation_of` per serial over the built index (µs per lookup).
Ratios are printed against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402

from engine.revocation.index import build_index, index_of, revocation_of  # noqa: E402
from engine.revocation.model import CachedCrl  # noqa: E402
from engine.revocation.store import MemoryCrlBlobs  # noqa: E402
from engine.revocation.verify import verify_crl  # noqa: E402
from tests.support.crl_support import CrlSpec, make_ca, make_crl  # noqa: E402

REASONS = [None, "key_compromise", "superseded", "cessation_of_operation"]


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def baseline(der: bytes) -> dict[int, tuple[object, str]]:
    found = {}
    for e in x509.load_der_x509_crl(der):
        try:
            reason = e.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            reason = "unspecified"
        found[e.serial_number] = (e.revocation_date_utc, reason)
    return found


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ca = make_ca("Bench CA")
    t = time.perf_counter()
    der = make_crl(ca, CrlSpec(revoked=[(0x10000 + i * 7919, REASONS[i % 4])
                                        for i in range(args.entries)]))
    print(f"made a {args.entries}-entry CRL ({len(der) / 1e6:.1f} MB) in "
          f"{time.perf_counter() - t:.1f} s")
    ours = best(lambda: build_index(der), args.repeat)
    full = best(lambda: verify_crl(der, ca.cert), args.repeat)
    base = best(lambda: baseline(der), args.repeat)
    blobs = MemoryCrlBlobs()
    sha = blobs.put(der)
    index_of(sha, der)
    cached = CachedCrl(sha, b"", "", None, 1, 0, None, "bench", 0, None, (), args.entries)
    serials = [0x10000 + i * 7919 for i in range(0, args.entries, 10)]
    t = time.perf_counter()
    hits = sum(revocation_of(blobs, cached, s) is not None for s in serials)
    lookup = (time.perf_counter() - t) / len(serials) * 1e6
    assert hits == len(serials)
    print(f"{'row':<34}{'seconds':>10}{'vs baseline':>14}")
    print(f"{'index (DER walk, ours)':<34}{ours:>10.3f}{base / ours:>13.1f}x")
    print(f"{'verify_crl (all fetch checks)':<34}{full:>10.3f}{base / full:>13.1f}x")
    print(f"{'baseline (cryptography per entry)':<34}{base:>10.3f}{1:>13.1f}x")
    print(f"{'lookup (revocation_of)':<34}{lookup:>9.2f}us")
    verdict = "PASS" if ours < 1.0 and full < 1.0 else "FAIL"
    print(f"target: index and verify of {args.entries} entries < 1 s: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
