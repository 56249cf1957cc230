"""The anchor index (engine.validation.anchors) gives what find_anchor gives: the same anchor
and policy for chains anchored by a trustpoint, by the pool, by both, or by nothing, with
unusable pool certificates left out, and it follows the state as it changes."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from engine import Engine
from engine.ports import FakeClock
from engine.trustpool.anchor import find_anchor
from engine.validation.anchors import anchor_index
from events.store import PendingEvent
from events.trustpoint import CACertificateAccepted
from tests.trustpool.pool_certs import ca, der, key, pem, years

NOW = 1_764_201_600_000_000  # 2025-11-27


def _run(dev: Engine, *lines: str) -> None:
    for line in lines:
        result = dev.execute(line, answers=["yes"])
        assert result.ok, (line, result.output)


def _authenticate(dev: Engine, name: str, ca_der: bytes) -> None:
    dev.fold(dev.store.append([PendingEvent(CACertificateAccepted(name, ca_der, (), (),
                                                                  "terminal"),
                                            "device", NOW, "admin", "test")]))


def _agree(dev: Engine, chains: dict[str, list[x509.Certificate]]) -> dict[str, str]:
    """Each chain's anchor by both; they must agree. name -> "source name optional"."""
    out = {}
    index = anchor_index(dev.state)
    for label, chain in chains.items():
        want = find_anchor(dev.state, chain, NOW)
        found = index.find(chain, NOW)
        got = None if found is None else found.anchor
        assert got == want, label
        out[label] = "none" if got is None else f"{got.source} {got.name} {got.crl_optional}"
    return out


def test_the_index_agrees_with_find_anchor_as_the_state_changes(tmp_path: Path) -> None:
    root = ca("Both Root", *years(2020, 2040))
    inter = ca("Both Issuing CA", *years(2020, 2035), issuer=root)
    other = ca("Pool Only Root", *years(2020, 2040))
    expired = ca("Old Root", *years(2010, 2020))
    weak = ca("Weak Root", *years(2020, 2040), k=key(1024))
    lone = ca("Lone Root", *years(2020, 2040))

    def leaf(issuer: tuple[x509.Certificate, object]) -> x509.Certificate:
        return ca("peer.example", *years(2015, 2045), issuer=issuer,  # type: ignore[arg-type]
                  is_ca=False)[0]

    chains = {"both": [leaf(inter), inter[0]], "pool": [leaf(other)],
              "expired": [leaf(expired)], "weak": [leaf(weak)], "lone": [leaf(lone)],
              "root-itself": [root[0]]}
    (tmp_path / "pool.pem").write_bytes(pem([root[0], other[0], expired[0], weak[0]]))
    with Engine.open(tmp_path / "dev", clock=FakeClock(NOW), builtins=None) as dev:
        _run(dev, f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}")
        assert _agree(dev, chains) == {
            "both": "trustpool trustpool False", "pool": "trustpool trustpool False",
            "expired": "none", "weak": "trustpool trustpool False", "lone": "none",
            "root-itself": "trustpool trustpool False"}
        _run(dev, "configure", "crypto ca trustpoint corp", "enrollment terminal",
             "crl optional", "commit", "end")
        _authenticate(dev, "corp", der(root[0]))
        _run(dev, "configure", "crypto ca rsa 1024 disable", "crypto ca trustpool policy",
             "crl optional", "commit", "end")
        assert _agree(dev, chains) == {
            "both": "trustpoint corp True", "pool": "trustpool trustpool True",
            "expired": "none", "weak": "none", "lone": "none",
            "root-itself": "trustpoint corp True"}
        _run(dev, "configure", "no crypto ca trustpoint corp", "commit", "end")
        assert _agree(dev, chains)["both"] == "trustpool trustpool True"
