"""Fixtures for the trustpoint tests: a fake clock shared by device and CA, a device engine on
disk with pre-generated keys, and the built-in CA served to it in process (or, where a test
asks, on an ephemeral loopback port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.keystore import MASTER_KEY_ENV
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport
from tests.support.crl_support import InProcessCrlFetcher
from tests.trustpoint.tp_support import CAFactory, open_device


@pytest.fixture(autouse=True)
def _no_master_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    return tmp_path / "device"


@pytest.fixture
def scep_network() -> InProcessTransport:
    """The devices' SCEP transport: `ca_factory`'s CAs in process, anything else over HTTP."""
    return InProcessTransport(fallback=HttpxTransport())


@pytest.fixture
def open_engine(device_dir: Path, clock: FakeClock,
                scep_network: InProcessTransport) -> Iterator[Callable[..., Engine]]:
    """`open_engine()` opens (or reopens) the device on `device_dir`; all are closed at the end."""
    opened: list[Engine] = []

    def opener(**kw: Any) -> Engine:
        e = open_device(device_dir, clock, **kw)
        e.ports.scep = scep_network
        e.ports.crls = InProcessCrlFetcher(scep_network)  # CDPs: in process or loopback only
        opened.append(e)
        return e

    yield opener
    for e in opened:
        e.store.close()


@pytest.fixture
def device(open_engine: Callable[..., Engine]) -> Engine:
    return open_engine()


@pytest.fixture
def ca_factory(tmp_path: Path, clock: FakeClock,
               scep_network: InProcessTransport) -> Iterator[CAFactory]:
    f = CAFactory(tmp_path, clock, scep_network)
    yield f
    f.close()


@pytest.fixture
def crafting(tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    """A real CA whose SCEP replies a test can spoil (test_tp_bad_peers.CraftingCA), for
    the bad-peer and hostile-peer tests alike."""
    from tests.trustpoint.test_tp_bad_peers import CraftingCA
    from tests.trustpoint.tp_support import make_ca

    ca = make_ca(tmp_path / "ca", clock)
    yield CraftingCA(ca, clock)
    ca.close()
