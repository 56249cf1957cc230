"""The `%FACILITY-SEV-MNEMONIC` messages the engine emits, and their texts.

The engine's messages are derived from events, never stored in the log as text: the poll that
prints `%PKI-6-CERTRET` builds the line from the events it appends with the functions below, and
the logging fold (engine.commands.logging) builds the same line from the same events when it
folds them into `DeviceState.messages`. So `show logging` (projections.syslog) is a projection
of the log: it survives restarts and `replay --until` shows the messages up to that time.
This catalog is the engine's (the fold needs it); how `show logging` lays them out is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from events.trustpoint import EnrollmentFailed


LOG_BUFFER = 1000  # messages `show logging` keeps, newest last (a router's logging buffer)


def certret(trustpoint: str) -> str:
    return (f"%PKI-6-CERTRET: Certificate received from Certificate Authority for trustpoint "
            f"{trustpoint}")


def enroll_failed(trustpoint: str, fail_info: str, detail: str) -> str:
    return f"%PKI-3-ENROLL_FAILED: {enrollment_failure(trustpoint, fail_info, detail)}"


def enrollment_failure(trustpoint: str, fail_info: str, detail: str) -> str:
    """Why an enrollment failed, as both the synchronous `%` line and ENROLL_FAILED say it."""
    why = f"{fail_info}: {detail}" if fail_info else detail
    return f"Certificate enrollment for trustpoint {trustpoint} failed: {why}."


def enroll_timeout(trustpoint: str, detail: str) -> str:
    return (f"%PKI-3-ENROLL_TIMEOUT: Certificate enrollment for trustpoint {trustpoint} "
            f"timed out ({detail}). Ask the CA administrator to approve the request, then "
            f"enter 'crypto ca enroll {trustpoint}' again.")


def failure_message(ev: EnrollmentFailed) -> str | None:
    """The message an enrollment's end prints and logs (none when the operator cancelled)."""
    if ev.reason == "timeout":
        return enroll_timeout(ev.trustpoint, ev.detail)
    if ev.reason == "failure":
        return enroll_failed(ev.trustpoint, ev.fail_info, ev.detail)
    return None


def poll_failed(trustpoint: str, error: str) -> str:
    return f"%PKI-4-POLL_FAILED: trustpoint {trustpoint}: {error}"


def certificates_removed(trustpoint: str, count: int, reason: str) -> str:
    word = "certificate" if count == 1 else "certificates"
    return (f"%PKI-4-TRUSTPOINT_REMOVED: trustpoint {trustpoint} removed by {reason}: "
            f"{count} {word} destroyed")


def certificate_revoked(trustpoint: str, serial: str, reason: str, revoked_at: int) -> str:
    """A router certificate found on its CA's CRL (`RouterCertificateRevoked`)."""
    return (f"%PKI-3-CERTIFICATE_REVOKED: Router certificate of trustpoint {trustpoint} "
            f"(serial {serial}) is revoked: {reason}, since {clock_time(revoked_at)}. "
            f"Enter 'crypto ca enroll {trustpoint}' to enroll again.")


def printable_text(text: str) -> str:
    """`text` chosen by a peer (a certificate's or a CRL's name) as we may print and record it:
    each control or format character (an escape sequence, a newline that would forge the next
    line of a report, a right-to-left override) as '?'."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def plural(n: int, word: str, many: str = "") -> str:
    """`1 poll`, `3 polls`; `1 entry`, `3 entries` (`many`: the plural, when not word + s)."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


# -- the engine clock ------------------------------------------------------------------------------

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def clock_time(us: int) -> str:
    """`14:30:05.123 UTC Tue Dec 01 2026`: the engine clock as IOS XR's `show clock` writes it
    (sources in engine/commands/clock.py). Names are spelled here, not by strftime, so no
    locale can change them."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC)
    ms = us % 1_000_000 // 1000
    return (f"{t:%H:%M:%S}.{ms:03d} UTC {DAYS[t.weekday()]} {MONTHS[t.month - 1][:3]} "
            f"{t.day:02d} {t.year}")


def log_date(us: int) -> str:
    """`14:30:05 UTC Tue Dec 01 2026`: an instant named in a message (`clock_time` to the
    second)."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC)
    return (f"{t:%H:%M:%S} UTC {DAYS[t.weekday()]} {MONTHS[t.month - 1][:3]} {t.day:02d} "
            f"{t.year}")


def clock_update(before_us: int, after_us: int) -> str:
    """The message a `clock set` leaves in `show logging` (IOS's SYS-6-CLOCKUPDATE)."""
    return (f"%SYS-6-CLOCKUPDATE: System clock has been updated from {clock_time(before_us)} "
            f"to {clock_time(after_us)}, configured from console.")
