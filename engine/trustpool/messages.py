"""The trustpool's `%PKI-...` messages: the handlers print them and the logging folds derive
the same lines from the same events, so `show logging` keeps them (engine.device_folds)."""

from __future__ import annotations

from datetime import UTC, datetime

from events.trustpool import (
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)


def _count(n: int) -> str:
    return f"{n} certificate" if n == 1 else f"{n} certificates"


def _date(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%H:%M:%S UTC %a %b %d %Y")


def imported(ev: TrustpoolImported) -> str:
    how = "Automatic trustpool update" if ev.automatic else "Trustpool download"
    what = ("the same certificates as before" if ev.unchanged
            else _count(len(ev.certificates)))
    return (f"%PKI-6-TRUSTPOOL_DOWNLOAD_SUCCESS: {how} from {ev.url} succeeded: {what}, "
            f"{ev.signature}")


def update_failed(ev: TrustpoolUpdateFailed) -> str:
    return (f"%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL: Automatic trustpool update from {ev.url} "
            f"failed: {ev.cause}")


def cleaned(ev: TrustpoolCleaned) -> str:
    return (f"%PKI-6-TRUSTPOOL_CLEANED: {_count(ev.removed)} downloaded into the trustpool "
            "removed; the built-in certificates remain")


def warned(ev: TrustpoolPolicyWarned) -> str:
    return (f"%PKI-4-TRUSTPOOL_AUTO_UPDATE_DISABLED: The trustpool update timer is running "
            f"(earliest expiry {_date(ev.target)}) but no cabundle url is configured: "
            "configure one under 'crypto ca trustpool policy'")
