"""Tidying the keystore when the engine opens a data directory: the rules are
engine/keystore.py's ("Files and failures"); the file names both modules use are here.

Its own module because every open runs it, a `show` too, and in the normal case it only lists
two directories: it loads the keystore (sealing, key generation, the key effects) only to
destroy the data key of a key the log says was zeroized, after a crash or a restore (issue 12's
start-up row; tests/core/test_core_startup.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from events.durable import fsync_directory

if TYPE_CHECKING:
    from engine.keystore import MasterKey

MASTER_KEY_FILE = "master.key"
KEYSTORE_DIR = "keystore"
ORPHANED_DIR = "orphaned"
TMP_SUFFIX = ".tmp"
KEY_ID = re.compile(r"^[0-9a-f]{32}$")


def key_ids(store_dir: Path) -> list[str]:
    """Key ids whose data key (`<key_id>.dek`) is present in `store_dir`."""
    return sorted(p.stem for p in store_dir.glob("*.dek")) if store_dir.exists() else []


class Tidied(NamedTuple):
    """What `tidy_keystore` did with data keys no live key pair names. (A NamedTuple: every
    open defines it, and a frozen dataclass costs ~0.3 ms to define; issue 12.)"""

    destroyed: tuple[str, ...] = ()  # zeroized in the log: crypto-shredding finished
    orphaned: tuple[str, ...] = ()  # unknown to the log: moved to keystore/orphaned/


def tidy_keystore(data_dir: Path, live_key_ids: Iterable[str],
                  zeroized_key_ids: Callable[[], Iterable[str]]) -> Tidied:
    """Remove what interrupted writes and unfinished zeroizes left, and move orphaned data keys
    aside (see engine/keystore.py). `zeroized_key_ids` reads the key ids the log says were
    zeroized; it is called only if a data key has no live pair. Call with the log's lock held."""
    store_dir = data_dir / KEYSTORE_DIR
    for d, pattern in ((data_dir, f"{MASTER_KEY_FILE}.*{TMP_SUFFIX}"),
                       (store_dir, f"*.dek.*{TMP_SUFFIX}")):
        if d.is_dir():
            for tmp in d.glob(pattern):
                tmp.unlink(missing_ok=True)
    live = set(live_key_ids)
    unknown = [k for k in key_ids(store_dir) if KEY_ID.match(k) and k not in live]
    gone = set(zeroized_key_ids()) if unknown else set()
    destroyed = tuple(k for k in unknown if k in gone)
    if destroyed:
        from engine.keystore import DirectoryKeystore  # rare: finishing a zeroize

        store = DirectoryKeystore(store_dir, _no_master)
        for key_id in destroyed:
            store.destroy(key_id)
    orphaned = tuple(k for k in unknown if k not in gone)
    if orphaned:
        _move_aside(store_dir, orphaned)
    master = data_dir / MASTER_KEY_FILE
    if master.is_file() and master.stat().st_size == 0 and not key_ids(store_dir):
        master.unlink()
        fsync_directory(data_dir)
    return Tidied(destroyed, orphaned)


def _move_aside(store_dir: Path, key_ids: Iterable[str]) -> None:
    """Move the data keys of `key_ids` into `store_dir/orphaned/` (0700, files 0600), durably:
    renamed (never over an existing file), then both directories fsynced."""
    aside = store_dir / ORPHANED_DIR
    aside.mkdir(mode=0o700, exist_ok=True)
    os.chmod(aside, 0o700)  # whatever the umask, or an operator, made it
    for key_id in key_ids:
        source = store_dir / f"{key_id}.dek"
        os.chmod(source, 0o600)
        target, n = aside / source.name, 0
        while target.exists():  # the same key orphaned before (a keystore restored twice)
            n += 1
            target = aside / f"{source.name}.{n}"
        os.rename(source, target)
    fsync_directory(aside)
    fsync_directory(store_dir)


def _no_master(create: bool) -> MasterKey:
    raise AssertionError("destroying a data key needs no master key")
