"""`log export` / `log import` carry the CRLs a device keeps beside its log (engine/logexport.py,
version 2 streams): an imported data directory or store verifies whole; a stream whose CRL does
not match the name its event gives is refused and nothing is written; version 1 streams still
import; a device on a store keeps its CRLs in the store too (engine/sharedlog.py)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.cli import main
from engine.logexport import ExportRefused, import_into, read_export, write_export
from engine.ports import FakeClock
from engine.revocation.store import FileCrlBlobs
from engine.sharedlog import SharedLog
from events.filelog import FileEventLog
from events.memory import MemoryEventLog
from events.pgstore import PostgresEventStore
from events.revocation import CrlFetched
from tests.revocation.revocation_support import trustpoint
from tests.support.crl_support import FakeCrlFetcher, Issuer, key

VECTORS = Path(__file__).resolve().parents[1] / "revocation" / "vectors"
GOLDEN_CA = x509.load_pem_x509_certificate((VECTORS / "ca_golden_root.pem").read_bytes())
GOLDEN_CRL = (VECTORS / "crl_golden_two_revoked.der").read_bytes()
SHA = hashlib.sha256(GOLDEN_CRL).hexdigest()
URI = "http://crl.example.com/golden.crl"


def _fetch_crl(e: Engine) -> None:
    e.ports.crls = FakeCrlFetcher({URI: GOLDEN_CRL})
    trustpoint(e, "golden", Issuer(key(0), GOLDEN_CA))
    (rec,) = e.execute(f"crypto ca crl request {URI}").events
    assert isinstance(rec.event, CrlFetched) and rec.event.sha256 == SHA


def _device_with_a_crl(root: Path) -> None:
    with Engine.open(root, clock=FakeClock(), user="tester") as e:
        run_keys = e.execute("crypto key generate ed25519 k1")
        assert run_keys.ok, run_keys.output
        _fetch_crl(e)


def _verify(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["log", "verify", *args])
    return code, capsys.readouterr().out


def test_an_export_carries_the_crls_and_an_imported_directory_verifies_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _device_with_a_crl(tmp_path / "a")
    stream = tmp_path / "a.tlx"
    assert main(["log", "export", str(tmp_path / "a"), "-o", str(stream)]) == 0
    assert "and 1 CRL of" in capsys.readouterr().err
    data = stream.read_bytes()
    assert data.startswith(b"trustledger-log-export v2\n") and GOLDEN_CRL in data
    for private in (tmp_path / "a" / "keystore").rglob("*"):  # keys never leave the device
        if private.is_file() and len(private.read_bytes()) >= 16:
            assert private.read_bytes() not in data, private
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(stream)]) == 0
    assert "% Stored the 1 CRL the stream carries." in capsys.readouterr().err
    assert (tmp_path / "b" / "crls" / SHA).read_bytes() == GOLDEN_CRL
    code, out = _verify([str(tmp_path / "b")], capsys)
    assert code == 0 and "crls      : 1 stored CRL OK\n" in out, out
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(stream)]) == 0
    assert capsys.readouterr().err.endswith("of this stream.\n")  # and no CRL stored
    (tmp_path / "b" / "crls" / SHA).write_bytes(b"damaged")  # a re-import repairs it
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(stream)]) == 0
    assert capsys.readouterr().err.endswith("% Stored the 1 CRL the stream carries.\n")
    assert (tmp_path / "b" / "crls" / SHA).read_bytes() == GOLDEN_CRL


def _with_blob_bytes(data: bytes, new: bytes) -> bytes:
    """`data` (a v2 stream ending with one blob record) with that blob's bytes replaced by
    `new` and a correct trailer: only the blob check can object."""
    body = data[:-69]
    at = body.rindex(bytes.fromhex(SHA))
    body = body[:at + 32] + len(new).to_bytes(4, "big") + new
    return body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def test_a_crl_that_does_not_match_its_name_is_refused_and_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _device_with_a_crl(tmp_path / "a")
    stream = tmp_path / "a.tlx"
    assert main(["log", "export", str(tmp_path / "a"), "-o", str(stream)]) == 0
    bad = tmp_path / "bad.tlx"
    bad.write_bytes(_with_blob_bytes(stream.read_bytes(), GOLDEN_CRL[:-1] + b"\x00"))
    capsys.readouterr()
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == (f"% Not imported: the blob it carries as {SHA} does not hash to that name "
                   "(the CRL an event names by it). Nothing was written.\n")
    assert not (tmp_path / "b").exists()
    # A blob named by no event, under its own correct name: refused too.
    other = b"not a CRL any event names"
    body = stream.read_bytes()[:-69] + hashlib.sha256(other).digest() + \
        len(other).to_bytes(4, "big") + other
    with pytest.raises(ExportRefused, match="that none of its events names"):
        read_export(body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n")


def test_a_version_1_stream_still_imports(tmp_path: Path) -> None:
    _device_with_a_crl(tmp_path / "a")
    with FileEventLog.open(tmp_path / "a" / "log", readonly=True) as log:
        out = io.BytesIO()
        written = write_export(log, out, "a")  # no blob store given: the events only
        assert written.events == log.head[0] and written.missing == [(log.head[0], SHA)]
        records = list(log.read())
    body = out.getvalue()[:-69]
    body = b"trustledger-log-export v1\n" + body[len(b"trustledger-log-export v2\n"):]
    v1 = read_export(body + b"end " + hashlib.sha256(body).hexdigest().encode() + b"\n")
    assert v1.blobs == {} and json.loads(body.split(b"\n")[1])["last"] == len(records)
    into = MemoryEventLog()
    assert import_into(into, v1, "memory") == (1, len(records), 0)
    assert list(into.read()) == records


def test_a_crl_missing_at_the_source_is_said_and_left_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _device_with_a_crl(tmp_path / "a")
    (tmp_path / "a" / "crls" / SHA).unlink()
    stream = tmp_path / "a.tlx"
    capsys.readouterr()
    assert main(["log", "export", str(tmp_path / "a"), "-o", str(stream)]) == 0
    err = capsys.readouterr().err
    assert f"names the CRL {SHA}, which is not stored beside the log: the stream does not " \
        "carry it.\n" in err
    assert read_export(stream.read_bytes()).blobs == {}


@pytest.mark.integration
def test_dir_to_store_to_dir_keeps_the_crls(pg_url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _device_with_a_crl(tmp_path / "a")
    one, two = tmp_path / "one.tlx", tmp_path / "two.tlx"
    assert main(["log", "export", str(tmp_path / "a"), "-o", str(one)]) == 0
    assert main(["log", "import", "--store", pg_url, "--device", "r1", str(one)]) == 0
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert store.get_blob(SHA) == GOLDEN_CRL
    code, out = _verify(["--store", pg_url, "--device", "r1"], capsys)
    assert code == 0 and "crls      : 1 stored CRL OK\n" in out, out
    assert main(["log", "export", "--store", pg_url, "--device", "r1", "-o", str(two)]) == 0
    assert main(["log", "import", "--data", str(tmp_path / "b"), str(two)]) == 0
    code, out = _verify([str(tmp_path / "b")], capsys)
    assert code == 0 and "crls      : 1 stored CRL OK\n" in out, out


@pytest.mark.integration
def test_a_device_on_a_store_keeps_its_crls_there_for_another_data_directory(
        pg_url: str, tmp_path: Path) -> None:
    with Engine.open(tmp_path / "a", clock=FakeClock(), user="tester",
                     log=SharedLog.open(pg_url, "r1", tmp_path / "a" / "audit")) as e:
        _fetch_crl(e)
    assert (tmp_path / "a" / "crls" / SHA).is_file()
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert store.get_blob(SHA) == GOLDEN_CRL
    # Another data directory of the same device (adopted): no local copy, read from the
    # store, checked, and kept locally from then on.
    with Engine.open(tmp_path / "b", clock=FakeClock(), user="tester",
                     log=SharedLog.open(pg_url, "r1", tmp_path / "b" / "audit")) as e:
        assert e.crl_blobs.get(SHA) == GOLDEN_CRL
    assert FileCrlBlobs(tmp_path / "b" / "crls").get(SHA) == GOLDEN_CRL


@pytest.mark.integration
def test_crls_a_device_kept_only_locally_are_copied_to_the_store_at_its_next_open(
        pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A device on a store from before the store kept CRLs: its next open puts them there,
    so the store's log verifies (and exports) whole without that data directory."""
    import psycopg

    def open_r1() -> Engine:
        return Engine.open(tmp_path / "a", clock=FakeClock(), user="tester",
                           log=SharedLog.open(pg_url, "r1", tmp_path / "a" / "audit"))

    with open_r1() as e:
        _fetch_crl(e)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM trustledger_blobs")  # as an older build left the store
    code, out = _verify(["--store", pg_url, "--device", "r1"], capsys)
    assert code == 1 and "which is missing (neither in the data directory nor in the store)" in out
    open_r1().close()
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert store.get_blob(SHA) == GOLDEN_CRL
    code, out = _verify(["--store", pg_url, "--device", "r1"], capsys)
    assert code == 0 and "crls      : 1 stored CRL OK\n" in out, out
