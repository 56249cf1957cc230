"""Events of a device's own stream (`device`): configuration commits.

Later features (keys, trustpoints, trustpool) add their events in modules of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event

WireChange = tuple[tuple[str, ...], str | None, str | None]


@event("ConfigurationCommitted", version=1)
@dataclass(frozen=True, slots=True)
class ConfigurationCommitted(Event):
    """One `commit` (or rollback): the changes applied atomically to the running config."""

    commit_id: int
    user: str
    label: str
    comment: str
    changes: tuple[WireChange, ...]
    rollback_to: int = 0  # for `rollback configuration ...`: the commit the config returns to
