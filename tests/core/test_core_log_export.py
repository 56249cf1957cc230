"""`trustledger log export` / `log import` (engine/logexport.py): a log moved between a data
directory and a PostgreSQL store keeps its chain, hashes and seqs; a damaged, cut, gapped,
foreign or non-export stream is refused and nothing is written."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.logexport import ExportRefused, import_into, read_export, write_export
from events.filelog import FileEventLog
from events.memory import MemoryEventLog
from events.pgstore import PostgresEventStore
from events.store import Recorded
from tests.core.engine_support import open_engine, run

REPO = Path(__file__).resolve().parents[2]


def _device(data: Path, hostname: str = "r1") -> list[Recorded]:
    """A data directory with a few commands' events (an upcast-free, realistic log)."""
    with open_engine(data) as eng:
        run(eng, "configure", f"hostname {hostname}", "domain name example.net", "commit",
            "end", "crypto key generate ed25519 k1", "configure", "crypto ca trustpoint ca1",
            " enrollment url http://127.0.0.1:1", "commit", "end")
    with FileEventLog.open(data / "log", readonly=True) as log:
        return list(log.read())


def _export(records: list[Recorded], name: str = "test") -> bytes:
    log = MemoryEventLog()
    log._records.extend(records)
    out = io.BytesIO()
    write_export(log, out, name)
    return out.getvalue()


def _chain(records: list[Recorded]) -> list[tuple[int, bytes, bytes]]:
    return [(r.seq, r.prev, r.hash) for r in records]


def test_a_file_log_round_trips_through_an_export_byte_for_byte(tmp_path: Path) -> None:
    records = _device(tmp_path / "a")
    data = _export(records)
    assert data.startswith(b"trustledger-log-export v2\n")
    header = json.loads(data.split(b"\n")[1])
    assert header == {"log": "test", "kind": "device", "first": 1, "last": len(records),
                      "prev": "00" * 32, "head": records[-1].hash.hex()}
    into = MemoryEventLog()
    assert import_into(into, read_export(data), "memory") == (1, len(records), 0)
    assert list(into.read()) == records  # every field, seq, prev and hash
    assert _export(list(into.read())) == data


def test_every_changed_byte_and_every_cut_is_refused(tmp_path: Path) -> None:
    data = _export(_device(tmp_path / "a")[:3])
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        with pytest.raises(ExportRefused, match="Nothing was written"):
            read_export(bytes(flipped))
    for cut in range(len(data)):
        with pytest.raises(ExportRefused):
            read_export(data[:cut])
    with pytest.raises(ExportRefused, match=r"bytes after its last record|trailer"):
        read_export(data + b"\n")


def _resealed(body: bytes) -> bytes:
    """`body` (magic, header, records) with a correct trailer: only the chain can object."""
    return body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def test_a_gap_or_a_lying_header_is_refused_even_with_a_correct_trailer(
        tmp_path: Path) -> None:
    records = _device(tmp_path / "a")[:3]
    data = _export(records)
    body = data[:-69]
    magic, header, rest = body.split(b"\n", 2)
    sizes = []
    at = 0
    while at < len(rest):
        n = int.from_bytes(rest[at:at + 4], "big")
        sizes.append(rest[at:at + 36 + n])
        at += 36 + n
    gapped = b"\n".join([magic, header, sizes[0] + sizes[2]])  # seq 2 left out
    with pytest.raises(ExportRefused, match=r"seq 2 does not hash|ends before seq 3"):
        read_export(_resealed(gapped))
    h = json.loads(header)
    h["last"] = 2  # a header that claims less than it holds
    with pytest.raises(ExportRefused, match=r"bytes after its last record|blob"):
        read_export(_resealed(b"\n".join([magic, json.dumps(h).encode(), rest])))
    with pytest.raises(ExportRefused, match="bytes after its last record"):  # version 1
        read_export(_resealed(b"\n".join([b"trustledger-log-export v1", json.dumps(h).encode(),
                                          rest])))
    with pytest.raises(ExportRefused, match=r"not a `trustledger log export` stream"):
        read_export(b"seq,type\n1,HostnameSet\n")
    h = json.loads(header)
    h["kind"] = "ca"  # the header is not hashed: its kind must agree with every record
    with pytest.raises(ExportRefused, match=r"header says a ca log, but seq 1 is an event "
                                            r"of a 'device' log\. Nothing was written"):
        read_export(_resealed(b"\n".join([magic, json.dumps(h).encode(), rest])))


def test_a_foreign_stream_is_refused_and_the_same_one_twice_is_a_no_op(
        tmp_path: Path) -> None:
    mine, theirs = _device(tmp_path / "a", "mine"), _device(tmp_path / "b", "theirs")
    into = MemoryEventLog()
    into._records.extend(mine)
    with pytest.raises(ExportRefused, match=r"a foreign stream\. Nothing was written"):
        import_into(into, read_export(_export(theirs)), "memory")
    assert list(into.read()) == mine
    assert import_into(into, read_export(_export(mine)), "memory") == (len(mine) + 1, 0, 0)
    assert import_into(into, read_export(_export(mine[:2])), "memory") == (len(mine) + 1, 0, 0)
    part = MemoryEventLog()  # an interrupted import: the rest is appended
    part._records.extend(mine[:2])
    assert import_into(part, read_export(_export(mine)), "memory") == (3, len(mine) - 2, 0)
    assert list(part.read()) == mine


@pytest.mark.integration
def test_file_to_postgres_to_file_keeps_the_chain(pg_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    records = _device(tmp_path / "a")
    one, two = tmp_path / "one.export", tmp_path / "two.export"
    assert main(["log", "export", str(tmp_path / "a"), "-o", str(one)]) == 0
    assert main(["log", "import", "--store", pg_url, "--device", "r1", str(one)]) == 0
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert list(store.read()) == records
    assert main(["log", "export", "--store", pg_url, "--device", "r1", "-o", str(two)]) == 0
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(two)]) == 0
    with FileEventLog.open(tmp_path / "b" / "log", readonly=True) as log:
        assert _chain(list(log.read())) == _chain(records) and list(log.read()) == records
    capsys.readouterr()
    assert main(["log", "import", "--store", pg_url, "--device", "r1", str(two)]) == 0
    assert "Nothing imported" in capsys.readouterr().err
    _device(tmp_path / "c", "other")
    assert main(["log", "export", str(tmp_path / "c"), "-o", str(one)]) == 0
    assert main(["log", "import", "--store", pg_url, "--device", "r1", str(one)]) == 2
    assert "a foreign stream. Nothing was written." in capsys.readouterr().err
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert list(store.read()) == records


@pytest.mark.integration
@pytest.mark.usefixtures("cli_locale")
def test_export_piped_into_import_as_an_operator_types_it(pg_url: str,
                                                          tmp_path: Path) -> None:
    records = _device(tmp_path / "a")
    cmd = (f"{shlex.quote(sys.executable)} -m engine.cli log export {tmp_path / 'a'} | "
           f"{shlex.quote(sys.executable)} -m engine.cli log import --store "
           f"{shlex.quote(pg_url)} --device r9")
    done = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"% Imported seq 1-{len(records)} into "
                                                   "device r9 in postgresql://")
    with PostgresEventStore.open(pg_url, "r9", readonly=True) as store:
        assert list(store.read()) == records
    bad = subprocess.run([sys.executable, "-m", "engine.cli", "log", "import", "--store",
                          pg_url, "--device", "r8"], input=b"not an export\n",
                         capture_output=True, cwd=REPO, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.decode().startswith("% Not imported: it does not start with the "
                                          "export header")


def test_an_import_into_a_new_data_directory_makes_it_private_or_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import stat

    records = _device(tmp_path / "a")
    whole = tmp_path / "whole.tlx"
    whole.write_bytes(_export(records))
    assert main(["log", "import", "--data", str(tmp_path / "n1"), str(whole)]) == 0
    for made in (tmp_path / "n1", tmp_path / "n1" / "log"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made  # as `shell` makes them
    # From seq 2 on: intact, but it does not reach an empty log, so it is refused there.
    body = _export(records)[:-69]
    magic, header, rest = body.split(b"\n", 2)
    h = json.loads(header)
    h.update(first=2, prev=records[0].hash.hex())
    size = int.from_bytes(rest[:4], "big")
    tail = tmp_path / "tail.tlx"
    tail.write_bytes(_resealed(b"\n".join([magic, json.dumps(h).encode(),
                                           rest[36 + size:]])))
    capsys.readouterr()
    assert main(["log", "import", "--data", str(tmp_path / "p1" / "d"), str(tail)]) == 2
    assert "Nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "p1").exists()  # not even the parent it would have made


def test_empty_input_is_said_to_be_no_input(tmp_path: Path) -> None:
    with pytest.raises(ExportRefused, match=r"Not imported: there was no input\. Nothing "
                                            r"was written\.$"):
        read_export(b"")
