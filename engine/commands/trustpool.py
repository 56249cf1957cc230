"""The CA trustpool: `crypto ca trustpool import url URL|clean`, the `crypto ca trustpool
policy` submode, `crypto ca rsa 1024 disable`, `show crypto ca trustpool [policy]`, and the
automatic update (a scheduled job on the engine clock).

An import or an automatic update fetches the bundle (FetchBundle), checks it whole
(engine.trustpool.bundle) and records it as one `TrustpoolImported` that replaces the
downloaded part of the pool; anything wrong is one `%` error naming the cause, and nothing is
recorded (an automatic attempt that fails records only `TrustpoolUpdateFailed`, for its
retry schedule and `show logging`). The update timer's legality is its machine's
(engine/machines/trustpool.py); when it is due is engine.trustpool.schedule's.

This module holds the declarations and the timer; what the commands and the update do is
engine/commands/run/trustpool.py, loaded when one first runs.
"""

from __future__ import annotations

import re

from engine.grammar import (
    DESCRIPTION,
    GRAMMAR,
    WORD,
    ArgKind,
    ArgSpec,
    Handler,
    Mode,
    no_userinfo,
    well_formed_authority,
)
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpool.policy import POLICY_KEY, RSA_1024_KEY, policy_of
from engine.trustpool.schedule import next_attempt, next_warning

G = GRAMMAR
POOL = Mode.TRUSTPOOL
RUN = "engine.commands.run.trustpool"


def _bundle_url(s: str) -> str:
    """http://, https:// (with a host) or file: (a local path)."""
    if re.match(r"^https?://[^\s/]+(/\S*)?$", s, re.IGNORECASE):
        return well_formed_authority(s)
    if re.match(r"^file:(//(localhost)?)?/\S+$", s, re.IGNORECASE):
        return s
    raise ValueError(s)


BUNDLE_URL = ArgSpec(ArgKind("WORD", _bundle_url, screen=no_userinfo),
                     "http://, https:// or file: url of the bundle")

G.describe({"trustpool": "CA trustpool", "import": "Import certificates into the trustpool"})

# -- configuration --------------------------------------------------------------------------------
# The reference gives `cabundle url`, `crl optional` and `description`; `vrf` and the layout of
# the submode follow IOS XR's configuration model (crypto ca trustpool policy / vrf NAME).

G.config("crypto ca trustpool policy", key=POLICY_KEY, enters=POOL, rank=55,
         help="Configure the CA trustpool policy",
         words={"trustpool": "CA trustpool", "policy": "Trustpool policy parameters"})
G.config("cabundle url <url>", key="cabundle url", mode=POOL,
         help="URL the CA bundle is downloaded from (manual and automatic updates)",
         args={"url": BUNDLE_URL},
         words={"cabundle": "CA bundle parameters", "url": "URL of the CA bundle"})
G.config("crl optional", key="crl optional", mode=POOL,
         help="Accept chains anchored in the trustpool when no CRL can be had",
         words={"crl": "Revocation checking of chains anchored in the trustpool",
                "optional": "Do not require a CRL"})
G.config("description <text>", key="description", mode=POOL, help="Trustpool policy description",
         args={"text": ArgSpec(DESCRIPTION, "Up to 80 characters")},
         words={"description": "Trustpool policy description"})
G.config("vrf <name>", key="vrf", mode=POOL, help="VRF the bundle is fetched in (recorded; "
         "VRFs are not used)", args={"name": ArgSpec(WORD, "VRF name")},
         words={"vrf": "VRF the bundle is fetched in"})
G.config("crypto ca rsa 1024 disable", key=RSA_1024_KEY, rank=56,
         help="Do not use trustpool certificates with RSA keys of 1024 bits or less",
         words={"rsa": "RSA key policy", "1024": "RSA keys of 1024 bits or less",
                "disable": "Do not use them"})



IMPORT_URL_HELP = "Import from a URL (or 'clean' to remove the downloaded certificates)"

G.declare("crypto ca trustpool import url <url>", runs=f"{RUN}:import_url",
          help="Download a CA bundle into the trustpool (replaces the downloaded part)",
          args={"url": BUNDLE_URL},
          words={"url": IMPORT_URL_HELP})
G.declare("crypto ca trustpool import url clean", runs=f"{RUN}:import_clean",
          help="Remove every downloaded certificate from the trustpool (built-ins stay)",
          words={"url": IMPORT_URL_HELP, "clean": "Remove the downloaded certificates"})
G.declare("show crypto ca trustpool", runs=f"{RUN}:show_trustpool",
          help="Show the CA trustpool's certificates")
G.declare("show crypto ca trustpool policy", runs=f"{RUN}:show_policy",
          help="Show the CA trustpool policy",
          words={"policy": "Trustpool policy, last update and next automatic update"})


# -- the automatic update (scheduled) -------------------------------------------------------------


def due_update(state: DeviceState, now: int) -> list[Job]:
    """The trustpool update attempt, or the missing-url warning, if due at `now` (a timer
    listed in engine/device_timers.py). Each job's event moves its due time past the time it
    ran at (the schedule counts from the attempt; the warning is daily)."""
    pool = state.trustpool
    if policy_of(state).cabundle_url is not None:
        at = next_attempt(pool)
        if at is None or at > now:
            return []
        return [Job("trustpool update", at, Handler(f"{RUN}:update"))]
    at = next_warning(pool)
    if at is None or at > now:
        return []
    return [Job("trustpool warning", at, Handler(f"{RUN}:warn"), notice=True)]
