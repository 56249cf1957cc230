"""A device configured with a witness (`audit witness url URL key KEY`) gets every checkpoint
co-signed over HTTP, `audit verify --witness-key` requires the cosignature, and a device
whose history is rewritten (its data directory restored from an older copy, its own audit
trail with it, so that its own open check passes) is caught by the witness."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.adapters.witness_http import serve_witness
from engine.audit.merkle import CompactRange, MerkleTree, leaf_hash
from engine.audit.witness_client import WitnessReply, consistency_from
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
        return "".join(out) + self.engine.witnesses_settled()  # the asynchronous messages

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


class _StalledWitness:
    """A witness transport that answers only once the test releases it (60 s at most: a
    guard, not a bound; 5 s raced a busy machine's commit), and notes whether the command
    that led to the post had returned by then."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.command_returned = False
        self.answered: list[bool] = []

    def post(self, url: str, body: bytes) -> WitnessReply:
        self.release.wait(60)
        self.answered.append(self.command_returned)
        return WitnessReply(503, "text/plain", b"busy")


def test_a_stalled_witness_never_holds_up_a_command(tmp_path: Path) -> None:
    """Review 4: the checkpoint of a trust decision is signed before the command returns;
    the witness's round-trip runs behind it, its answer is an asynchronous message."""
    key = init_witness(tmp_path / "w", WITNESS).key_string()
    dev = Device(tmp_path / "dev")
    stalled = _StalledWitness()
    dev.engine.ports.witness = stalled
    try:
        dev.engine.execute("configure")
        dev.engine.execute(f"audit witness url http://127.0.0.1:9 key {key}")
        out = dev.engine.execute("commit").output
        stalled.command_returned = True
        trail = dev.engine.audit
        assert trail is not None and trail.latest is not None
        assert trail.latest.checkpoint.size == dev.engine.state.seq  # signed synchronously
        assert "%AUDIT" not in out
        stalled.release.set()
        said = dev.engine.witnesses_settled(10)
        assert stalled.answered == [True]
        assert said.startswith(f"%AUDIT-4-WITNESS: witness {WITNESS} (http://127.0.0.1:9) did "
                               "not co-sign the checkpoint")
        assert "HTTP 503: busy" in said
    finally:
        stalled.release.set()
        dev.engine.close()


class _Answering:
    def __init__(self, status: int, body: bytes) -> None:
        self.reply = WitnessReply(status, "text/plain", body)

    def post(self, url: str, body: bytes) -> WitnessReply:
        return self.reply


@pytest.mark.parametrize(("status", "body", "said"), [
    (404, b"unknown log origin", "%AUDIT-4-WITNESS: witness witness.example/w1 "
     "(http://127.0.0.1:9) did not co-sign the checkpoint of tree size 2: "),
    (404, b"404 page not found", "(the witness does not follow this log, or the URL is not its "
     "submission prefix)"),
    (422, b"bad proof", "%AUDIT-1-WITNESS_REFUSED: witness witness.example/w1 "
     "(http://127.0.0.1:9) refused the checkpoint of tree size 2 (root "),
])
def test_only_a_witness_that_disputes_the_log_is_an_alert(
        tmp_path: Path, status: int, body: bytes, said: str) -> None:
    """Review 12: a 404 (origin not followed, wrong prefix) or 403 is a warning; only 400, 409
    and 422 (the log is not the one the witness saw grow) are refusals."""
    key = init_witness(tmp_path / "w", WITNESS).key_string()
    dev = Device(tmp_path / "dev")
    dev.engine.ports.witness = _Answering(status, body)
    try:
        out = dev.commit(f"audit witness url http://127.0.0.1:9 key {key}")
        assert said in out, out
        assert f"HTTP {status}: {body.decode()}" in out
        assert ("%AUDIT-1" in out) is (status == 422)
    finally:
        dev.engine.close()


@pytest.mark.integration
def test_an_https_url_to_a_plain_witness_says_tls_failed(
        tmp_path: Path, witness: tuple[WitnessService, str, str]) -> None:
    """Review 12: not a raw `[SSL: WRONG_VERSION_NUMBER]`."""
    _, url, witness_key = witness
    dev = Device(tmp_path / "dev")
    try:
        https = url.replace("http://", "https://")
        out = dev.commit(f"audit witness url {https} key {witness_key}")
        assert f"%AUDIT-4-WITNESS: witness {WITNESS} ({https}) did not co-sign" in out, out
        assert f"{https}/add-checkpoint: the TLS handshake failed (WRONG_VERSION_NUMBER): no " \
               "HTTPS server with a trusted certificate there" in out, out
    finally:
        dev.engine.close()


def test_the_shell_prints_a_witness_answer_as_an_asynchronous_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review 4: the interactive shell's scheduler tick prints what the witness answered."""
    from engine.frontends import Scheduler

    key = init_witness(tmp_path / "w", WITNESS).key_string()
    dev = Device(tmp_path / "dev")
    dev.engine.ports.witness = _Answering(503, b"busy")
    scheduler = Scheduler(dev.engine)
    try:
        for line in ("configure", f"audit witness url http://127.0.0.1:9 key {key}", "commit",
                     "end"):
            assert "%AUDIT" not in scheduler.execute(line).output
        assert dev.engine._cosigner is not None and dev.engine._cosigner.wait(10)
        capsys.readouterr()
        scheduler.tick()
        printed = capsys.readouterr().out
        assert "%AUDIT-4-WITNESS: witness witness.example/w1 (http://127.0.0.1:9) did not" in \
            printed and "HTTP 503: busy" in printed
    finally:
        dev.engine.close()


@pytest.mark.integration
def test_a_trickling_witness_is_cut_off_with_one_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each byte comes well inside the 5 s read timeout; the exchange's deadline ends it. The
    socket read it cuts used to say `timed out` and a cut between reads `...deadline ...
    passed`: whichever came first. Now it is always the deadline's message."""
    import socket
    import time

    from engine.audit import witness_client
    from engine.errors import PeerError, PeerReason
    from tests.support.peer_support import tcp_server

    def trickle(conn: socket.socket) -> None:
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    monkeypatch.setattr(witness_client, "DEADLINE", 1.0)
    with tcp_server(trickle, threaded=True) as port:
        url = f"http://127.0.0.1:{port}/add-checkpoint"
        with pytest.raises(PeerError) as caught:
            witness_client.HttpxWitnessTransport().post(url, b"old 0\n")
    assert caught.value.reason is PeerReason.TIMED_OUT
    assert caught.value.text == (f"{url}: no complete answer within the 1 s deadline of the "
                                 "exchange")
