"""Trustpool test helpers: the vectors' built-in bundle, and the misbehaving HTTP server's
routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.trustpool.builtin import BuiltinFile, BuiltinSource

HERE = Path(__file__).resolve().parent
PEERS = HERE.parents[2] / "shared" / "peers"
VECTORS = HERE / "vectors"


def fixed_builtins(path: Path = VECTORS / "builtin_bundle.pem",
                   source: str = "vectors") -> BuiltinSource:
    return lambda: BuiltinFile(path.read_bytes(), lambda: source)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    location: str = ""
    trickle: float = 0.0  # seconds between bytes


@dataclass
class BundleServer:
    port: int
    scheme: str = "http"
    routes: dict[str, Route] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes) -> str:
        self.routes[path] = Route(body=body)
        return self.url(path)
