"""Automatic renewal's configuration (`auto-enroll`, `renewal-message-type` in a trustpoint)
and `show crypto ca timers`. What renewal does is engine/renewal/'s; its timers are listed in
engine/device_timers.py like every other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.effects import Outcome
from engine.grammar import GRAMMAR, ArgSpec, Mode, int_range
from engine.schedule import due_jobs

if TYPE_CHECKING:
    from engine.context import Ctx

G = GRAMMAR
TP = Mode.TRUSTP
FAR_FUTURE = 1 << 62
"""`now` for asking every due function what it has pending: each returns all its jobs due at
or before `now`, so this yields every pending job with its due time."""

G.describe({
    "auto-enroll": "Renew the router certificate automatically",
    "renewal-message-type": "SCEP message a renewal sends",
    "timers": "Show the PKI timers",
})

G.config("auto-enroll <percent>", key="auto-enroll", mode=TP,
         help="Renew the router certificate automatically",
         args={"percent": ArgSpec(int_range(1, 99),
                                  "Percentage of the certificate's lifetime after which it "
                                  "is renewed")})
G.config("renewal-message-type {type: pkcsreq | renewalreq}", key="renewal-message-type",
         mode=TP, help="SCEP message a renewal sends",
         words={"pkcsreq": "PKCSReq signed by the current certificate (default)",
                "renewalreq": "RenewalReq (RFC 8894)"})


@G.action("show crypto ca timers", help="Show the PKI timers")
def show_timers(ctx: Ctx) -> Outcome:
    from engine.views.state import TimersView

    pending = [(job.name, job.due_at) for job in due_jobs(ctx.state, FAR_FUTURE)]
    return Outcome(output=TimersView(pending, ctx.now))
