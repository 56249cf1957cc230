"""A device configured with a witness (`audit witness url URL key KEY`) gets every checkpoint
co-signed over HTTP, `audit verify --witness-key` requires the cosignature, and a device
whose history is rewritten (its data directory restored from an older copy, its own audit
trail with it, so that its own open check passes) is caught by the witness."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.adapters.witness_http import serve_witness
from engine.audit.merkle import CompactRange, MerkleTree, leaf_hash
from engine.audit.witness_client import consistency_from
from engine.audit.witness_service import WitnessService, init_witness
from engine.cli import main
from engine.ports import FakeClock
from events.witness import CheckpointCosigned, CheckpointRefused

WITNESS = "witness.example/w1"


def test_the_proof_from_a_compact_range_is_the_proof_from_the_whole_tree() -> None:
    leaves = [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(70)]
    tree = MerkleTree(leaves)
    for n in range(1, 71):
        for m in range(1, n):
            old = CompactRange()
            old.extend(leaves[:m])
            assert consistency_from(old, leaves[m:n]) == tree.consistency_proof(m, n), (m, n)


def test_the_witness_line_refuses_a_malformed_key(tmp_path: Path) -> None:
    e = Engine.open(tmp_path / "dev", clock=FakeClock(), user="tester")
    try:
        e.execute("configure")
        r = e.execute("audit witness url http://127.0.0.1:9 key witness+00000000+AAAA")
        assert not r.ok and "% Invalid input" in r.output
        assert e.execute("audit witness url ftp://x key k").ok is False
    finally:
        e.close()


class Device:
    """The device under test, on a fake clock, reopened as the test needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = FakeClock()
        self.engine = self.open()

    def open(self) -> Engine:
        return Engine.open(self.root, clock=self.clock, user="tester", audit=True)

    def commit(self, *lines: str) -> str:
        self.clock.advance(60)
        out = [self.engine.execute(line).output for line in ("configure", *lines, "commit")]
        self.engine.execute("end")
        return "".join(out)

    @property
    def log_key(self) -> str:
        key = self.engine.state.audit_key
        assert key is not None
        return key.verifier().key_string()


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[tuple[WitnessService, str, str]]:
    key = init_witness(tmp_path / "witness", WITNESS)
    with WitnessService(tmp_path / "witness") as service:
        server = serve_witness(service)
        try:
            yield service, server.url, key.key_string()
        finally:
            server.stop()


def _verify(tmp_path: Path, device: Path, log_key: str, witness_key: str,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    bundle = tmp_path / "bundle"
    assert main(["audit", "export", str(device), "-o", str(bundle)]) == 0
    capsys.readouterr()
    status = main(["audit", "verify", str(bundle), "--key", log_key,
                   "--witness-key", witness_key])
    return status, capsys.readouterr().out


@pytest.mark.integration
def test_a_device_that_rewrites_its_history_is_caught_by_the_witness(
        tmp_path: Path, witness: tuple[WitnessService, str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    service, url, witness_key = witness
    dev = Device(tmp_path / "dev")
    service.follow([dev.log_key])
    origin = dev.log_key.split("+")[0]
    out = dev.commit(f"audit witness url {url} key {witness_key}")
    assert "%AUDIT" not in out, out
    assert service.state.latest[origin].size == dev.engine.state.seq  # co-signed at once
    dev.engine.close()
    shutil.copytree(dev.root, tmp_path / "backup")  # an older copy, audit trail and all

    dev.engine = dev.open()
    for name in ("r1", "r2", "r3"):
        assert "%AUDIT" not in dev.commit(f"hostname {name}")
    witnessed = dev.engine.state.seq
    assert service.state.latest[origin].size == witnessed
    dev.engine.close()
    status, report = _verify(tmp_path, dev.root, dev.log_key, witness_key, capsys)
    assert status == 0, report
    assert f"witness    : {WITNESS}: cosignature OK" in report

    # The history rewritten: the older copy put back (it opens: its own trail agrees), and
    # other commits made on top of it.
    shutil.rmtree(dev.root)
    shutil.copytree(tmp_path / "backup", dev.root)
    dev.engine = dev.open()
    out = dev.commit("hostname evil")
    assert dev.engine.state.seq < witnessed
    assert (f"%AUDIT-1-WITNESS_REFUSED: witness {WITNESS} ({url}) refused the checkpoint of "
            f"tree size {dev.engine.state.seq}") in out
    assert f"it co-signed tree size {witnessed}, and this log has only" in out
    for name in ("e2", "e3", "e4"):
        out = dev.commit(f"hostname {name}")
    assert dev.engine.state.seq > witnessed
    assert "refused the checkpoint" in out and "HTTP 422" in out, out
    assert service.state.latest[origin].size == witnessed  # the witness never moved
    dev.engine.close()

    status, report = _verify(tmp_path, dev.root, dev.log_key, witness_key, capsys)
    assert status == 1
    assert report.splitlines()[-1].startswith(f"FAILED     : witness {WITNESS}: no valid "
                                              "cosignature on the checkpoint")
    kinds = [type(r.event) for r in service.log.read()
             if isinstance(r.event, CheckpointCosigned | CheckpointRefused)]
    assert kinds[-4:] == [CheckpointRefused] * 4  # the rewritten log's checkpoints, as evidence


@pytest.mark.integration
def test_a_witness_met_again_after_a_restart_resumes_from_what_it_cosigned(
        tmp_path: Path, witness: tuple[WitnessService, str, str]) -> None:
    service, url, witness_key = witness
    dev = Device(tmp_path / "dev")
    service.follow([dev.log_key])
    origin = dev.log_key.split("+")[0]
    dev.commit(f"audit witness url {url} key {witness_key}")
    dev.engine.close()
    dev.engine = dev.open()  # a new process: the client does not know what was co-signed
    assert "%AUDIT" not in dev.commit("hostname r9")
    assert service.state.latest[origin].size == dev.engine.state.seq
    dev.engine.close()


@pytest.mark.integration
def test_audit_checkpoint_prints_the_cosigned_checkpoint(
        tmp_path: Path, witness: tuple[WitnessService, str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    service, url, witness_key = witness
    dev = Device(tmp_path / "dev")
    service.follow([dev.log_key])
    dev.commit(f"audit witness url {url} key {witness_key}")
    dev.engine.close()
    capsys.readouterr()
    assert main(["audit", "checkpoint", str(dev.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("\u2014")] == [
        dev.log_key.split("+")[0], WITNESS]
