"""A recorded validation replays to the same Verdict from the log alone: the state folded up
to just before its `PeerValidated` and the stored CRL bytes, with no network (no CRL port at
all), through `decide_validation` and through a frozen (audit) engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import Engine
from engine.ports import FakeClock
from engine.revocation.store import CRL_DIR, FileCrlBlobs
from engine.state import DeviceState, replay_rows
from engine.validation.decide import decide_validation
from engine.validation.verdict import Purpose, verdict_of
from events.filelog import FileEventLog
from events.validation import PeerValidated
from tests.support.crl_support import FakeCrlFetcher
from tests.validation.validation_support import (
    AT_US,
    INTER_CDP,
    LEAF_CDP,
    Pki,
    der,
    good_crl,
    leaf_of,
    pem,
)

DAY = 86_400_000_000


def _state_before(log: FileEventLog, seq: int) -> DeviceState:
    rows = (row for row in log.read_rows(typed=True) if row[0] < seq)
    return replay_rows(DeviceState(), rows)


def test_every_recorded_verdict_replays_the_same_without_network(tmp_path: Path) -> None:
    pki = Pki.make("Replay", kind="rsa2048", cdp=[INTER_CDP])
    revoked, good = leaf_of(pki, serial=99), leaf_of(pki)
    chains: dict[tuple[str, ...], list[bytes]] = {}
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    with Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None) as dev:
        dev.ports.crls = FakeCrlFetcher({
            LEAF_CDP: good_crl(pki.inter, pki.inter_key, revoked=[(99, None)]),
            INTER_CDP: "the server answered HTTP 500"})
        for line in (f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}",
                     "configure", "crypto ca trustpool policy", "crl optional", "commit",
                     "end"):
            assert dev.execute(line).ok
        calls: list[tuple[list[bytes], str, int, str | None]] = [
            ([der(good), der(pki.inter)], "ike", AT_US, "peer.example"),
            ([der(revoked), der(pki.inter)], "tls-server", AT_US, None),
            ([der(good), der(pki.inter)], "any", AT_US - 3 * DAY, None),
            ([der(good), der(pki.inter)], "tls-client", AT_US, "other.example"),
        ]
        verdicts = []
        for chain, purpose, at, name in calls:
            v = dev.validate_peer(chain, purpose, at, name)
            chains[v.chain] = chain
            verdicts.append(v)
    assert [v.ok for v in verdicts] == [True, False, True, False]

    blobs = FileCrlBlobs(tmp_path / "dev" / CRL_DIR)
    replayed: list[Any] = []
    with FileEventLog.open(tmp_path / "dev" / "log", readonly=True) as log:
        recorded = [(r.seq, r.event) for r in log.read() if isinstance(r.event, PeerValidated)]
        for seq, ev in recorded:
            assert isinstance(ev, PeerValidated)
            state = _state_before(log, seq)
            chain = chains[tuple(ev.chain)]
            again = decide_validation(state, blobs, chain, ev.purpose, ev.at, ev.peer_name)
            assert again == verdict_of(ev)
            audit = Engine.frozen(state, ev.at, crl_blobs=blobs)
            assert audit.validate_peer(chain, Purpose(ev.purpose), ev.at, ev.peer_name) == again
            replayed.append(again)
    assert replayed == verdicts
