"""Peer validation with CRL checking: ours (`Engine.validate_peer`, CRLs cached) against
`openssl verify` over the same chains, CRLs and moment, in one run.

    python tools/bench/validate_bench.py                  # 10,000 chains; material cached
    python tools/bench/validate_bench.py --chains 2000    # a quicker look (same material)
    python tools/bench/validate_bench.py --cache DIR      # where the material is kept

The material (tools/bench/validate_material.py, built once, ~10 s): a 150-root trustpool,
10 hierarchies (root, issuing CA) among them, 10,000 distinct 3-level chains (leaf, issuing
CA, root) spread over the 10 issuing CAs, and a 100,000-entry CRL for each of the 20 CAs of
the hierarchies (every 100th leaf of each CA is on its CRL: 100 chains must fail on both
sides). Why 10 hierarchies: a router validates peers from a handful of PKIs (its VPN CA,
a partner's, a few public issuing CAs), not from every root of its pool; 20 CRLs of 100,000
entries are 52 MB of CRLs, already more than a router holds.

Ours: a device data directory whose pool is the 150 roots (`crl optional` off); its CRL port
(`Ports.crls`) answers from the material's files (no HTTP: the transfer is not what is
measured); the first validation of each hierarchy fetches its two CRLs (recorded, verified,
indexed, stored durably) and every later one finds them cached. Each chain file is read and
passed as PEM bytes to `validate_peer(chain, "any", at)`, which parses it, finds the anchor,
builds and checks the path (cryptography's Rust verifier), looks the leaf and the issuing CA
up in their CRLs, and appends the `PeerValidated` event: durable on return (one fdatasync
each, as every command), and again in `Engine.group_commit()` blocks of 100 (one fdatasync
per block: how a gateway validates a burst of handshakes; the target is judged on this line,
since one fdatasync per decision measures the disk, not validation). A last line shows
`decide_validation` alone (no event at all).

openssl: ONE `openssl verify` process over all the chain files, as a server holding a store
would: `-CAfile` the 150 roots, `-untrusted` the issuing CAs, `-CRLfile` all 20 CRLs,
`-attime` the same moment, and `-crl_check_all` (leaf and issuing CA against their CRLs:
exactly our work) or `-crl_check` (the leaf only: the issue's baseline, less work than ours).
Its start-up (reading 150 roots and 52 MB of CRLs) is measured by the same command over one
file and subtracted, so its rate is per chain once loaded, like ours.

Also printed: the CRL load time (a 100,000-entry CRL from bytes to cached: fetch from the
port, signature and RFC 5280 checks, index of its entries, durable store, event), and both
sides' count of failed chains (they must agree). Targets: ours (group commit) >= 1.0x
openssl -crl_check's chains/s; a 100,000-entry CRL loads in < 1 s. The machine is shared:
run it twice if a figure looks off. Exit status 0 only if both targets pass and the failure
counts agree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import validate_material as material  # noqa: E402

from engine import Engine  # noqa: E402
from engine.ports import FakeClock  # noqa: E402
from engine.validation.decide import decide_validation  # noqa: E402

AT_US = int(material.AT.timestamp()) * 1_000_000
GROUP = 100  # validations per group_commit() block


class MaterialCrls:
    """The CRL port (engine.revocation.transport.CrlFetcher) answering from the files."""

    def __init__(self, m: material.Material) -> None:
        self.m = m
        self.asked = 0

    def fetch(self, uri: str, timeout_s: float) -> bytes:
        self.asked += 1
        name = uri.rsplit("/", 1)[1].removesuffix(".crl")
        kind = "inter" if name.startswith("inter") else "root"
        return self.m.crl_der(kind, int(name.removeprefix(kind))).read_bytes()


def ours(m: material.Material, chains: int, work: Path) -> dict[str, float]:
    eng = Engine.open(work / "dev", clock=FakeClock(AT_US), builtins=None)
    try:
        result = eng.execute(f"crypto ca trustpool import url file://{m.roots_pem}")
        assert result.ok, result.output
        fetcher = MaterialCrls(m)
        eng.ports.crls = fetcher
        loads = []
        for n in range(material.HIERARCHIES):  # each hierarchy's first chain: two CRL loads
            data = m.leaf_pem(n).read_bytes()
            t = time.perf_counter()
            v = eng.validate_peer(data, "any", AT_US)
            loads.append((time.perf_counter() - t) / 2)
            assert v.anchor is not None, v
        assert fetcher.asked == 2 * material.HIERARCHIES
        files = [m.leaf_pem(i) for i in range(chains)]
        failed = 0
        t = time.perf_counter()
        for path in files:
            failed += not eng.validate_peer(path.read_bytes(), "any", AT_US).ok
        recorded = time.perf_counter() - t
        grouped_failed = 0
        t = time.perf_counter()
        for start in range(0, chains, GROUP):
            with eng.group_commit():
                for path in files[start:start + GROUP]:
                    grouped_failed += not eng.validate_peer(path.read_bytes(), "any",
                                                            AT_US).ok
        grouped = time.perf_counter() - t
        assert grouped_failed == failed
        assert fetcher.asked == 2 * material.HIERARCHIES  # every CRL came from the cache
        state, blobs = eng.state, eng.crl_blobs
        t = time.perf_counter()
        pure_failed = sum(not decide_validation(state, blobs, p.read_bytes(), "any", AT_US).ok
                          for p in files)
        pure = time.perf_counter() - t
        assert pure_failed == failed
    finally:
        eng.close()
    return {"rate": chains / recorded, "group_rate": chains / grouped,
            "pure_rate": chains / pure, "failed": failed,
            "load": max(loads), "load_mean": sum(loads) / len(loads)}


def openssl(m: material.Material, chains: int, flag: str) -> dict[str, float]:
    names = m.leaf_names()[:chains]

    def run(files: list[str]) -> tuple[float, str]:
        cmd = ["openssl", "verify", "-attime", str(AT_US // 1_000_000), "-CAfile",
               m.roots_pem.name, "-untrusted", m.inters_pem.name, flag, "-CRLfile",
               m.crls_pem.name, *files]
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=m.root, capture_output=True, text=True, check=False)
        return time.perf_counter() - t, done.stdout

    start, _ = run(names[:1])
    total, out = run(names)
    ok = sum(1 for line in out.splitlines() if line.endswith(": OK"))
    return {"rate": (chains - 1) / max(total - start, 1e-9), "failed": chains - ok,
            "startup": start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) /
                   "trustledger-validate-bench", help="where the material is built and kept")
    p.add_argument("--chains", type=int, default=material.CHAINS,
                   help=f"chains validated (at most {material.CHAINS})")
    p.add_argument("--keep", action="store_true", help="keep the device's data directory")
    args = p.parse_args(argv)
    chains = max(2, min(args.chains, material.CHAINS))
    m = material.build(args.cache)
    work = Path(tempfile.mkdtemp(prefix="tl-validate-bench-", dir=args.cache))
    try:
        print(f"material: {m.root} ({m.manifest})")
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                                 check=False).stdout.strip()
        print(f"openssl: {version}")
        base = openssl(m, chains, "-crl_check")
        full = openssl(m, chains, "-crl_check_all")
        us = ours(m, chains, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _report(chains, us, base, full)
    good = (us["group_rate"] >= base["rate"] and us["load"] < 1.0
            and us["failed"] == full["failed"])
    return 0 if good else 1


def _report(chains: int, us: dict[str, float], base: dict[str, float],
            full: dict[str, float]) -> None:
    print(f"\n{chains} chains, each validated once, CRLs cached")
    print(f"{'':44}{'chains/s':>10}{'failed':>8}")
    print(f"{'ours: validate_peer, one fdatasync each':44}{us['rate']:>10,.0f}"
          f"{us['failed']:>8.0f}")
    print(f"{f'ours: validate_peer, group_commit() of {GROUP}':44}{us['group_rate']:>10,.0f}"
          f"{us['failed']:>8.0f}")
    print(f"{'ours: decide_validation (not recorded)':44}{us['pure_rate']:>10,.0f}"
          f"{us['failed']:>8.0f}")
    print(f"{'openssl verify -crl_check_all':44}{full['rate']:>10,.0f}{full['failed']:>8.0f}")
    print(f"{'openssl verify -crl_check (leaf only)':44}{base['rate']:>10,.0f}"
          f"{base['failed']:>8.0f}")
    print(f"openssl start-up (150 roots, 20 CRLs), subtracted: {full['startup']:.2f} s")
    ratio = us["group_rate"] / base["rate"]
    print(f"\nours (group commit) / openssl -crl_check : {ratio:.2f}x  (target >= 1.0x) "
          f"{'PASS' if ratio >= 1.0 else 'FAIL'}")
    print(f"ours (group commit) / -crl_check_all     : {us['group_rate'] / full['rate']:.2f}x")
    print(f"ours (fdatasync each) / openssl -crl_check: {us['rate'] / base['rate']:.2f}x")
    print(f"CRL load, 100,000 entries      : {us['load']:.2f} s slowest, "
          f"{us['load_mean']:.2f} s mean of {2 * material.HIERARCHIES} (target < 1 s) "
          f"{'PASS' if us['load'] < 1.0 else 'FAIL'}")
    agree = us["failed"] == full["failed"]
    print(f"failed chains agree            : {'yes' if agree else 'NO'} "
          f"({us['failed']:.0f} ours, {full['failed']:.0f} openssl -crl_check_all)")


if __name__ == "__main__":
    raise SystemExit(main())
