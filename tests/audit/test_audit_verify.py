"""`trustledger audit key|checkpoint|prove|export|verify` (issue 18 items 3 and 7): proofs that
verify against the signed checkpoint, a bundle an outsider checks with the public key alone,
tampering at every event caught at its seq, a forged checkpoint signature refused, a log cut
back or rewritten since an older checkpoint caught."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.audit.bundle import bundle_header, bundle_record, parse_bundle, verify_bundle
from engine.audit.checkpoint import parse_checkpoint
from engine.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from engine.audit.note import parse_verifier_key, sign_note, verify_note
from engine.audit.trail import read_checkpoints
from engine.cli import main
from engine.engine import Engine
from events.filelog import FileEventLog
from tests.core.engine_support import open_engine


def commit_hostname(e: Engine, name: str) -> None:
    for line in ("configure", f"hostname {name}", "commit", "end"):
        assert e.execute(line).ok, line


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit") / "dev"
    e = open_engine(root, audit=True)
    for i in range(10):
        commit_hostname(e, f"r{i}")
    assert e.execute("clock set 14:30:00 1 December 2026").ok  # after the last checkpoint
    e.close()
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def key_of(device: Path, capsys: pytest.CaptureFixture[str]) -> str:
    rc, out, _ = run(capsys, "audit", "key", str(device))
    assert rc == 0
    return out.strip()


@pytest.fixture(scope="module")
def bundle(device: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("bundle") / "b.bundle"
    assert main(["audit", "export", str(device), "-o", str(out)]) == 0
    return out.read_bytes()


def events_of(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(parse_bundle(data).events())


def rebuilt(data: bytes, events: list[tuple[bytes, bytes]]) -> bytes:
    b = parse_bundle(data)
    return bundle_header(b.key, b.note, len(events)) + b"".join(
        bundle_record(core, chain) for core, chain in events)


def rechained(events: list[tuple[bytes, bytes]], at: int) -> list[tuple[bytes, bytes]]:
    """The events with one byte of event `at` (0-based) changed and the whole hash chain
    recomputed: a rewrite that keeps the chain consistent."""
    out, prev = [], bytes(32)
    for i, (core, _) in enumerate(events):
        new = core[:-1] + bytes([core[-1] ^ 1]) if i == at else core
        prev = hashlib.sha256(prev + new).digest()
        out.append((new, prev))
    return out


# -- key, checkpoint, proofs -------------------------------------------------------------------


def test_key_is_the_verifier_key_of_the_logs_audit_key(device: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    key = parse_verifier_key(key_of(device, capsys))
    e = open_engine(device)
    assert e.state.audit_key is not None
    assert key == e.state.audit_key.verifier()
    e.close()


def test_dir_defaults_to_trustledger_data_as_help_says(
        device: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each audit command's --help says DIR defaults to $TRUSTLEDGER_DATA (as `log verify`'s
    does): it was a required argument."""
    monkeypatch.setenv("TRUSTLEDGER_DATA", str(device))
    key = key_of(device, capsys)
    assert run(capsys, "audit", "key") == (0, key + "\n", "")
    rc, out, _ = run(capsys, "audit", "prove", "--seq", "1")
    assert rc == 0 and out.startswith("c2sp.org/tlog-proof@v1\n")
    assert run(capsys, "audit", "export", "-o", str(tmp_path / "b"))[0] == 0
    assert run(capsys, "audit", "report", "-o", str(tmp_path / "r.html"))[0] == 0
    monkeypatch.setenv("TRUSTLEDGER_DATA", str(tmp_path / "none"))
    rc, _, err = run(capsys, "audit", "checkpoint")
    assert rc == 2 and err == (f"% {tmp_path / 'none'} is not a device's data directory (it "
                               f"has no {tmp_path / 'none' / 'log'}).\n")


def test_checkpoint_signs_the_log_now_and_records_it(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    e = open_engine(tmp_path / "dev", audit=True)
    commit_hostname(e, "a")
    assert e.execute("clock set 14:30:00 1 December 2026").ok
    e.close()
    rc, out, _ = run(capsys, "audit", "checkpoint", str(tmp_path / "dev"))
    assert rc == 0
    text, _ = verify_note(out.encode(), [parse_verifier_key(key_of(tmp_path / "dev",
                                                                       capsys))])
    assert parse_checkpoint(text).size == 3
    rc, again, _ = run(capsys, "audit", "checkpoint", str(tmp_path / "dev"))
    assert again == out  # nothing new: the same checkpoint (Ed25519 is deterministic)
    assert (tmp_path / "dev" / "log" / "CHECKPOINTS").read_bytes().endswith(out.encode())


def test_checkpoint_of_a_directory_that_is_no_device_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "audit", "checkpoint", str(tmp_path / "nothing"))
    assert rc == 2 and err.startswith("% ") and "is not a device's data directory" in err


def test_every_inclusion_proof_verifies_against_the_signed_root(
        device: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verifier = parse_verifier_key(key_of(device, capsys))
    with FileEventLog.open(device / "log", readonly=True) as log:
        chains = [r.hash for r in log.read()]
    for seq in range(1, 12):
        rc, out, _ = run(capsys, "audit", "prove", str(device), "--seq", str(seq))
        assert rc == 0
        head, _, note = out.partition("\n\n")
        cp = parse_checkpoint(verify_note(note.encode(), [verifier])[0])
        lines = head.split("\n")
        assert lines[:3] == ["c2sp.org/tlog-proof@v1",
                             f"extra {base64.b64encode(chains[seq - 1]).decode()}",
                             f"index {seq - 1}"]
        proof = [base64.b64decode(x) for x in lines[3:]]
        assert verify_inclusion(leaf_hash(chains[seq - 1]), seq - 1, cp.size, proof, cp.root)
        assert not verify_inclusion(leaf_hash(chains[seq % 11]), seq - 1, cp.size, proof,
                                    cp.root)
    rc, _, err = run(capsys, "audit", "prove", str(device), "--seq", "12")
    assert rc == 2 and "is not covered by the latest checkpoint (seq 1-11)" in err


def test_every_consistency_proof_verifies(device: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    verifier = parse_verifier_key(key_of(device, capsys))
    notes = {}
    for note in read_checkpoints(device / "log"):
        cp = parse_checkpoint(verify_note(note, [verifier])[0])
        notes[cp.size] = cp
    for old in range(1, 12):
        rc, out, _ = run(capsys, "audit", "prove", str(device), "--from-size", str(old))
        assert rc == 0
        head, _, note = out.partition("\n\n")
        cp = parse_checkpoint(verify_note(note.encode(), [verifier])[0])
        lines = head.split("\n")
        assert lines[0] == f"old {old}"
        proof = [base64.b64decode(x) for x in lines[1:]]
        assert verify_consistency(old, cp.size, notes[old].root, cp.root, proof)


# -- export and verify -------------------------------------------------------------------------


def test_an_export_verifies_with_the_key_alone(device: Path, bundle: bytes, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    key = key_of(device, capsys)
    path = tmp_path / "b.bundle"
    path.write_bytes(bundle)
    rc, out, _ = run(capsys, "audit", "verify", str(path), "--key", key)
    assert rc == 0
    assert out.splitlines() == [
        f"key        : {key.split('+')[0]} ({key.split('+')[1]})",
        f"checkpoint : tree size 11, root {out.split('root ')[1].split(':')[0]}: "
        "signature OK",
        "events     : 11, seq 1-11: hash chain OK",
        "tree       : root matches the checkpoint",
        "verified   : OK: every check holds",
    ]
    assert len(events_of(bundle)) == 11  # the clock set after the last checkpoint is not in it


@pytest.mark.parametrize("part", ["event", "hash"])
def test_tampering_at_every_event_is_caught_at_its_seq(device: Path, bundle: bytes,
                                                       part: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    key = parse_verifier_key(key_of(device, capsys))
    events = events_of(bundle)
    for i, (core, chain) in enumerate(events):
        changed = list(events)
        if part == "event":
            flipped = bytearray(core)
            flipped[-1] ^= 1  # the last byte of the payload
            changed[i] = (bytes(flipped), chain)
        else:
            changed[i] = (core, bytes(32))
        report = verify_bundle(rebuilt(bundle, changed), key)
        assert not report.ok
        assert report.failure is not None and report.failure.startswith(f"seq {i + 1}: ")


def test_a_history_rewritten_with_its_chain_recomputed_fails_the_signed_root(
        device: Path, bundle: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    key = parse_verifier_key(key_of(device, capsys))
    events = events_of(bundle)
    changed = rechained(events, 5)
    report = verify_bundle(rebuilt(bundle, changed), key)
    assert report.failure is not None and report.failure.startswith("tree: ")
    dropped = verify_bundle(rebuilt(bundle, events[:5] + events[6:]), key)
    assert dropped.failure == "bundle: it holds 10 events, the checkpoint covers 11"


def test_a_forged_checkpoint_signature_is_refused(device: Path, bundle: bytes,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key = parse_verifier_key(key_of(device, capsys))
    b = parse_bundle(bundle)
    text, _, sig = b.note.decode().partition("\n\n")
    raw = bytearray(base64.b64decode(sig.split()[-1]))
    raw[10] ^= 1  # a flipped bit in the signature
    forged_sig = f"{sig.rsplit(' ', 1)[0]} {base64.b64encode(raw).decode()}\n"
    forged = text + "\n\n" + forged_sig
    report = verify_bundle(bundle_header(b.key, forged.encode(), b.count) + bytes(b.body), key)
    assert report.failure is not None
    assert report.failure.startswith("checkpoint: the signature of ") and "does not verify" \
        in report.failure
    # Signed by another key under the log's name: not the given key, refused.
    other = sign_note(text + "\n", key.name, Ed25519PrivateKey.generate())
    report = verify_bundle(bundle_header(b.key, other, b.count) + bytes(b.body), key)
    assert report.failure == "checkpoint: the note is not signed by any of the given keys"


def test_an_older_checkpoint_is_checked_for_consistency(device: Path, bundle: bytes,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    key = parse_verifier_key(key_of(device, capsys))
    older = read_checkpoints(device / "log")[4]  # tree size 5
    report = verify_bundle(bundle, key, older)
    assert report.ok, report.failure
    assert ("consistency", "tree size 5 is a prefix of tree size 11") in report.lines
    # The log as it is now was rewritten at seq 3 (chain recomputed), the old checkpoint kept.
    events = events_of(bundle)
    changed = rechained(events, 2)
    report = verify_bundle(rebuilt(bundle, changed), key, older)
    assert report.failure is not None and report.failure.startswith("seq 5: the tree of seq 1-5")
    # A bundle smaller than the older checkpoint: the log was cut back.
    b = parse_bundle(bundle)
    small_note = read_checkpoints(device / "log")[2]  # tree size 3
    small = bundle_header(b.key, small_note, 3) + b"".join(
        bundle_record(c, h) for c, h in events[:3])
    report = verify_bundle(small, key, older)
    assert report.failure == ("older checkpoint: it covers tree size 5, this one only 3: the "
                              "log was cut back (events 4-5 are gone)")


def test_verify_exit_status_and_refusals(device: Path, bundle: bytes, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    key = key_of(device, capsys)
    path = tmp_path / "b.bundle"
    data = bytearray(bundle)
    data[-40] ^= 1  # inside the last event's core
    path.write_bytes(bytes(data))
    rc, out, _ = run(capsys, "audit", "verify", str(path), "--key", key)
    assert rc == 1 and out.splitlines()[-1].startswith("FAILED     : seq 11: ")
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(key + "\n")
    path.write_bytes(bundle)
    assert run(capsys, "audit", "verify", str(path), "--key", str(keyfile))[0] == 0
    rc, _, err = run(capsys, "audit", "verify", str(path), "--key", "nonsense")
    assert rc == 2 and err.startswith("% --key is not an audit key")
    rc, _, err = run(capsys, "audit", "verify", str(tmp_path / "none"), "--key", key)
    assert rc == 2 and err.startswith("% Bundle ") and "no such file" in err
    path.write_bytes(b"not a bundle")
    rc, out, _ = run(capsys, "audit", "verify", str(path), "--key", key)
    assert rc == 1 and "bundle: not a trustledger audit bundle" in out


def test_export_until_takes_the_newest_checkpoint_at_or_before(
        device: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    rc, text, _ = run(capsys, "audit", "export", str(device), "--until", "7", "-o", str(out))
    assert rc == 0 and text == f"seq 1-7 and the checkpoint of tree size 7 written to {out}\n"
    key = parse_verifier_key(key_of(device, capsys))
    assert verify_bundle(out.read_bytes(), key).ok
    rc, _, err = run(capsys, "audit", "export", str(device), "--until", "1970-01-01T00:00:00Z",
                     "-o", str(out))
    assert rc == 2 and "No recorded checkpoint covers the log up to seq 0" in err


def test_export_until_refuses_what_is_no_seq_or_beyond_the_log(
        device: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review 17: a `%` line of its own (not `trustledger replay:`), and a seq past the log's
    end is said, not exported as if it were the head."""
    out = tmp_path / "b"
    assert run(capsys, "audit", "export", str(device), "--until", "-1", "-o", str(out)) == (
        2, "", "% --until '-1' is neither a seq nor an ISO time.\n")
    with FileEventLog.open(device / "log", readonly=True) as log:
        head = log.head[0]
    assert run(capsys, "audit", "export", str(device), "--until", "99", "-o", str(out)) == (
        2, "", f"% The log ends at seq {head}: --until 99 is beyond it.\n")
    assert not out.exists()


def test_the_bundle_records_are_length_prefixed_cores_and_hashes(bundle: bytes) -> None:
    b = parse_bundle(bundle)
    (n,) = struct.unpack_from(">I", b.body, 0)
    core = bytes(b.body[4:4 + n])
    assert core[0] == 0x98 and core[1] == 1  # [seq=1, ...]


def test_export_replaces_a_file_through_its_link_and_never_a_fifo(
        device: Path, bundle: bytes, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review 6: `-o` is written whole through a temporary file only when it names a regular
    file (a link's target, the link kept); a FIFO (or a device) is written to as it is."""
    import os
    import threading

    target = tmp_path / "bundles" / "latest"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert run(capsys, "audit", "export", str(device), "-o", str(link))[0] == 0
    assert link.is_symlink() and target.read_bytes() == bundle
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest"]  # no temporary left

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert run(capsys, "audit", "export", str(device), "-o", str(fifo))[0] == 0
    reader.join(10)
    assert got == [bundle]
    assert fifo.is_fifo()

    status, _, err = run(capsys, "audit", "export", str(device), "-o", str(tmp_path))
    assert (status, err) == (2, f"% {tmp_path} is a directory.\n")
