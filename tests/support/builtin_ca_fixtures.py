"""Fixtures for tests that run the built-in CA in process beside a device on a fake clock:
import the ones a test module uses (`from tests.support.builtin_ca_fixtures import ...`).

The CA answers SCEP through the in-process transport; anything else (its HTTP CDP on
loopback) goes to the real httpx transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport
from tests.trustpoint.tp_support import CAFactory, open_device


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def network() -> InProcessTransport:
    return InProcessTransport(fallback=HttpxTransport())


@pytest.fixture
def ca_factory(tmp_path: Path, clock: FakeClock,
               network: InProcessTransport) -> Iterator[CAFactory]:
    f = CAFactory(tmp_path, clock, network)
    yield f
    f.close()


@pytest.fixture
def device(tmp_path: Path, clock: FakeClock, network: InProcessTransport) -> Iterator[Engine]:
    e = open_device(tmp_path / "device", clock)
    e.ports.scep = network
    yield e
    e.store.close()
