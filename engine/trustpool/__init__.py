"""The CA trustpool: built-in and downloaded CA certificates, its policy, and its automatic
updates (the reference's "Certificate Authority Trust Pool Management").

    pool.py      the folded state: certificates, last update, the timer's fields; usability
    policy.py    `crypto ca trustpool policy` and `crypto ca rsa 1024 disable`, from the config
    bundle.py    what a bundle holds (PEM, PKCS#7 DER/PEM), checked; signed.py its signature
    fetch.py     the FetchBundle effect and its http/https/file adapter
    builtin.py   certifi's Mozilla roots, recorded at open
    schedule.py  when the automatic update tries (20 ... 1 days before the expiry, hourly)
    folds.py     the events folded into the state; messages.py the `%PKI` lines
    anchor.py    which anchor a chain ends in: a trustpoint's CA before the pool

The commands are in engine/commands/trustpool.py, the timer's machine in
engine/machines/trustpool.py, the `show` renderers in projections/trustpool.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

    from engine.state import DeviceState
    from engine.trustpool.anchor import Anchor


def anchor_for(state: DeviceState, chain: Sequence[x509.Certificate], now: int
               ) -> Anchor | None:
    """The anchor `chain` (leaf first) ends in at `now` (µs) and whose policy applies: a
    trustpoint's CA before the pool (engine.trustpool.anchor); None if nothing anchors it."""
    from engine.trustpool.anchor import find_anchor

    return find_anchor(state, chain, now)
