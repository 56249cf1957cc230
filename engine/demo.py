"""`trustledger demo`: the reference example session, run through the batch frontend into a
fresh temporary data directory, printing the transcript.

The script follows ../shared/reference/ca-interoperability.md's example as far as the engine
implements it: device identity and two-stage commits today; keys, the built-in CA, trustpoint
authentication and SCEP enrollment join as their issues land.
"""

from __future__ import annotations

import tempfile
from typing import TextIO

from engine.engine import Engine
from engine.frontends import run_batch

SESSION = """\
! The hostname and domain name make the FQDN that goes into certificates.
configure
hostname myrouter
domain name mydomain.com
end
yes
show running-config
show configuration commit list
"""


def run_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="trustledger-demo-") as tmp:
        out.write(f"! data directory: {tmp}\n")
        with Engine.open(tmp, user="demo") as eng:
            status = run_batch(eng, iter(SESSION.splitlines(keepends=True)), out, False)
    return status
