"""Fixtures for the key tests: one pool of keys generated per session, handed out by KeyPool.

RSA generation is slow; the pool makes each test's "generation" instant and reproducible within
the session. Tests answer 1024 to the modulus question unless they test the 2048 default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from engine import Engine
from engine.keys import PrivateKey
from engine.keystore import MASTER_KEY_ENV, KeyPool
from engine.ports import FakeClock


@pytest.fixture(scope="session")
def pregenerated() -> list[PrivateKey]:
    keys: list[PrivateKey] = [rsa.generate_private_key(65537, 1024) for _ in range(8)]
    keys.append(rsa.generate_private_key(65537, 2048))
    for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
        keys += [ec.generate_private_key(curve) for _ in range(2)]
    keys += [ed25519.Ed25519PrivateKey.generate() for _ in range(2)]
    return keys


@pytest.fixture
def pool(pregenerated: list[PrivateKey]) -> KeyPool:
    return KeyPool(pregenerated)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(pool: KeyPool, clock: FakeClock) -> Engine:
    e = Engine.in_memory(clock=clock)
    e.ports.keygen = pool
    return e


@pytest.fixture(autouse=True)
def _no_master_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "device"


@pytest.fixture
def open_disk(data_dir: Path, pool: KeyPool, clock: FakeClock
              ) -> Iterator[Callable[..., Engine]]:
    """`open_disk()` opens (or reopens) the engine on `data_dir`, with the pool as generator."""
    opened: list[Engine] = []

    def opener(**kw: Any) -> Engine:
        e = Engine.open(data_dir, clock=clock, user="tester", **kw)
        e.ports.keygen = pool
        opened.append(e)
        return e

    yield opener
    for e in opened:
        e.store.close()
