"""The CA's log under storage faults and truncation.

- A failed write or fdatasync of a group commit leaves none of the group's commands in the log:
  the CA says `% Could not write the event log: <reason>. Nothing was changed.`, answers
  nothing more until reopened, and the reopened CA is the CA before the group.
- A CA log cut anywhere is either refused (below its head marker: acknowledged events are
  missing) or opened with the repair said out loud; never silently shorter below the marker,
  so issued certificates do not vanish and consumed one-time challenges do not come back.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.ca import BuiltinCA, Policy
from engine.ca.cli import main as ca_main
from engine.ca.decide import Approval, ReplyStatus
from engine.ca.errors import CAUnavailable
from engine.ca.service import LOG_DIR, challenge_digest, replay
from events import filelog
from events.filelog import FRAME_HEADER, FileEventLog, iter_frames, records_of, write_marker
from tests.ca.ca_support import T0, FixedClock, enroll_cmd, make_ca, rsa_key
from tests.ca.cli_support import REPO, cli

PW_POLICY = Policy(Approval.AUTO, challenge_digest("pw"))
ONE_TIME = Policy(Approval.AUTO)
FAULTS = [(errno.ENOSPC, "No space left on device"), (errno.EIO, "Input/output error")]


@pytest.fixture(autouse=True)
def _no_periodic_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filelog, "MARK_EVERY", 1e9)


def _log_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / LOG_DIR).iterdir())
            if p.name != "LOCK"}


# -- group commit faults --------------------------------------------------------------------


def _group(ca: BuiltinCA) -> None:
    """Three commands in one group commit (the decider of `ca serve --workers`)."""
    with ca.deferred_durability():
        ca.mint_challenge()
        ca.enroll(enroll_cmd(rsa_key(2), "r2", challenge="pw"), PW_POLICY)
        ca.enroll(enroll_cmd(rsa_key(3), "r3"), Policy(Approval.MANUAL))


class Counting:
    def __init__(self, fail_at: int, error: tuple[int, str]) -> None:
        self.calls = 0
        self.fail_at, self.error = fail_at, error

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(*self.error)
            return real(*args)
        return call


def _run_group(root: Path, disk: Counting, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[BuiltinCA, BaseException | None]:
    ca = BuiltinCA.open(root, clock=FixedClock(T0))
    ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
    failed: BaseException | None = None
    with monkeypatch.context() as m:
        for name in ("write", "fsync", "fdatasync"):
            m.setattr(os, name, disk.wrap(getattr(os, name)))
        try:
            _group(ca)
        except CAUnavailable as e:
            failed = e
    return ca, failed


@pytest.mark.parametrize("fault", FAULTS, ids=["ENOSPC", "EIO"])
def test_a_fault_in_a_group_commit_leaves_none_of_its_commands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: tuple[int, str]) -> None:
    pristine = tmp_path / "pristine"
    with make_ca(pristine) as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
    clean = Counting(0, fault)
    ca, failed = _run_group(shutil.copytree(pristine, tmp_path / "clean"), clean, monkeypatch)
    assert failed is None
    ca.close()
    assert clean.calls >= 2
    for k in range(1, clean.calls + 1):
        root = shutil.copytree(pristine, tmp_path / f"k{k}")
        before = _log_files(root)
        with BuiltinCA.open(root, readonly=True) as ro:
            state_before = ro.state
        ca, failed = _run_group(root, Counting(k, fault), monkeypatch)
        assert failed is not None, k
        assert failed.message.startswith(
            f"% Could not write the event log: {fault[1]}. Nothing was changed."), failed.message
        with pytest.raises(CAUnavailable):  # nothing in memory is answered any more
            ca.mint_challenge()
        ca.close()
        assert _log_files(root) == before, k  # the head marker too: nothing new acknowledged
        with BuiltinCA.open(root, clock=FixedClock(T0)) as again:
            assert again.state == state_before and again.log_notice is None, k
            again.crl_url = "http://127.0.0.1:1/crl/ca.crl"
            _group(again)  # the fault is gone: the same commands work
            assert len(again.certificates()) == 2


def test_ca_challenge_on_a_failing_disk_gives_the_message_not_a_traceback(
        tmp_path: Path) -> None:
    root = tmp_path / "ca"
    cli("init", root)
    wrapper = textwrap.dedent("""
        import errno, os, sys
        def fdatasync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fdatasync = fdatasync
        from engine.ca.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    done = subprocess.run([sys.executable, "-c", wrapper, "challenge", str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("% Could not write the event log: No space left on device. "
                                  "Nothing was changed."), done.stderr


# -- truncation -------------------------------------------------------------------------------


def _history(root: Path) -> None:
    """A CA with certificates issued, a one-time challenge consumed and a revocation."""
    with make_ca(root) as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        r1 = ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY).certificate
        password = ca.mint_challenge()
        used = ca.enroll(enroll_cmd(rsa_key(2), "r2", challenge=password), ONE_TIME)
        assert used.status is ReplyStatus.SUCCESS
        ca.enroll(enroll_cmd(rsa_key(3), "r3", challenge="pw"), PW_POLICY)
        assert r1 is not None
        ca.revoke(r1.serial, "keyCompromise")


@dataclass(frozen=True)
class Cut:
    offset: int
    frame_start: int  # the start of the frame the cut falls in (== offset at a boundary)
    kept_head: int  # the last seq of the whole frames before the cut

    @property
    def boundary(self) -> bool:
        return self.offset == self.frame_start


def _cuts(seg: Path) -> list[Cut]:
    """Each frame boundary and three points inside each frame."""
    cuts, head = [], 0
    for f in iter_frames(seg):
        for at in (f.offset, f.offset + 1, f.offset + FRAME_HEADER.size + 3, f.end - 1):
            cuts.append(Cut(at, f.offset, head))
        head = records_of(f, b"")[-1].seq
    return cuts


def _ca(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = ca_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _copy_cut(pristine: Path, root: Path, seg: Path, cut: Cut) -> Path:
    shutil.copytree(pristine, root, ignore=shutil.ignore_patterns("LOCK"))
    os.truncate(root / LOG_DIR / seg.name, cut.offset)
    return root


def _refused(root: Path, marked: int, capsys: pytest.CaptureFixture[str]) -> None:
    before = _log_files(root)
    for argv in (("list", str(root)), ("requests", str(root)), ("challenge", str(root))):
        code, out, err = _ca(*argv, capsys=capsys)
        assert code == 1 and out == "", (argv, out)
        assert err.startswith("% The event log ends at seq ") and (
            f"but seq {marked} (hash ") in err and err.rstrip().endswith(
            "missing. Refusing to open."), err
    assert _log_files(root) == before  # not repaired, not touched


def test_a_ca_log_cut_below_its_marker_refuses_to_open_and_is_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pristine = tmp_path / "pristine"
    _history(pristine)  # closed cleanly: the marker holds the head
    [seg] = sorted((pristine / LOG_DIR).glob("*.seg"))
    with FileEventLog.open(pristine / LOG_DIR, readonly=True) as log:
        head = log.head[0]
    for n, cut in enumerate(_cuts(seg)):
        _refused(_copy_cut(pristine, tmp_path / f"cut{n}", seg, cut), head, capsys)


def test_a_ca_log_cut_above_its_marker_opens_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A crash leaves the marker behind the head. A cut below the marker is refused; a cut
    inside a frame above it is reported by a reader (which leaves it) and repaired and
    reported by a writer; a cut at a frame boundary above it looks exactly like a crash just
    before that frame, and what it lost is above the marker."""
    pristine = tmp_path / "pristine"
    _history(pristine)
    [seg] = sorted((pristine / LOG_DIR).glob("*.seg"))
    with FileEventLog.open(pristine / LOG_DIR, readonly=True) as log:
        records = list(log.read())
    marked = records[len(records) // 2]
    write_marker(pristine / LOG_DIR, marked.seq, marked.hash)  # as a crash would leave it
    size = seg.stat().st_size
    seen = {"refused": 0, "boundary": 0, "repaired": 0}
    for n, cut in enumerate(_cuts(seg)):
        root = _copy_cut(pristine, tmp_path / f"cut{n}", seg, cut)
        if cut.kept_head < marked.seq:
            _refused(root, marked.seq, capsys)
            seen["refused"] += 1
            continue
        seen["boundary" if cut.boundary else "repaired"] += 1
        code, _, err = _ca("list", str(root), capsys=capsys)
        assert code == 0, err
        with BuiltinCA.open(root, readonly=True) as ro:  # exactly the whole frames kept
            assert ro.state == replay(records[:cut.kept_head])
        repair = (f"cut {cut.offset - cut.frame_start} bytes at segment {seg.name} offset "
                  f"{cut.frame_start}: an incomplete last write (a crash) or a truncated file")
        if cut.boundary:
            assert err == "", err
        else:
            assert err == ("%LOG-4-REPAIR_PENDING: opened read-only, the log was not changed; "
                           f"the next open for writing will {repair}\n"), err
            assert (root / LOG_DIR / seg.name).stat().st_size == cut.offset
        code, _, err = _ca("challenge", str(root), capsys=capsys)
        assert code == 0, err
        assert err == ("" if cut.boundary else f"%LOG-4-RECOVERED: {repair}\n"), err
        assert cut.offset < size
    assert min(seen.values()) > 0, seen


def test_the_console_announces_only_what_is_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ca serve`'s console says "issued" once the CertificateIssued is on disk, like every
    other answer: a failed sync must not leave the operator reading about a certificate the
    log does not hold."""
    import io

    from engine.ca.console import Console, console_logger

    with make_ca(tmp_path / "ca") as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        out = io.StringIO()
        ca.console = Console(console_logger(out, as_json=False))

        def eio(*args: Any) -> None:
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as m:
            m.setattr(os, "fdatasync", eio)
            with pytest.raises(CAUnavailable):
                ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
        assert " issued " not in out.getvalue(), out.getvalue()
    with make_ca(tmp_path / "ok") as ca:  # and without a fault, it is announced
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        out = io.StringIO()
        ca.console = Console(console_logger(out, as_json=False))
        ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
        assert " issued " in out.getvalue(), out.getvalue()
