"""The built-in CA: an event-sourced SCEP CA (RFC 8894) in a directory.

    ca = BuiltinCA.init(dir)                  # or BuiltinCA.open(dir)
    server = serve(ca, "127.0.0.1", 0)        # h11 on an asyncio loop thread, ephemeral port
    server.url                                # http://127.0.0.1:PORT (IOS-style base URL)
    server.scep_url                           # http://127.0.0.1:PORT/scep
    password = ca.mint_challenge()            # one-time challenge password
    ca.approve(txid); ca.revoke(serial, "keyCompromise"); ca.requests(); ca.certificates()
    ca.sign_offline(csr_der)                  # a request carried from a device (`ca sign`)
    server.stop(); ca.close()

    serve(ca, workers=2)                      # HTTP + SCEP crypto in 2 worker processes;
                                              # this process stays the log's one writer
    serve_in_process(ca, network, url)        # no sockets: devices whose ports.scep is the
                                              # InProcessTransport `network` reach it at url

See engine/ca/service.py (wiring, layout), commands.py (decide(state, command): the effects
each command asks of the runtime), decide.py (rules), state.py (folds, CA_FOLDS), profile.py
(certificate/CRL profiles), scep_frontend.py (SCEP operations), queries.py (what SCEP asks of
the CA's state), offline.py (pasted requests), workers.py / worker.py / channel.py
(`ca serve --workers N`), server.py (serving), cli.py (`ca` command); the HTTP edge is
engine/adapters/scep_server.py, the in-process transport engine/adapters/scep_inprocess.py.
"""

from engine.ca.decide import Approval, Policy
from engine.ca.errors import CAError, CAUnavailable, ScepRefusal
from engine.ca.server import CAServer, serve
from engine.ca.service import BuiltinCA, CALocked
from engine.ca.state import CAState, IssuedCertificate, Request, RequestStatus

__all__ = [
    "Approval",
    "BuiltinCA",
    "CAError",
    "CALocked",
    "CAServer",
    "CAState",
    "CAUnavailable",
    "IssuedCertificate",
    "Policy",
    "Request",
    "RequestStatus",
    "ScepRefusal",
    "serve",
]
