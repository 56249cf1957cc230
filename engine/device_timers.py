"""The device's timers: every due function, in one list (see engine/schedule.py).

Like the fold table (engine/device_folds.py), this is the whole list: a feature adds its timer
by adding one line here, and nothing registers itself on import. Order matters only between
jobs due at the same instant (the earlier line runs first).
"""

from __future__ import annotations

from engine.commands.trustpoint import due_polls
from engine.commands.trustpool import due_update
from engine.renewal.jobs import due_alerts, due_renewal_polls, due_renewals
from engine.rollover.jobs import due_shadow
from engine.schedule import Due

DEVICE_TIMERS: tuple[Due, ...] = (
    due_polls,  # a pending SCEP enrollment's next CertPoll (engine/commands/trustpoint.py)
    due_update,  # the trustpool's automatic update, or its daily no-url warning
    due_renewal_polls,  # a pending renewal's next CertPoll (engine/renewal/jobs.py)
    due_renewals,  # auto-enroll: a renewal attempt, or a held certificate's activation
    due_alerts,  # expiry notifications of router and CA certificates
    due_shadow,  # CA rollover: GetNextCACert, the shadow enrollment, the switch (engine/rollover)
)
