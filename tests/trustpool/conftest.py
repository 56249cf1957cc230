"""Trustpool test fixtures: the peers' bundles (bundles.sh), an HTTP(S) server on 127.0.0.1
whose paths misbehave on request, and devices opened with a chosen built-in bundle."""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine
from engine.ports import FakeClock
from engine.trustpool.builtin import BuiltinSource
from tests.support.peer_support import free_port
from tests.trustpool.pool_support import PEERS, BundleServer, Route, fixed_builtins


@pytest.fixture(scope="session")
def peer_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR with mozilla-bundle.pem/.p7b/.p7b.pem, mozilla-bundle-signed.p7b, trustpool.p7b and
    chain/ (root, inter, leaf, bundle-signer), made by the peers' bundles.sh from certifi."""
    script = Path(os.environ.get("TRUSTLEDGER_PEERS", PEERS)) / "bundles.sh"
    if not script.is_file() or shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{script} or openssl missing")
        pytest.skip(f"{script} or openssl missing")
    out = tmp_path_factory.mktemp("bundles")
    subprocess.run(["bash", str(script), str(out)], check=True, capture_output=True,
                   env={**os.environ, "VENV": sys.prefix}, timeout=120)
    return out


def _handler(server: BundleServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = server.routes.get(self.path, Route(status=404))
            self.send_response(route.status)
            if route.location:
                self.send_header("Location", route.location)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            try:
                if route.trickle:
                    for i in range(len(route.body)):
                        self.wfile.write(route.body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(route.trickle)
                else:
                    self.wfile.write(route.body)
            except OSError:
                pass  # the client gave up (the deadline test)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _start(server: BundleServer, tls: ssl.SSLContext | None) -> Iterator[BundleServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", server.port), _handler(server))
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[BundleServer]:
    yield from _start(BundleServer(free_port()), None)


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[BundleServer, bytes]]:
    """An https server whose certificate (for IP 127.0.0.1) is issued by a root of its own;
    yields the server and that root (DER)."""
    from cryptography.hazmat.primitives import serialization

    from tests.trustpool.pool_certs import ca, der, years

    root, root_key = ca("TLS Test Root", *years(2020, 2040))
    leaf, leaf_key = ca("127.0.0.1", *years(2020, 2040), issuer=(root, root_key),
                        is_ca=False, san_ip="127.0.0.1")
    (tmp_path / "srv.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "srv.key").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv.key")
    for server in _start(BundleServer(free_port(), "https"), ctx):
        yield server, der(root)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at the machine's time (bundles.sh dates its certificates by it)."""
    return FakeClock(int(time.time()) * 1_000_000)


@pytest.fixture
def device(tmp_path: Path, clock: FakeClock) -> Callable[..., Engine]:
    """`device()` opens (again) the device in tmp_path/dev on the fake clock, with the
    vectors' built-in bundle unless told otherwise."""

    vectors = fixed_builtins()

    def open_device(builtins: BuiltinSource | None = vectors, **kw: Any) -> Engine:
        return Engine.open(tmp_path / "dev", clock=clock, user="admin", builtins=builtins,
                           **kw)

    return open_device
