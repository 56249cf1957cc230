"""The witness (C2SP tlog-witness add-checkpoint, tlog-cosignature/v1): every refusal the spec
names, with its status; co-signatures that verify; the latest checkpoint kept across restarts;
refusals of signed checkpoints kept as evidence; and the HTTP service on loopback."""

from __future__ import annotations

import struct
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.cosignature import (
    cosign,
    cosignature_verifier,
    cosigned_message,
    parse_cosignature_key,
)
from engine.audit.note import NoteError, parse_note, sign_note, verify_note
from engine.audit.witness import parse_add_checkpoint, request_body
from engine.audit.witness_service import WitnessService, init_witness, witness_key
from engine.cli import main
from engine.ports import FakeClock
from events.witness import CheckpointCosigned, CheckpointRefused
from tests.audit.witness_support import FakeLog


@pytest.fixture
def witness_dir(tmp_path: Path) -> Path:
    d = tmp_path / "witness"
    init_witness(d, "witness.example/w1")
    return d


@pytest.fixture
def log() -> FakeLog:
    return FakeLog().grow(10)


def open_witness(d: Path, *follow: FakeLog) -> WitnessService:
    w = WitnessService(d, FakeClock())
    w.follow([f.verifier_key for f in follow])
    return w


def cosigned(w: WitnessService, log: FakeLog, old: int, size: int | None = None) -> bytes:
    decision = w.add_checkpoint(log.request(old, size))
    assert decision.status == HTTPStatus.OK, decision.reason
    return decision.body


# -- the cosignature format ------------------------------------------------------------------------


def test_a_cosignature_is_the_c2sp_v1_message_signed_with_a_timestamp() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    line = cosign(body, "witness.example.com/w1", key, 1679315147)
    assert cosigned_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    _, [sig] = parse_note(body.encode() + b"\n" + line.encode())
    verifier = cosignature_verifier("witness.example.com/w1", key.public_key())
    assert sig.key_id == verifier.key_id  # SHA-256(name || "\n" || 0x04 || key)[:4]
    assert struct.unpack(">Q", sig.signature[:8])[0] == 1679315147
    key.public_key().verify(sig.signature[8:], cosigned_message(body, 1679315147))
    assert verify_note(body.encode() + b"\n" + line.encode(), [verifier])[1] == [
        "witness.example.com/w1"]
    assert parse_cosignature_key(verifier.key_string()) == verifier


def test_a_cosignature_over_another_time_or_body_does_not_verify() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = cosignature_verifier("w", key.public_key())
    body = "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    _, [sig] = parse_note(body.encode() + b"\n" + cosign(body, "w", key, 7).encode())
    assert verifier.verify(body.encode(), sig.signature)
    assert not verifier.verify(body.replace("1", "2", 1).encode(), sig.signature)
    assert not verifier.verify(body.encode(), struct.pack(">Q", 8) + sig.signature[8:])


def test_a_log_key_is_not_a_witness_key(log: FakeLog) -> None:
    with pytest.raises(NoteError, match="0x04"):
        parse_cosignature_key(log.verifier_key)


# -- the request body ------------------------------------------------------------------------------


def test_the_request_body_round_trips_and_bad_ones_are_refused(log: FakeLog) -> None:
    body = log.request(4)
    req = parse_add_checkpoint(body)
    assert req.old_size == 4 and req.note == log.note() and len(req.proof) >= 1
    assert request_body(req.old_size, req.proof, req.note) == body
    for bad in (b"old 04\n\n" + log.note(), b"old x\n\n" + log.note(), log.note(),
                b"old 1\nnot base64!\n\n" + log.note(),
                b"old 1\n" + b"AAAA\n" * 64 + b"\n" + log.note()):
        with pytest.raises(ValueError):
            parse_add_checkpoint(bad)


# -- the witness's rules ---------------------------------------------------------------------------


def test_first_checkpoint_then_a_consistent_one_are_cosigned(witness_dir: Path,
                                                              log: FakeLog) -> None:
    with open_witness(witness_dir, log) as w:
        line = cosigned(w, log, 0)
        log.grow(7)
        line2 = cosigned(w, log, 10)
    verifier = witness_key(witness_dir)
    for size, ln in ((10, line), (17, line2)):
        note = log.note(size) + ln
        assert verify_note(note, [verifier])[1] == ["witness.example/w1"]


@pytest.mark.parametrize(("make", "status", "evidence"), [
    # the log went back: old size above the checkpoint's (400), or it says it never had more
    (lambda log: log.request(10, 6), HTTPStatus.BAD_REQUEST, True),
    (lambda log: log.request(0, 6), HTTPStatus.CONFLICT, True),
    # a fork at the size co-signed, and a rewritten history presented as an extension
    (lambda log: log.forked(4, 10).request(10), HTTPStatus.CONFLICT, True),
    (lambda log: log.forked(4, 14).request(10), HTTPStatus.UNPROCESSABLE_ENTITY, True),
    # an old size the witness never co-signed: 409 with the size it did
    (lambda log: log.grow(3).request(5), HTTPStatus.CONFLICT, False),
])
def test_rollbacks_forks_and_inconsistent_proofs_are_refused_and_kept(
        witness_dir: Path, log: FakeLog, make: object, status: HTTPStatus,
        evidence: bool) -> None:
    with open_witness(witness_dir, log) as w:
        cosigned(w, log, 0)
        assert callable(make)
        decision = w.add_checkpoint(make(log))
        assert decision.status == status, decision.reason
        assert w.state.latest[log.origin].size == 10  # nothing moved
        kept = [r.event for r in w.log.read() if isinstance(r.event, CheckpointRefused)]
    assert [(e.status, e.origin) for e in kept] == ([(int(status), log.origin)]
                                                   if evidence else [])


def test_a_conflict_answers_the_size_cosigned_as_text_x_tlog_size(witness_dir: Path,
                                                                  log: FakeLog) -> None:
    with open_witness(witness_dir, log) as w:
        cosigned(w, log, 0)
        decision = w.add_checkpoint(log.grow(2).request(0))
        assert (decision.status, decision.content_type, decision.body) == (
            HTTPStatus.CONFLICT, "text/x.tlog.size", b"10\n")
        cosigned(w, log, 10)  # the log retries from the size the witness gave


def test_unknown_origins_and_bad_signatures(witness_dir: Path, log: FakeLog) -> None:
    stranger = FakeLog(origin="trustledger.example/other/00").grow(3)
    impostor = FakeLog(key=Ed25519PrivateKey.generate()).grow(10)  # same origin, other key
    with open_witness(witness_dir, log) as w:
        assert w.add_checkpoint(stranger.request(0)).status == HTTPStatus.NOT_FOUND
        assert w.add_checkpoint(impostor.request(0)).status == HTTPStatus.FORBIDDEN
        # a known key's signature that does not verify: the text was changed after signing
        note = log.note().replace(b"\n10\n", b"\n11\n")
        assert w.add_checkpoint(request_body(0, [], note)).status == HTTPStatus.FORBIDDEN
        assert w.add_checkpoint(b"old 0\n\ngarbage").status == HTTPStatus.BAD_REQUEST
        assert log.origin not in w.state.latest


def test_the_latest_checkpoint_survives_a_restart(witness_dir: Path, log: FakeLog) -> None:
    with open_witness(witness_dir, log) as w:
        cosigned(w, log, 0)
    with WitnessService(witness_dir, FakeClock()) as again:
        assert again.state.latest[log.origin].size == 10
        assert again.add_checkpoint(log.forked(2, 12).request(10)).status == \
            HTTPStatus.UNPROCESSABLE_ENTITY
        assert [type(r.event) for r in again.log.read()][-2:] == [CheckpointCosigned,
                                                                   CheckpointRefused]


def test_a_checkpoint_signed_by_two_keys_is_cosigned_if_one_is_trusted(
        witness_dir: Path, log: FakeLog) -> None:
    other = Ed25519PrivateKey.generate()
    text = log.checkpoint().format()
    note = sign_note(text, log.origin, log.key)
    extra = sign_note(text, "someone.else/key", other).split(b"\n\n", 1)[1]
    with open_witness(witness_dir, log) as w:
        decision = w.add_checkpoint(request_body(0, [], note + extra))
    assert decision.status == HTTPStatus.OK, decision.reason


# -- the command line and HTTP ---------------------------------------------------------------------


def test_init_refuses_to_replace_a_key(witness_dir: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert main(["audit", "witness", "init", str(witness_dir)]) == 2
    assert "already holds a witness key" in capsys.readouterr().err
    assert main(["audit", "witness", "key", str(witness_dir)]) == 0
    assert capsys.readouterr().out.strip() == witness_key(witness_dir).key_string()


def test_follow_refuses_a_malformed_key(witness_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "witness", "follow", str(witness_dir), "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("% Log key: malformed key")


@pytest.mark.integration
def test_add_checkpoint_over_http(witness_dir: Path, log: FakeLog) -> None:
    from engine.adapters.witness_http import serve_witness

    seen: list[str] = []
    with open_witness(witness_dir, log) as w:
        server = serve_witness(w, report=lambda d: seen.append(d.reason or "ok"))
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                first = http.post("/add-checkpoint", content=log.request(0))
                assert first.status_code == 200
                assert first.text.startswith("\u2014 witness.example/w1 ")
                again = http.post("/add-checkpoint", content=log.grow(1).request(0))
                assert (again.status_code, again.headers["content-type"], again.text) == (
                    409, "text/x.tlog.size", "10\n")
                assert http.get("/add-checkpoint").status_code == 405
                assert http.post("/elsewhere", content=b"").status_code == 404
        finally:
            server.stop()
    assert seen[0] == "ok" and "not 10" in seen[1]


def test_the_witness_log_verifies_like_any_log(witness_dir: Path, log: FakeLog,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with open_witness(witness_dir, log) as w:
        cosigned(w, log, 0)
        w.add_checkpoint(log.forked(3, 10).request(10))
    assert main(["log", "verify", str(witness_dir)]) == 0
    assert "events    : 3\n" in capsys.readouterr().out  # followed, co-signed, refused


@pytest.mark.integration
def test_serve_from_the_command_line_cosigns_and_stops_on_sigterm(witness_dir: Path,
                                                                    log: FakeLog) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "audit", "witness", "serve", str(witness_dir),
         "--port", "0", "--follow", log.verifier_key],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"following {log.origin}\n"
        banner = proc.stdout.readline()
        assert banner.startswith("witness witness.example/w1 serving http://127.0.0.1:")
        url = banner.split()[-1]
        assert httpx.post(url, content=log.request(0), timeout=10).status_code == 200
        assert proc.stdout.readline() == f"cosigned {log.origin} size 10\n"
        assert httpx.post(url, content=log.forked(1, 10).request(10),
                          timeout=10).status_code == 409
        assert proc.stdout.readline().startswith(f"refused 409 {log.origin} size 10: a "
                                                 "different root at size 10")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    with WitnessService(witness_dir, FakeClock()) as again:
        assert again.state.latest[log.origin].size == 10


def test_a_witness_directory_is_private_and_no_device_command_takes_it(
        tmp_path: Path, log: FakeLog, capsys: pytest.CaptureFixture[str]) -> None:
    """Review 14: made 0700 like a device's; `audit checkpoint`, `audit key` and `exec` say
    it is a witness's (and create nothing in it); a port out of range is a usage error."""
    import os

    old = os.umask(0o022)
    try:
        d = tmp_path / "w3"
        init_witness(d, "witness.example/w3")
    finally:
        os.umask(old)
    assert (d.stat().st_mode & 0o777, (d / "log").stat().st_mode & 0o777) == (0o700, 0o700)
    capsys.readouterr()
    assert main(["audit", "key", str(d)]) == 2  # a witness that has recorded nothing yet
    assert "is a witness's: it has no audit key" in capsys.readouterr().err
    with WitnessService(d) as service:
        service.follow([log.verifier_key])
    before = sorted(p.name for p in d.iterdir())
    capsys.readouterr()

    assert main(["audit", "checkpoint", str(d)]) == 2
    assert capsys.readouterr().err == (f"% {d} is a witness's directory: a witness signs no "
                                       "checkpoint of its own log.\n")
    assert main(["audit", "key", str(d)]) == 2
    assert "is a witness's: it has no audit key (`trustledger audit witness key DIR`" in \
        capsys.readouterr().err
    script = tmp_path / "script"
    script.write_text("show clock\n")
    assert main(["exec", "--data", str(d), "-f", str(script)]) == 2
    assert capsys.readouterr().err == (f"% {d} is a witness's directory, not a device's: "
                                       "`trustledger audit witness` commands use it.\n")
    assert sorted(p.name for p in d.iterdir()) == before  # no snapshots/, no keystore

    with pytest.raises(SystemExit) as stopped:
        main(["audit", "witness", "serve", str(d), "--port", "99999"])
    assert stopped.value.code == 2
    assert "'99999' is not a port (0-65535)" in capsys.readouterr().err
