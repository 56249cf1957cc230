"""A fair size account for issue 11: the code of the features that existed at dac2dc5 (before
the kernel redesign), then and now.

    python tools/size_account.py              # the summary and the per-area table
    python tools/size_account.py --files      # also every file, old and now, with its split
    python tools/size_account.py --commits    # also how each commit since dac2dc5 was classed
    python tools/size_account.py --at REV     # "now" is REV instead of HEAD

Run it from the repository root (it reads git: `git show`, `git blame`, `git rev-list`).

What counts. At dac2dc5 every line of engine/, events/ and projections/ implements the
features of that day: identity and configuration with its two-stage commit, keys,
trustpoints, SCEP and cut-and-paste enrollment, the built-in CA, and the log's audit CLI
(verify, show, replay). Since then these landed beside them: the trustpool, the engine clock,
CRL retrieval and revocation, peer validation, renewal, CA rollover, the verifiable audit and
its witnesses, the PostgreSQL store and fleets. "Now" is today's tree without those.

How the later features are separated, in two steps:

1. Whole files. A file that exists only for a later feature (LATER_FILES: its packages,
   commands, events, renderers, machines) is left out whole.
2. Lines of shared files. Every other file is split line by line with `git blame -w -M -C`
   at HEAD: a line last written by a commit of a later feature's branch (LATER_MERGES: the
   commits a merge brought in that its first parent lacked, and the merge) or by one made
   on main itself (LATER_SUBJECT: matched on its subject) is left out; every other line
   (dac2dc5's, the redesign's, the performance and tidy work's) counts as the old features'.
   This errs both ways and says so: an old line a later branch re-touched (an argument added
   to an old function) is left out, and a later feature's line a tidy commit rewrote is kept.
   So the summary also prints the bound with shared files counted whole.

Files that exist only for the performance work of issue 12 on the old features (PERF_FILES:
fast paths) are counted as the old features' and also shown on their own line.

Kinds of line: raw (every line), code (not blank, not only a comment), and logic (code
without docstrings: a string statement's lines).
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

BEFORE = "dac2dc5"
ROOTS = ("engine", "events", "projections")

LATER_FILES = (
    # packages of later features
    "engine/trustpool/", "engine/revocation/", "engine/validation/", "engine/renewal/",
    "engine/rollover/", "engine/audit/", "engine/fleet/",
    # their command-line entry points and stores
    "engine/auditcli.py", "engine/reportcli.py", "engine/witnesscli.py", "engine/fleetcli.py",
    "engine/sharedlog.py", "engine/devicelog.py", "engine/storebinding.py",
    "engine/logexport.py", "engine/adapters/witness_http.py",
    # the CA's parts of later features (LDAP CDP and publish-crl, rollover)
    "engine/ca/ldap_publish.py", "engine/ca/rollover_cli.py", "engine/ca/generations.py",
    "engine/scep/nextca.py",
    # device commands, machines, events and renderers of later features
    "engine/commands/crl.py", "engine/commands/run/", "engine/commands/trustpool.py",
    "engine/commands/validation.py", "engine/commands/witness.py",
    "engine/commands/renewal.py", "engine/commands/clock.py",
    "engine/machines/renewal.py", "engine/machines/trustpool.py",
    "events/audit.py", "events/clock.py", "events/pgstore.py", "events/renewal.py",
    "events/revocation.py", "events/rollover.py", "events/trustpool.py",
    "events/validation.py", "events/witness.py",
    "projections/audit_report.py", "projections/report_timeline.py", "projections/clock.py",
    "projections/crls.py", "projections/fleet.py", "projections/timers.py",
    "projections/trustpool.py", "projections/validation.py",
)

PERF_FILES = ("engine/scep/_fastcsr.py", "engine/scep/_fastder.py", "events/runs.py",
              "events/typed.py")

LATER_MERGES = {  # merge commit -> the later feature's branch it brought in
    "1f2ef26": "wt-crl", "7a01320": "wt-validate", "e06be32": "wt-audit",
    "63369bf": "wt-witness", "410dd60": "wt-renew", "be43d97": "wt-rollover",
    "23827bb": "wt-fixrev", "d4103aa": "wt-revoked", "3788315": "wt-revoked",
    "3efdc73": "wt-fixaudit", "d702389": "wt-auditsign", "30d06a6": "wt-pgstore",
    "4a35e4c": "wt-pgengine", "8b71a36": "wt-fleet", "86f347d": "wt-fixfleet",
    "b7bc075": "wt-fixstore", "f7c90a6": "wt-trustpool", "230c394": "wt-clock",
}

LATER_SUBJECT = re.compile(
    r"^(renewal|expiry|CRL|CA rollover|CA over a store|revocation|trustpool|audit|witness|"
    r"validate|pgstore|fleet|shared log|clock set|schedule: a repeating warning)", re.I)
"""Subjects of the later features' commits made on main itself (not on a branch)."""

SUCCESSORS = {  # an old file that is gone -> where its code went
    "engine/lifecycle.py": ("engine/machines/trustpoint.py", "engine/machines/table.py"),
    "engine/ca/ports.py": ("engine/ports.py",),
}

AREAS = (  # (area, path prefixes), first match wins; the same for both trees
    ("events: store, codec, event types", ("events/",)),
    ("kernel: runtime, effects, ports, folds, errors, machines, state, snapshot, app",
     ("engine/runtime.py", "engine/effects.py", "engine/ports.py", "engine/folds.py",
      "engine/errors.py", "engine/machines/", "engine/lifecycle.py", "engine/state.py",
      "engine/device_folds.py", "engine/device_timers.py", "engine/schedule.py",
      "engine/snapshot.py", "engine/engine.py", "engine/context.py", "engine/scrub.py",
      "engine/__init__.py", "engine/logsetup.py")),
    ("built-in CA", ("engine/ca/",)),
    ("SCEP messages, client, HTTP", ("engine/scep/", "engine/scep_client.py",
                                     "engine/adapters/")),
    ("device commands, keys, trustpoints, configuration",
     ("engine/commands/", "engine/trustpoints.py", "engine/keys.py", "engine/keystore.py",
      "engine/keyimport.py", "engine/keytidy.py", "engine/keyformats.py", "engine/config.py",
      "engine/session.py", "engine/destruction.py", "engine/pki.py", "engine/certids.py",
      "engine/messages.py", "engine/der.py")),
    ("CLI, grammar, parser, frontends", ("engine/cli.py", "engine/grammar.py",
                                         "engine/parser.py", "engine/pipe.py",
                                         "engine/frontends.py", "engine/demo.py")),
    ("views and renderers", ("engine/views/", "projections/")),
)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True,
                          text=True).stdout


def is_later_file(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in LATER_FILES)


def area_of(path: str) -> str:
    for name, prefixes in AREAS:
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
            return name
    return "other"


def line_kinds(text: str) -> list[str]:
    """Each line's kind: "blank", "comment", "doc" (a string statement) or "code"."""
    lines = text.splitlines()
    kinds = ["blank" if not ln.strip() else "code" for ln in lines]
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT and not lines[tok.start[0] - 1][:tok.start[1]].strip():
            kinds[tok.start[0] - 1] = "comment"
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.end_lineno is not None):
            for i in range(node.lineno - 1, node.end_lineno):
                if kinds[i] != "blank":
                    kinds[i] = "doc"
    return kinds


@dataclass
class Lines:
    raw: int = 0
    code: int = 0
    logic: int = 0

    def add(self, kind: str) -> None:
        self.raw += 1
        self.code += kind in ("code", "doc")
        self.logic += kind == "code"

    def __iadd__(self, other: Lines) -> Lines:
        self.raw += other.raw
        self.code += other.code
        self.logic += other.logic
        return self


@dataclass
class FileAccount:
    path: str
    before: Lines = field(default_factory=Lines)
    old: Lines = field(default_factory=Lines)     # now: the old features' lines
    later: Lines = field(default_factory=Lines)   # now: later features' lines
    how: str = ""                                 # "later file", "blame", "gone", "new"


def later_commits(at: str) -> tuple[set[str], dict[str, str]]:
    """Every commit since BEFORE written for a later feature, and why each was classed so."""
    why: dict[str, str] = {}
    for merge, branch in LATER_MERGES.items():
        # the merge itself too: what it resolved by hand is the branch's
        for sha in [git("rev-parse", merge).strip(),
                    *git("rev-list", f"{merge}^2", f"^{merge}^1").split()]:
            why.setdefault(sha, branch)
    for row in git("log", "--format=%H %s", f"{BEFORE}..{at}").splitlines():
        sha, _, subject = row.partition(" ")
        if sha not in why and LATER_SUBJECT.match(subject):
            why[sha] = "subject: " + subject[:60]
    return set(why), why


def blame_owners(at: str, path: str) -> list[str]:
    """The commit that last wrote each line of `path` at `at`."""
    owners: list[str] = []
    for row in git("blame", "-w", "-M", "-C", "--porcelain", at, "--", path).splitlines():
        head = row.split(" ")
        if len(head) >= 3 and len(head[0]) == 40 and all(c in "0123456789abcdef"
                                                             for c in head[0]):
            owners.append(head[0])
    return owners


def python_files(rev: str) -> list[str]:
    return [p for p in git("ls-tree", "-r", "--name-only", rev, "--", *ROOTS).splitlines()
            if p.endswith(".py")]


def account(at: str) -> tuple[list[FileAccount], dict[str, str]]:
    later, why = later_commits(at)
    files: dict[str, FileAccount] = {}
    for path in python_files(BEFORE):
        acc = files.setdefault(path, FileAccount(path, how="gone"))
        for kind in line_kinds(git("show", f"{BEFORE}:{path}")):
            acc.before.add(kind)
    for path in python_files(at):
        acc = files.setdefault(path, FileAccount(path, how="new"))
        kinds = line_kinds(git("show", f"{at}:{path}"))
        if is_later_file(path):
            acc.how = "later file"
            for kind in kinds:
                acc.later.add(kind)
            continue
        acc.how = "blame" if acc.how == "gone" else "new, blame"
        owners = blame_owners(at, path)
        assert len(owners) == len(kinds), path
        for kind, sha in zip(kinds, owners, strict=True):
            (acc.later if sha in later else acc.old).add(kind)
    return sorted(files.values(), key=lambda a: (area_of(a.path), a.path)), why


def fmt(n: Lines) -> str:
    return f"{n.raw:7,} {n.code:7,} {n.logic:7,}"


HEAD_ROW = f"{'raw':>7} {'code':>7} {'logic':>7}"


def total(accs: Iterable[FileAccount], attr: str) -> Lines:
    out = Lines()
    for a in accs:
        out += getattr(a, attr)
    return out


def report(accs: list[FileAccount], why: dict[str, str], at: str, files: bool,
           commits: bool) -> None:
    head = git("rev-parse", "--short", at).strip()
    print(f"Old features' code (engine/, events/, projections/): {BEFORE} -> {head}")
    print(f"{'':44} {HEAD_ROW}")
    before, old = total(accs, "before"), total(accs, "old")
    shared = [a for a in accs if "blame" in a.how]
    whole = total(shared, "old")
    whole += total(shared, "later")
    perf = total([a for a in accs if a.path in PERF_FILES], "old")
    print(f"{'at ' + BEFORE + ' (every line)':44} {fmt(before)}")
    print(f"{'now, old features (blame split)':44} {fmt(old)}")
    print(f"{'  of which issue 12 fast paths':44} {fmt(perf)}")
    print(f"{'now, shared files counted whole (bound)':44} {fmt(whole)}")
    print(f"{'now, later features (left out)':44} {fmt(total(accs, 'later'))}")
    everything = total(accs, "old")
    everything += total(accs, "later")
    print(f"{'now, everything':44} {fmt(everything)}")
    print()
    print(f"{'area':60} {'before':>23}   {'now (old features)':>23}")
    for name in sorted({area_of(a.path) for a in accs} - {"other"}):
        group = [a for a in accs if area_of(a.path) == name]
        print(f"{name[:60]:60} {fmt(total(group, 'before'))}   {fmt(total(group, 'old'))}")
    print()
    for old_path, new in SUCCESSORS.items():
        print(f"gone: {old_path} -> {', '.join(new)}")
    if files:
        print()
        print(f"{'file':44} {'before':>23}   {'now (old)':>23}   {'now (later)':>23}  how")
        for a in accs:
            print(f"{a.path:44} {fmt(a.before)}   {fmt(a.old)}   {fmt(a.later)}  {a.how}")
    if commits:
        print()
        for reason, n in sorted(Counter(why.values()).items()):
            print(f"{n:5} commits later: {reason}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", action="store_true", help="every file, before and now")
    ap.add_argument("--commits", action="store_true", help="how commits were classed")
    ap.add_argument("--at", default="HEAD", metavar="REV", help="the tree to count as now")
    args = ap.parse_args(argv)
    accs, why = account(args.at)
    report(accs, why, args.at, args.files, args.commits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
