"""`log import` of an export crafted by someone who can hash: every record re-chained and the
trailer recomputed (anyone can), but an event that is not what its type says (a field of
another type, a value its enum does not know, a time before year 1, a commit's changes that
are not changes). The stream is intact, so only folding it shows the damage: the import
refuses it (it was imported, and the device then failed to open with a traceback), and an
honest export still imports and opens."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engine import Engine
from engine.errors import OperatorError
from engine.logexport import _LEN, _TRAILER, MAGIC, ExportRefused, read_export, write_export
from engine.ports import FakeClock
from events.codec import encode_core
from events.memory import MemoryEventLog
from events.store import GENESIS, chain_hash


def _honest_export(root: Path) -> bytes:
    e = Engine.open(root, clock=FakeClock(), user="tester")
    for line in ("configure", "hostname r1", "domain name example.com", "commit", "end",
                 "crypto key generate ecdsa nistp256 k1"):
        assert e.execute(line).ok, line
    out = io.BytesIO()
    write_export(e.store, out, "test")
    e.close()
    return out.getvalue()


def _cores(data: bytes) -> tuple[dict[str, Any], list[list[Any]]]:
    line_end = data.find(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):line_end])
    at, cores = line_end + 1, []
    for _ in range(header["first"], header["last"] + 1):
        (size,) = _LEN.unpack_from(data, at)
        cores.append(list(msgpack.unpackb(data[at + 4:at + 4 + size], raw=False)))
        at += 36 + size
    return header, cores


def _rehashed(header: dict[str, Any], cores: list[list[Any]]) -> bytes:
    """The stream a forger writes: each record chained anew, the trailer recomputed."""
    prev, body = GENESIS, b""
    for core in cores:
        raw = encode_core(core)
        prev = chain_hash(prev, raw)
        body += _LEN.pack(len(raw)) + raw + prev
    data = (MAGIC + json.dumps({**header, "last": len(cores), "head": prev.hex()},
                               sort_keys=True).encode() + b"\n" + body)
    return data + _TRAILER + hashlib.sha256(data).hexdigest().encode() + b"\n"


def _of(cores: list[list[Any]], type_name: str) -> dict[str, Any]:
    payload: dict[str, Any] = next(c for c in cores if c[2] == type_name)[7]
    return payload


FORGERIES: dict[str, Callable[[list[list[Any]]], None]] = {
    "enum-value-unknown": lambda c: _of(c, "KeyPairGenerated").update(algorithm="dsa"),
    "changes-not-changes": lambda c: _of(c, "ConfigurationCommitted").update(
        changes=[[1, 2, 3]]),
    "time-before-year-one": lambda c: next(
        core for core in c if core[2] == "KeyPairGenerated").__setitem__(4, -10**18),
    "payload-not-a-map": lambda c: next(
        core for core in c if core[2] == "ConfigurationCommitted").__setitem__(7, [1, 2]),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_event_is_refused_at_import(tmp_path: Path, case: str) -> None:
    header, cores = _cores(_honest_export(tmp_path / "source"))
    forged = copy.deepcopy(cores)
    FORGERIES[case](forged)
    with pytest.raises(ExportRefused) as refused:
        read_export(_rehashed(header, forged))
    said = refused.value.render(0)
    assert said.startswith("% Not imported: the ") and said.endswith("Nothing was written."), said
    if case == "time-before-year-one":
        assert "is dated -1000000000000000000, not a time" in said, said
    else:
        assert " cannot be folded (" in said and "altered and re-hashed" in said, said


def test_an_honest_export_rehashed_the_same_still_imports_and_opens(tmp_path: Path) -> None:
    header, cores = _cores(_honest_export(tmp_path / "source"))
    export = read_export(_rehashed(header, cores))
    from engine.logexport import import_into

    into = MemoryEventLog()
    assert import_into(into, export, "memory").appended == len(cores)


# -- the same forgery written straight into a log (its frames' CRCs are anyone's to compute) ----


def _forged_log(root: Path) -> None:
    from events.filelog import FileEventLog
    from events.keys import KeyPairGenerated
    from events.store import PendingEvent

    _honest_export(root)  # a device with history, closed
    log = FileEventLog.open(root / "log")
    forged = KeyPairGenerated("0" * 32, "k9", "dsa", "general", 1024, "", b"", b"", b"",
                              "aes-256-gcm")
    log.append([PendingEvent(forged, "device", 1_800_000_000_000_000, "forger")])
    log.close()


@pytest.mark.parametrize("snapshots", [True, False], ids=["from-snapshot", "full-replay"])
def test_a_forged_event_in_the_log_refuses_to_open_naming_it(tmp_path: Path,
                                                             snapshots: bool) -> None:
    root = tmp_path / "device"
    _forged_log(root)
    with pytest.raises(OperatorError) as refused:
        Engine.open(root, clock=FakeClock(), user="tester", use_snapshots=snapshots)
    said = refused.value.render(0)
    assert said.startswith("% The device log's event KeyPairGenerated at seq "), said
    assert (" does not fold in this build (ValueError: 'dsa' is not a valid KeyAlgorithm): "
            "the log holds an event this build cannot apply (altered, or written by another "
            "build), or this build has a bug. Refusing to open; 'trustledger log verify' "
            "checks the log's chain.") in said, said


def test_exec_on_a_forged_log_is_one_percent_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "device"
    _forged_log(root)
    (tmp_path / "script.txt").write_text("show clock\n")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "exec", "--data", str(root),
                           "-f", str(tmp_path / "script.txt")], capture_output=True,
                          text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both
    assert done.returncode == 2, both
    assert "% The device log's event KeyPairGenerated at seq " in both, both
