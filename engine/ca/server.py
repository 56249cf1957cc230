"""`serve(ca, host, port)`: run the built-in CA's SCEP server in the background.

    server = serve(ca, "127.0.0.1", 0, approval=Approval.MANUAL, challenge="secret")
    server.url          # http://127.0.0.1:PORT           (IOS appends /cgi-bin/pkiclient.exe)
    server.scep_url     # http://127.0.0.1:PORT/scep      (micromdm scepclient's -server-url)
    server.crl_url      # http://127.0.0.1:PORT/crl/ca.crl (the CDP of issued certificates)
    server.stop()

HTTP is engine/adapters/scep_server.py (h11 on an asyncio loop in a daemon thread; the CA's
blocking work in a thread pool). Besides HTTP it runs the CRL upkeep: a thread re-issues the
CRL once less than half of its lifetime is left before nextUpdate (checked every
`crl_check_interval` seconds, and on every CRL download in one process).

`workers=N` (N >= 2; `ca serve` defaults to one per CPU but one) serves HTTP from N worker processes
instead of this one, which stays the decider: the only writer of the log, where the
admin endpoint and the CRL upkeep also run (engine/ca/workers.py). The default, `workers=1`,
keeps everything in this process (embedding, the demo).

`serve_in_process(ca, network, url)` serves it to an in-process transport instead
(engine/adapters/scep_inprocess.py): no sockets; most device <-> CA tests run that way.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from engine.adapters import scep_server
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca.admin import AdminEndpoint, remove_admin_file, write_admin_file
from engine.ca.decide import Approval, Policy
from engine.ca.errors import CAError
from engine.ca.scep_frontend import DEFAULT_SIGNING_TIME_TOLERANCE, ScepFrontend
from engine.ca.service import CRL_PATH, BuiltinCA, challenge_digest
from engine.ca.workers import WorkerPool
from engine.errors import Reason

log = structlog.get_logger("trustledger.ca")


class _Reachable:
    """Where a served CA answers, under its base `url`: SCEP and the CRL."""

    url: str

    @property
    def scep_url(self) -> str:
        return self.url + "/scep"

    @property
    def crl_url(self) -> str:
        return self.url + CRL_PATH


@dataclass
class CAServer(_Reachable):
    url: str  # base URL
    admin_url: str | None
    ca: BuiltinCA
    _running: scep_server.RunningServer | None  # HTTP (one process) or the admin only
    _token: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _upkeep: threading.Thread | None = None
    pool: WorkerPool | None = None  # the worker processes, with workers >= 2
    _listen: socket.socket | None = None
    _port: int = 0

    @property
    def port(self) -> int:
        return self._port

    def stop(self) -> None:
        """Stop serving (the CA stays open; close it yourself)."""
        self._stop.set()
        if self.pool is not None:
            self.pool.stop()
        if self._listen is not None:
            self._listen.close()
        if self._running is not None:
            self._running.stop()
        if self._upkeep is not None:
            self._upkeep.join(timeout=5)
        if self.admin_url is not None:
            remove_admin_file(self.ca.root, self._token)

    def __enter__(self) -> CAServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(ca: BuiltinCA, host: str = "127.0.0.1", port: int = 0, *,
          approval: Approval = Approval.AUTO, challenge: str | None = None,
          strict: bool = False, public_url: str | None = None, admin: bool = True,
          crl_check_interval: float = 60.0, workers: int = 1,
          signing_time_tolerance: timedelta = DEFAULT_SIGNING_TIME_TOLERANCE) -> CAServer:
    """Serve `ca` over SCEP on host:port (0 = ephemeral). `challenge` is a static challenge
    password (one-time ones from `ca.mint_challenge()` work too); `strict` refuses DES, 3DES and
    SHA-1 with badAlg, and a first request signed by another key than its own with badRequest;
    `public_url` is the base URL clients reach us at, for the CDP (default
    the bound address); `admin` publishes the loopback admin endpoint in DIR/admin.json;
    `workers` >= 2 serves from that many worker processes (see the module docstring)."""
    if workers < 1:
        raise CAError(Reason.INVALID_VALUE, "workers must be at least 1")
    policy = Policy(approval, challenge_digest(challenge) if challenge else None,
                    same_key_only=strict)
    token = ca.randomness.token_bytes(32).hex()

    def ready(base_url: str) -> None:
        _open_for_requests(ca, public_url or base_url)

    if workers == 1:
        frontend = ScepFrontend(ca, policy, strict=strict,
                                signing_time_tolerance=signing_time_tolerance)
        running = scep_server.start(frontend, host, port,
                                    admin=AdminEndpoint(ca) if admin else None,
                                    admin_token=token, before_serving=ready)
        server = CAServer(running.url, running.admin_url, ca, running, token,
                          _port=running.port)
    else:
        server = _serve_workers(ca, policy, host, port, ready, token, admin=admin,
                                workers=workers, strict=strict,
                                signing_time_tolerance=signing_time_tolerance)
    if server.admin_url is not None:
        write_admin_file(ca.root, server.admin_url, token, server.scep_url)
    server._upkeep = threading.Thread(target=_crl_upkeep, args=(ca, server._stop,
                                                                crl_check_interval),
                                      name="ca-crl-upkeep", daemon=True)
    server._upkeep.start()
    log.info("ca serving", url=server.url, approval=approval.value, strict=strict,
             static_challenge=challenge is not None,
             workers=workers if workers > 1 else "none (one process)")
    return server


def _open_for_requests(ca: BuiltinCA, base_url: str) -> None:
    """Before the first request is served: certificates issued from now on carry a CDP under
    `base_url`; approved requests are issued, the CRL is current and published."""
    ca.crl_url = base_url.rstrip("/") + CRL_PATH
    ca.issue_approved()
    ca.refresh_crl()
    ca.publish_crl()


@dataclass
class InProcessCA(_Reachable):
    """The built-in CA attached to an in-process transport (`serve_in_process`)."""

    url: str
    ca: BuiltinCA
    network: InProcessTransport

    def stop(self) -> None:
        """Unreachable from now on, as a stopped server (the CA stays open)."""
        self.network.detach(self.url)


def serve_in_process(ca: BuiltinCA, network: InProcessTransport, url: str, *,
                     approval: Approval = Approval.AUTO, challenge: str | None = None,
                     strict: bool = False,
                     signing_time_tolerance: timedelta = DEFAULT_SIGNING_TIME_TOLERANCE,
                     ) -> InProcessCA:
    """Serve `ca` over SCEP to devices whose transport is `network`, at `url` (e.g.
    http://ca.invalid), without sockets: the same frontend and routes as `serve`, and the
    same preparation (CDP, approved requests issued, CRL published), but no CRL upkeep thread
    and no admin endpoint."""
    policy = Policy(approval, challenge_digest(challenge) if challenge else None,
                    same_key_only=strict)
    _open_for_requests(ca, url)
    network.attach(url, ScepFrontend(ca, policy, strict=strict,
                                     signing_time_tolerance=signing_time_tolerance))
    return InProcessCA(url.rstrip("/"), ca, network)


def _serve_workers(ca: BuiltinCA, policy: Policy, host: str, port: int,
                   ready: Callable[[str], None], token: str, *, admin: bool, workers: int,
                   strict: bool, signing_time_tolerance: timedelta) -> CAServer:
    listen, base_url = scep_server.listen(host, port)
    running = None
    try:
        ready(base_url)
        if admin:
            running = scep_server.start(None, admin=AdminEndpoint(ca), admin_token=token)
        pool = WorkerPool(ca, policy, listen, workers, strict=strict,
                          signing_time_tolerance=signing_time_tolerance)
        pool.start()
    except BaseException:
        if running is not None:
            running.stop()
        listen.close()
        raise
    return CAServer(base_url, running.admin_url if running else None, ca, running, token,
                    pool=pool, _listen=listen, _port=int(listen.getsockname()[1]))


def _crl_upkeep(ca: BuiltinCA, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            crl = ca.refresh_crl()
        except CAError as e:  # e.g. the log refused the append: keep the old CRL, retry later
            log.warning("crl refresh failed", error=str(e))
            continue
        if crl is not None:
            log.info("crl issued", number=crl.number)
