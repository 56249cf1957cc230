"""`show crypto ca counters`: peer validations passed, failed (by reason) and bypassed by
`crl optional`, and CRL fetch attempts and failures, from the folded state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.effects import Outcome
from engine.grammar import GRAMMAR

if TYPE_CHECKING:
    from engine.context import Ctx


@GRAMMAR.action("show crypto ca counters",
                help="Show peer validation and CRL retrieval counters",
                words={"counters": "Peer validations and CRL fetches, counted"})
def show_counters(ctx: Ctx) -> Outcome:
    from engine.views.state import CountersView

    return Outcome(output=CountersView(ctx.state))
