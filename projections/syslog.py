"""`show logging`: the logging buffer as IOS XR shows it.

The messages themselves (their texts, derived from events) are engine.messages'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from engine.messages import LOG_BUFFER, plural


def render_logging(messages: Sequence[tuple[int, str]]) -> str:
    head = ["Syslog logging: enabled (0 messages dropped, 0 flushes, 0 overruns)",
            f"    Buffer logging: level debugging, {plural(len(messages), 'message')} logged",
            "", f"Log Buffer ({LOG_BUFFER} messages):", ""]
    body = [f"RP/0/RP0/CPU0:{_when(at)}: pki[0]: {text}" for at, text in messages]
    return "\n".join([*head, *body, ""])


def _when(us: int) -> str:
    """`Nov 27 00:02:00.000 UTC`: IOS XR's syslog timestamp (milliseconds)."""
    t = datetime.fromtimestamp(us / 1_000_000, UTC)
    return t.strftime("%b %d %H:%M:%S.") + f"{t.microsecond // 1000:03d} UTC"
