"""Fixtures for the trustpoint tests: a fake clock shared by device and CA, a device engine on
disk with pre-generated keys, and the built-in CA served to it in process (or, where a test
asks, on an ephemeral loopback port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tp_support import make_ca, open_device

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.decide import Approval
from engine.ca.server import CAServer, InProcessCA, serve, serve_in_process
from engine.ca.service import BuiltinCA
from engine.keystore import MASTER_KEY_ENV
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport


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
        opened.append(e)
        return e

    yield opener
    for e in opened:
        e.store.close()


@pytest.fixture
def device(open_engine: Callable[..., Engine]) -> Engine:
    return open_engine()


class CAFactory:
    """Builds built-in CAs on the shared clock and serves them, to the devices' in-process
    transport (`http=True`: over real loopback HTTP); everything stops at teardown."""

    def __init__(self, root: Path, clock: FakeClock, network: InProcessTransport) -> None:
        self.root = root
        self.clock = clock
        self.network = network
        self.cas: list[BuiltinCA] = []
        self.servers: list[CAServer | InProcessCA] = []

    def __call__(self, approval: Approval = Approval.AUTO, *, name: str = "ca",
                 challenge: str | None = None, http: bool = False,
                 **kw: Any) -> tuple[BuiltinCA, Any]:
        ca = make_ca(self.root / name, self.clock, **kw)
        self.cas.append(ca)
        server: CAServer | InProcessCA
        if http:
            server = serve(ca, approval=approval, challenge=challenge, admin=False,
                           crl_check_interval=3600)
        else:
            server = serve_in_process(ca, self.network, f"http://{name}.invalid",
                                      approval=approval, challenge=challenge)
        self.servers.append(server)
        return ca, server

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        for ca in self.cas:
            ca.close()


@pytest.fixture
def ca_factory(tmp_path: Path, clock: FakeClock,
               scep_network: InProcessTransport) -> Iterator[CAFactory]:
    f = CAFactory(tmp_path, clock, scep_network)
    yield f
    f.close()
