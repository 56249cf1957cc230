"""An httpx client whose requests share a total deadline per exchange.

httpx's timeouts bound each socket operation, not a request: a peer that sends one byte every
2 s never trips a 10 s read timeout and holds the caller for as long as it likes. Here every
socket operation (connect, each read, each write) is given at most the time left until the
deadline of the exchange in progress, so an exchange ends at its deadline whatever the peer
does, with `httpx.TimeoutException` (and `Deadline.expired()` true).

    deadline = Deadline(60.0)
    client = deadline_client(deadline, timeout=10.0)
    with deadline.exchange():           # GetCACaps + GetCACert: one deadline for both
        client.get(...); client.get(...)

The deadline is per thread, so a scheduled poll in a worker thread and the operator's command
keep their own. Outside `exchange()` nothing is bounded beyond httpx's own timeouts.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import httpcore
import httpx


class Deadline:
    """The end (time.monotonic()) of the exchange the current thread is in, if any."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._local = threading.local()

    @contextmanager
    def exchange(self) -> Iterator[None]:
        """Requests made inside share one deadline; a nested exchange keeps the outer one."""
        if self._at() is not None:
            yield
            return
        self._local.at = time.monotonic() + self.seconds
        try:
            yield
        finally:
            self._local.at = None

    def _at(self) -> float | None:
        at: float | None = getattr(self._local, "at", None)
        return at

    def expired(self) -> bool:
        at = self._at()
        return at is not None and time.monotonic() >= at

    def bound(self, timeout: float | None) -> float | None:
        """`timeout` cut to the time left; raises once nothing is left."""
        at = self._at()
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout(f"the {self.seconds:g} s deadline of the exchange passed")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.bound(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.bound(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self.inner.start_tls(ssl_context, server_hostname,
                                            self.deadline.bound(timeout)), self.deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, deadline: Deadline) -> None:
        self.inner = httpcore.SyncBackend()
        self.deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None
                    ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_tcp(host, port, self.deadline.bound(timeout),
                                              local_address, socket_options), self.deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_unix_socket(path, self.deadline.bound(timeout),
                                                      socket_options), self.deadline)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def deadline_client(deadline: Deadline, timeout: float,
                    ssl_context: ssl.SSLContext | None = None) -> httpx.Client:
    """An httpx client (no proxies from the environment, no redirects) whose sockets obey
    `deadline`. httpx takes no network backend, so its HTTP transport gets a connection pool
    built on ours (the pool it would build, with our backend). `ssl_context`: whom https
    trusts (None: httpx's default)."""
    transport = httpx.HTTPTransport(retries=0)
    transport._pool = httpcore.ConnectionPool(  # private: see the docstring
        ssl_context=ssl_context, network_backend=_Backend(deadline), retries=0)
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False,
                        trust_env=False)
