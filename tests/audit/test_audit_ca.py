"""The built-in CA's log has an audit trail like the device's (issue 18 item 1): its audit key
(sealed in the CA directory's keystore), a checkpoint after every certificate issued or revoked
and every CRL, and the same open check, export and outsider's verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.bundle import verify_bundle
from engine.audit.checkpoint import parse_checkpoint
from engine.audit.note import parse_verifier_key, verify_note
from engine.audit.trail import read_checkpoints
from engine.ca.errors import CAError
from engine.ca.service import BuiltinCA
from engine.cli import main
from events.filelog import HEAD_FILE, iter_frames
from tests.ca.ca_support import make_ca


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ca"
    with make_ca(root, audit=True) as ca:
        key = ca.state.audit_key
        assert key is not None and key.origin.startswith("trustledger.example/ca/")
        assert (root / "keystore" / f"{key.key_id}.dek").exists()
        ca.refresh_crl(force=True)  # a CRL: a trust decision
        ca.mint_challenge()  # not one
    return root


def sizes(root: Path) -> list[int]:
    return [parse_checkpoint(n.decode().partition("\n\n")[0] + "\n").size
            for n in read_checkpoints(root / "log")]


def test_the_ca_checkpoints_its_trust_decisions(ca_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert sizes(ca_dir) == [3, 4]  # init (CAInitialized, CRLIssued) + the key; the new CRL
    assert main(["audit", "key", str(ca_dir)]) == 0
    key = parse_verifier_key(capsys.readouterr().out.strip())
    for note in read_checkpoints(ca_dir / "log"):
        verify_note(note, [key])
    out = ca_dir.parent / "ca.bundle"
    assert main(["audit", "export", str(ca_dir), "-o", str(out)]) == 0
    assert verify_bundle(out.read_bytes(), key).ok
    assert main(["audit", "checkpoint", str(ca_dir)]) == 2
    assert "is a CA's directory" in capsys.readouterr().err


def test_a_ca_that_was_not_asked_makes_no_key_but_keeps_one_it_has(tmp_path: Path,
                                                                   ca_dir: Path) -> None:
    with make_ca(tmp_path / "plain") as ca:
        assert ca.state.audit_key is None and ca.audit is None
    with BuiltinCA.open(ca_dir) as ca:  # the CLI's default for embedders: audit=False
        assert ca.audit is not None and ca.audit.size == 5
        ca.refresh_crl(force=True)
    assert sizes(ca_dir) == [3, 4, 6]


def test_a_ca_log_cut_below_its_checkpoint_refuses_to_open(ca_dir: Path) -> None:
    (seg,) = sorted((ca_dir / "log").glob("*.seg"))
    frames = list(iter_frames(seg))
    with open(seg, "r+b") as f:
        f.truncate(frames[1].end)  # init's batch and the key: the CRL of seq 4 is gone
    (ca_dir / "log" / HEAD_FILE).unlink()
    with pytest.raises(CAError, match=r"ends at seq 3, but the audit checkpoint signed at tree "
                                      r"size 4 .*event 4 is missing"):
        BuiltinCA.open(ca_dir)


def test_export_of_a_ca_without_a_checkpoint_does_not_advise_audit_checkpoint(
        ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review 13: `audit checkpoint` refuses CA directories; the CA signs its own."""
    for name in ("AUDIT", "CHECKPOINTS"):
        (ca_dir / "log" / name).unlink()
    assert main(["audit", "export", str(ca_dir), "-o", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (
        f"% The log {ca_dir / 'log'} has no checkpoint yet: the CA signs one after every "
        "certificate issued or revoked and every CRL.\n")


def test_a_serving_ca_writes_its_checkpoints_out_while_idle(
        ca_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ca serve` calls write_out_audit every half second: a burst's checkpoints reach
    log/CHECKPOINTS without waiting for the next enrollment's marker step (they waited)."""
    import events.filelog

    monkeypatch.setattr(events.filelog, "MARK_EVERY", 3600.0)  # no marker step meanwhile
    with BuiltinCA.open(ca_dir) as ca:
        ca.refresh_crl(force=True)
        ca.refresh_crl(force=True)
        signed = ca.audit.size if ca.audit is not None else 0
        assert sizes(ca_dir)[-1] < signed  # signed, not yet written out
        ca.write_out_audit()
        assert sizes(ca_dir)[-1] == signed == 7
