"""Data keys the log does not name as a live pair, at open (engine/keystore.py, "Files and
failures"): the log says zeroized -> destroyed (crypto-shredding finishes after a crash);
anything else -> moved to keystore/orphaned/, never deleted (a log restored from an older
backup must not shred the keys made after it)."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine, keytidy
from engine.keys import KeyAlgorithm
from engine.keystore import DirectoryKeystore, keystore_of

Opener = Callable[..., Engine]


def _generate(e: Engine, label: str, curve: str = "nistp256") -> str:
    r = e.execute(f"crypto key generate ecdsa {curve} {label}", answers=["yes"])
    assert r.ok, r.output
    [pair] = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, label)
    return pair.key_id


def _copy(src: Path, dst: Path, *names: str) -> None:
    for name in names:
        shutil.rmtree(dst / name, ignore_errors=True)
        shutil.copytree(src / name, dst / name)


def test_a_log_restored_from_an_older_backup_moves_newer_keys_aside(
        open_disk: Opener, data_dir: Path, tmp_path: Path) -> None:
    e = open_disk()
    _generate(e, "k1")
    e.close()
    _copy(data_dir, tmp_path / "backup", "log", "snapshots")  # log/ with its head marker
    e = open_disk()
    k2 = _generate(e, "k2")
    e.close()
    _copy(data_dir, tmp_path / "newer", "log", "snapshots")
    _copy(tmp_path / "backup", data_dir, "log", "snapshots")  # the operator restores the log

    e = open_disk()
    aside = data_dir / "keystore" / "orphaned"
    assert e.notices == [f"%KEYS-4-ORPHANED: moved 1 data key(s) the log does not know to "
                         f"{aside} (a key generation that did not complete, or a log restored "
                         "from an older backup)"]
    assert not (data_dir / "keystore" / f"{k2}.dek").exists()
    assert stat.S_IMODE(aside.stat().st_mode) == 0o700
    assert stat.S_IMODE((aside / f"{k2}.dek").stat().st_mode) == 0o600
    assert e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k1")  # the restored log's key works on
    e.close()

    # Restoring the newer log and moving the data key back brings k2 back, whole.
    _copy(tmp_path / "newer", data_dir, "log", "snapshots")
    (aside / f"{k2}.dek").rename(data_dir / "keystore" / f"{k2}.dek")
    e = open_disk()
    assert e.notices == []
    [pair] = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k2")
    assert keystore_of(e.ports).private_key(pair.sealed) is not None
    e.close()


@pytest.mark.parametrize("command", ["crypto key zeroize ecdsa k1",
                                     "crypto key generate ecdsa nistp256 k1"],
                         ids=["zeroize", "replacement"])
def test_an_unfinished_zeroize_is_finished_at_open_and_nothing_else_is_destroyed(
        open_disk: Opener, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        command: str) -> None:
    """The log says the key is gone but the process could not destroy its data key (a crash
    between the append and the destruction): the next open destroys it. An orphan beside it
    is only moved aside, and the notices count each kind once."""
    e = open_disk()
    k1, k2 = _generate(e, "k1"), _generate(e, "k2", "nistp384")
    stray = "ab" * 16
    (data_dir / "keystore" / f"{stray}.dek").write_bytes(b"a wrapped data key, no event")
    with monkeypatch.context() as m:
        m.setattr(DirectoryKeystore, "destroy", _destroy_fails)
        r = e.execute(command, answers=["yes"])
    assert r.ok, r.output
    assert "could not be completed" in r.output
    e.close()
    assert (data_dir / "keystore" / f"{k1}.dek").exists()

    e = open_disk()
    store = data_dir / "keystore"
    assert not (store / f"{k1}.dek").exists() and (store / f"{k1}.zeroized").exists()
    assert not (store / "orphaned" / f"{k1}.dek").exists()
    assert (store / f"{k2}.dek").exists()
    assert (store / "orphaned" / f"{stray}.dek").read_bytes() == b"a wrapped data key, no event"
    assert e.notices == [
        "%KEYS-4-TIDY: destroyed 1 data key(s) of keys the log says were zeroized (an "
        "unfinished zeroize).",
        f"%KEYS-4-ORPHANED: moved 1 data key(s) the log does not know to {store / 'orphaned'} "
        "(a key generation that did not complete, or a log restored from an older backup)"]
    e.close()


def _destroy_fails(self: DirectoryKeystore, key_id: str) -> None:
    raise OSError(5, "Input/output error")


def test_the_move_aside_is_durable_and_never_replaces_a_file(
        open_disk: Opener, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renamed, then both directories fsynced; the same key orphaned twice (a keystore
    restored again) keeps both copies."""
    open_disk().close()
    store = data_dir / "keystore"
    store.mkdir(exist_ok=True)
    stray = store / f"{'cd' * 16}.dek"
    stray.write_bytes(b"first")
    synced: list[Path] = []
    real = keytidy.fsync_directory

    def recording(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(keytidy, "fsync_directory", recording)  # the open tidies
    open_disk().close()
    assert synced[-2:] == [store / "orphaned", store]
    stray.write_bytes(b"second")
    open_disk().close()
    assert (store / "orphaned" / stray.name).read_bytes() == b"first"
    assert (store / "orphaned" / f"{stray.name}.1").read_bytes() == b"second"
    assert not stray.exists()
