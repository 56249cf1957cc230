"""`trustledger demo`: the reference example session, end to end.

It creates a built-in CA in a temporary directory, serves it over SCEP on an ephemeral
loopback port, and runs the example session of ../shared/reference/ca-interoperability.md
through the batch frontend (each line echoed after the prompt, answers on the lines that
follow): identity, an RSA key pair, a trustpoint, CA authentication, SCEP enrollment with a
one-time challenge password the CA administrator minted, and the `show` outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from engine.ca.server import serve
from engine.ca.service import BuiltinCA
from engine.engine import Engine
from engine.frontends import run_batch
from engine.trustpool.builtin import certifi_bundle

SESSION = """\
configure
hostname myrouter
domain name mydomain.com
end
yes
crypto key generate rsa mykey

show crypto key mypubkey rsa
! The following commands declare a CA and configure a trusted point.
configure
crypto ca trustpoint myca
enrollment url {url}
enrollment retry count 25
enrollment retry period 2
rsakeypair mykey
end
yes
! The following command authenticates the CA to your router.
crypto ca authenticate myca
yes
! The following command requests certificates for all of your RSA key pairs.
crypto ca enroll myca
{challenge}
{challenge}
! The following command displays information about your certificate and the CA certificate.
show crypto ca certificates
show crypto ca trustpoint myca
"""


def run_demo(out: TextIO, workdir: Path | None = None) -> int:
    """Run the session; with `workdir`, the CA and the device data are kept there."""
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        out.write(f"% {workdir} is not empty: the demo needs a fresh directory.\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="trustledger-demo-") as tmp:
        root = workdir or Path(tmp)
        with BuiltinCA.init(root / "ca", subject="CN=trustledger demo CA,O=Example") as ca:
            challenge = ca.mint_challenge()
            server = serve(ca)
            try:
                out.write(f"! built-in CA serving SCEP at {server.url} (loopback)\n")
                out.write(f"! the CA administrator's one-time challenge password: {challenge}\n")
                out.write(f"! device data directory: {root / 'device'}"
                          f"{'' if workdir else ' (removed when the demo ends; --dir keeps it)'}"
                          "\n")
                script = SESSION.format(url=server.url, challenge=challenge)
                with Engine.open(root / "device", user="demo", builtins=certifi_bundle,
                                 audit=True) as eng:  # as `trustledger shell` opens it
                    status = run_batch(eng, iter(script.splitlines(keepends=True)), out, False)
                if workdir is not None:
                    run = _command_name()
                    out.write(f"! kept: {run} shell --data {root / 'device'}  |  "
                              f"{run} log verify {root / 'device'}  |  "
                              f"{run} ca list {root / 'ca'}\n")
                    out.write(f"! the CA again, on the URL the trustpoint enrolls at: "
                              f"{run} ca serve {root / 'ca'} --port {server.port}\n")
                return status
            finally:
                server.stop()


def _command_name() -> str:
    """How the reader types trustledger: `sh tools/run.sh` when the demo was started by it
    (it says so in TRUSTLEDGER_RUN: `trustledger` is on PATH only in an activated venv)."""
    return os.environ.get("TRUSTLEDGER_RUN") or "trustledger"
