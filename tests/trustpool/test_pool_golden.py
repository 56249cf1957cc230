"""`show crypto ca trustpool` and `... policy` against golden files (the vectors' built-in
bundle, a fixed clock). The golden file's `#` lines say how the reference's flattened table
was read back; they are not part of the output."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.ports import FakeClock
from tests.trustpool.pool_support import fixed_builtins

GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC


def _golden(name: str) -> str:
    text = (GOLDEN / name).read_text()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def _device(tmp_path: Path) -> Engine:
    dev = Engine.open(tmp_path / "dev", clock=FakeClock(NOW), builtins=fixed_builtins())
    for line in ("configure", "crypto ca rsa 1024 disable", "commit", "end"):
        assert dev.execute(line).ok
    return dev


def test_show_crypto_ca_trustpool(tmp_path: Path) -> None:
    with _device(tmp_path) as dev:
        assert dev.execute("show crypto ca trustpool").output == _golden(
            "show_crypto_ca_trustpool.txt")


def test_show_crypto_ca_trustpool_policy(tmp_path: Path) -> None:
    with _device(tmp_path) as dev:
        assert dev.execute("show crypto ca trustpool policy").output == _golden(
            "show_crypto_ca_trustpool_policy.txt")
