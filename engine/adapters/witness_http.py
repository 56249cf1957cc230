"""The witness's HTTP edge: C2SP tlog-witness `POST <prefix>/add-checkpoint` on the CA's HTTP
stack (engine/adapters/scep_server.py: h11 framing, limits, timeouts), answered by a
`WitnessService` (engine/audit/witness_service.py) in the stack's thread pool, since each
co-signature waits for its record to be durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

from engine.adapters.scep_server import (
    HttpError,
    Request,
    Response,
    RunningServer,
    split_target,
    start_site,
)
from engine.audit.witness import ADD_CHECKPOINT_PATH, Decision
from engine.audit.witness_service import WitnessService

MAX_BODY = 64 * 1024  # 63 proof lines and a checkpoint with many signatures fit easily


class WitnessSite:
    body_limit = MAX_BODY

    def __init__(self, service: WitnessService, executor: ThreadPoolExecutor,
                 report: Callable[[Decision], None] | None = None) -> None:
        self.service = service
        self._executor = executor
        self._report = report

    def error(self, status: HTTPStatus, message: str) -> Response:
        return Response(status, "text/plain; charset=utf-8", (message + "\n").encode())

    async def respond(self, request: Request) -> Response:
        if split_target(request.target).path != ADD_CHECKPOINT_PATH:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        if request.method != "POST":  # "The request MUST be an HTTP POST."
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "add-checkpoint takes a POST")
        loop = asyncio.get_running_loop()
        decision = await loop.run_in_executor(self._executor, self.service.add_checkpoint,
                                              request.body)
        if self._report is not None:
            self._report(decision)
        return Response(decision.status, decision.content_type, decision.body)


def serve_witness(service: WitnessService, host: str = "127.0.0.1", port: int = 0,
                  report: Callable[[Decision], None] | None = None) -> RunningServer:
    """Serve `service` on host:port (0: an ephemeral port) from a background thread."""
    return start_site(lambda executor: WitnessSite(service, executor, report), host, port,
                      name="witness-http")
