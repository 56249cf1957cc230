"""Where the real third-party peers are, for integration tests.

The peers' scripts live in the steering repository's `shared/peers/` (beside this checkout in
CI); `$TRUSTLEDGER_PEERS` overrides. A missing peer fails the test under CI (where .ci/run
installed it) and skips it on a developer machine without it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def peers_dir(*binaries: str) -> Path:
    """The peers directory holding scep-server.sh etc.; each named binary must be on PATH."""
    env = os.environ.get("TRUSTLEDGER_PEERS")
    where = Path(env) if env else REPO.parent / "shared" / "peers"
    missing = [b for b in binaries if shutil.which(b) is None]
    if not (where / "scep-server.sh").is_file() or missing:
        why = (f"peer not available: {where / 'scep-server.sh'} "
               f"{'present' if (where / 'scep-server.sh').is_file() else 'missing'}"
               f"{', not on PATH: ' + ' '.join(missing) if missing else ''} "
               "(set TRUSTLEDGER_PEERS; tools/install-peers.sh installs the binaries)")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return where


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tcp_server(answer: Callable[[socket.socket], None], *, threaded: bool = False
               ) -> Iterator[int]:
    """A TCP server on 127.0.0.1 (an ephemeral port) that hands every connection to
    `answer` (closed after it returns; errors in it are the peer's, swallowed), one at a
    time or each on a thread of its own (`threaded`); yields the port. A hostile or odd peer
    of a test is then a few lines: what it answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # accept wakes up to see `stop`
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2)
            answer(conn)

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):  # (a timeout is an OSError)
                conn, _ = listener.accept()
                if threaded:
                    threading.Thread(target=one, args=(conn,), daemon=True).start()
                else:
                    one(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
