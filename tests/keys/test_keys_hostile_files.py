"""The keystore's files replaced by what they should not be: master.key a directory or a
FIFO (a read that would block for ever), a data key file a directory. Each is one `%` line
naming the file, the command changes nothing, and nothing hangs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import Engine
from engine.keys import KeyAlgorithm
from engine.keystore import MASTER_KEY_ENV, MASTER_KEY_FILE, KeyPool
from engine.ports import FakeClock


@pytest.fixture(autouse=True)
def _no_master_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


def _device(root: Path, pool: KeyPool, *, audit: bool = False) -> Engine:
    e = Engine.open(root, clock=FakeClock(), user="tester", audit=audit)
    e.ports.keygen = pool
    return e


def _refused(e: Engine, line: str) -> str:
    head = e.store.head
    r = e.execute(line)
    assert not r.ok and r.events == [] and e.store.head == head, r.output
    last = r.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("% "), r.output
    return last


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_master_key_that_is_not_a_file(tmp_path: Path, pool: KeyPool, kind: str) -> None:
    root = tmp_path / "device"
    e = _device(root, pool)
    assert e.execute("crypto key generate ecdsa nistp256 k1").ok
    e.close()
    path = root / MASTER_KEY_FILE
    path.unlink()
    if kind == "directory":
        path.mkdir(mode=0o700)
    else:
        os.mkfifo(path, 0o600)
    e = _device(root, pool)
    last = _refused(e, "crypto key generate ecdsa nistp256 k2")
    assert last == f"% {path} is not a regular file; it must hold the master key.", last
    e.close()


def _data_key_files(root: Path, e: Engine) -> tuple[Path, list[Path]]:
    """(the .dek of key pair k1, every other .dek: the audit key's)."""
    (pair,) = e.state.keys.pairs_of(KeyAlgorithm.ECDSA, "k1")
    mine = root / "keystore" / f"{pair.key_id}.dek"
    return mine, [p for p in (root / "keystore").glob("*.dek") if p != mine]


def test_a_data_key_file_that_is_a_directory(tmp_path: Path, pool: KeyPool) -> None:
    """k1's data key file is a directory: the key is not held, and zeroizing it is recorded
    with the warning a failed destruction gets (finished at the next open)."""
    root = tmp_path / "device"
    e = _device(root, pool)
    assert e.execute("crypto key generate ecdsa nistp256 k1").ok
    mine, _ = _data_key_files(root, e)
    e.close()
    mine.unlink()
    mine.mkdir(mode=0o700)
    e = _device(root, pool)
    for line in ("configure", "crypto ca trustpoint tp", "rsakeypair k1", "commit", "end"):
        assert e.execute(line).ok, line
    r = e.execute("crypto key zeroize ecdsa k1", answers=["yes"])
    assert r.ok and [type(x.event).__name__ for x in r.events] == ["KeyPairZeroized"]
    assert "could not be completed (Is a directory)" in r.output, r.output
    assert e.execute("show clock").ok
    assert e.ports.keystore is not None and not e.ports.keystore.holds(mine.stem)
    e.close()


def test_the_audit_keys_data_key_a_directory_fails_no_acknowledged_commit(
        tmp_path: Path, pool: KeyPool) -> None:
    """The checkpoint signer cannot read the audit key: the commit it follows was appended,
    so the operator must not read a failure (the CLI printed '% Is a directory' and ended
    the session after the commit was durable); a warning, and the session goes on."""
    root = tmp_path / "device"
    e = _device(root, pool, audit=True)  # as `trustledger shell|exec` open it
    assert e.execute("crypto key generate ecdsa nistp256 k1").ok
    _, audit = _data_key_files(root, e)
    e.close()
    assert audit, "no audit key data key was written"
    for path in audit:
        path.unlink()
        path.mkdir(mode=0o700)
    e = _device(root, pool, audit=True)
    for line in ("configure", "hostname r2", "commit", "end", "show clock"):
        r = e.execute(line)
        assert r.ok, (line, r.output)
    e.close()
    e = _device(root, pool)
    assert "hostname r2" in e.execute("show running-config").output
    e.close()
