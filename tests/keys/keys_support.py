"""Helpers shared by the key tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine import Engine
from engine.keys import KeyAlgorithm, KeyPair

VECTORS = Path(__file__).parent / "vectors"

REFERENCE_AT = int(datetime(2003, 9, 18, 17, 33, 23, tzinfo=UTC).timestamp() * 1_000_000)


def vector(name: str) -> str:
    return (VECTORS / name).read_text()


def data_bytes(show_output: str) -> list[bytes]:
    """The `Data` of every entry of a show output, decoded from its hex words."""
    found: list[bytes] = []
    lines = show_output.splitlines()
    for i, line in enumerate(lines):
        if line == "Data      :":
            hexed = []
            for more in lines[i + 1:]:
                if not more.startswith(" "):
                    break
                hexed.append(more)
            found.append(bytes.fromhex("".join("".join(hexed).split())))
    return found


def only_pair(engine: Engine, algorithm: KeyAlgorithm, label: str) -> KeyPair:
    pairs = engine.state.keys.pairs_of(algorithm, label)
    assert len(pairs) == 1, pairs
    return pairs[0]


def log_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every file of the event log (segments), by name."""
    return {p.name: p.read_bytes() for p in sorted((data_dir / "log").iterdir()) if p.is_file()}
