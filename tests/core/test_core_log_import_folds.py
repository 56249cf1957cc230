"""`log import` folds every stream on top of the target's own state before writing: a
continuation (first > 1) of a device's or a CA's log is refused when one of its events does
not fold there (it was appended unchecked, and the device then never opened again); an event
of a type this build does not know is refused as opening refuses it (a newer trustledger),
naming the type and seq; an honest continuation, whose events fold only on top of the
target's history, still imports."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.logexport import (
    _LEN,
    _TRAILER,
    MAGIC,
    ExportRefused,
    import_into,
    read_export,
    write_export,
)
from engine.ports import FakeClock
from events.codec import encode_core
from events.filelog import FileEventLog
from events.memory import MemoryEventLog
from events.store import GENESIS, chain_hash
from tests.core.test_core_hostile_export import _cores


def _device_export(root: Path) -> bytes:
    e = Engine.open(root, clock=FakeClock(), user="tester")
    for line in ("configure", "hostname r1", "commit", "end",
                 "crypto key generate ecdsa nistp256 k1", "configure", "hostname r2",
                 "commit", "end", "crypto key generate ecdsa nistp256 k2"):
        assert e.execute(line).ok, line
    out = io.BytesIO()
    write_export(e.store, out, "test")
    e.close()
    return out.getvalue()


def _stream(header: dict[str, Any], cores: list[list[Any]], first: int) -> bytes:
    """Seq `first` on of `cores` as a forger writes them: chained anew from the hash at
    `first - 1`, the trailer recomputed."""
    prev, start, body = GENESIS, GENESIS, b""
    for core in cores:
        raw = encode_core(core)
        prev = chain_hash(prev, raw)
        if core[0] >= first:
            body += _LEN.pack(len(raw)) + raw + prev
        else:
            start = prev
    data = (MAGIC + json.dumps({**header, "first": first, "last": len(cores),
                                "prev": start.hex(), "head": prev.hex()},
                               sort_keys=True).encode() + b"\n" + body)
    return data + _TRAILER + hashlib.sha256(data).hexdigest().encode() + b"\n"


def _target(header: dict[str, Any], cores: list[list[Any]], upto: int) -> MemoryEventLog:
    into = MemoryEventLog()
    import_into(into, read_export(_stream(header, cores[:upto], 1)), "memory")
    return into


def test_a_forged_continuation_of_a_device_log_is_refused(tmp_path: Path) -> None:
    header, cores = _cores(_device_export(tmp_path / "source"))
    assert len(cores) >= 4 and cores[3][2] == "KeyPairGenerated", [c[2] for c in cores]
    forged = copy.deepcopy(cores)
    forged[3][7] = {"bogus": 1}
    into = _target(header, cores, 3)
    export = read_export(_stream(header, forged, 4))  # the stream alone is intact
    with pytest.raises(ExportRefused) as refused:
        import_into(into, export, "memory")
    said = refused.value.render(0)
    assert said.startswith("% Not imported: the KeyPairGenerated event at seq 4 cannot be "
                           "folded (TypeError: "), said
    assert said.endswith("): the stream was not written by trustledger, or was altered and "
                         "re-hashed. Nothing was written."), said
    assert into.head[0] == 3
    honest = import_into(into, read_export(_stream(header, cores, 4)), "memory")
    assert (honest.first, honest.appended) == (4, len(cores) - 3)


@pytest.mark.parametrize("first", [1, 3], ids=["whole", "continuation"])
def test_an_event_type_of_a_newer_build_is_named_as_such(tmp_path: Path, first: int) -> None:
    header, cores = _cores(_device_export(tmp_path / "source"))
    newer = copy.deepcopy(cores)
    newer[3][2] = "FutureThingHappened"
    into = _target(header, cores, first - 1)
    with pytest.raises(ExportRefused) as refused:
        import_into(into, read_export(_stream(header, newer, first)), "memory")
    assert refused.value.render(0) == (
        "% Not imported: the stream holds an event of type FutureThingHappened at seq 4, "
        "which this build does not fold (was it written by a newer trustledger?). Nothing "
        "was written.")
    assert into.head[0] == first - 1


# -- a CA's log: its events fold on top of the CA's state (a challenge consumed was minted) ----


def _ca_cores(root: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    from engine.ca.service import BuiltinCA
    from events.ca import ChallengeConsumed, ChallengeMinted
    from events.store import PendingEvent

    BuiltinCA.init(root, key="rsa:2048", clock=FakeClock()).close()
    log = FileEventLog.open(root / "log")
    digest = hashlib.sha256(b"one-time").digest()
    at = log.head[0] and next(iter(log.read(log.head[0]))).at
    log.append([PendingEvent(ChallengeMinted(digest, at + 10**9), "ca", at),
                PendingEvent(ChallengeConsumed(digest, "tx1"), "ca", at)])
    out = io.BytesIO()
    write_export(log, out, "ca")
    log.close()
    return _cores(out.getvalue())


def test_a_ca_continuation_folds_on_the_cas_own_state(tmp_path: Path) -> None:
    header, cores = _ca_cores(tmp_path / "ca")
    last = len(cores)
    assert cores[-1][2] == "ChallengeConsumed", [c[2] for c in cores]
    forged = copy.deepcopy(cores)
    forged[-1][7]["challenge_sha256"] = hashlib.sha256(b"never minted").digest()
    into = _target(header, cores, last - 1)
    with pytest.raises(ExportRefused) as refused:
        import_into(into, read_export(_stream(header, forged, last)), "memory")
    said = refused.value.render(0)
    assert said.startswith(f"% Not imported: the ChallengeConsumed event at seq {last} cannot "
                           "be folded (KeyError: "), said
    assert into.head[0] == last - 1
    # The honest one consumes the challenge minted in the target's part: it folds there only.
    honest = import_into(into, read_export(_stream(header, cores, last)), "memory")
    assert (honest.first, honest.appended) == (last, 1)


def test_log_import_of_a_forged_continuation_leaves_the_device_opening(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    header, cores = _cores(_device_export(tmp_path / "source"))
    (tmp_path / "head.tlx").write_bytes(_stream(header, cores[:3], 1))
    assert main(["log", "import", "--data", str(tmp_path / "d"),
                 str(tmp_path / "head.tlx")]) == 0
    forged = copy.deepcopy(cores[:5])
    forged[3][7] = {"bogus": 1}
    (tmp_path / "forged.tlx").write_bytes(_stream(header, forged, 4))
    capsys.readouterr()
    assert main(["log", "import", "--data", str(tmp_path / "d"),
                 str(tmp_path / "forged.tlx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("% Not imported: the KeyPairGenerated event at seq 4 cannot be "
                          "folded (TypeError: ") and err.endswith("Nothing was written.\n"), err
    Engine.open(tmp_path / "d", clock=FakeClock(), user="tester").close()  # still opens


def test_a_target_that_does_not_fold_itself_is_said_and_left_alone(tmp_path: Path) -> None:
    from events.keys import KeyPairGenerated
    from events.store import PendingEvent

    header, cores = _cores(_device_export(tmp_path / "source"))
    into = _target(header, cores, 3)
    forged = KeyPairGenerated("0" * 32, "k9", "dsa", "general", 1024, "", b"", b"", b"",
                              "aes-256-gcm")
    into.append([PendingEvent(forged, "device", cores[2][4], "forger")])
    held = [*cores[:3], next(iter(into.read(4))).core()]  # what the target holds
    stream = _stream(header, [*held, [5, *cores[3][1:]]], 5)  # an honest-looking next event
    with pytest.raises(ExportRefused) as refused:
        import_into(into, read_export(stream), "memory")
    said = refused.value.render(0)
    assert said.startswith("% Not imported: memory itself does not fold in this build: The "
                           "device log's event KeyPairGenerated at seq 4 does not fold in "
                           "this build (ValueError: 'dsa' is not a valid KeyAlgorithm)"), said
    assert said.endswith("checks the log's chain. Nothing was written."), said
    assert into.head[0] == 4
