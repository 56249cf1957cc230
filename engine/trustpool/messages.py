"""The trustpool's `%PKI-...` messages: the handlers print them and the logging folds derive
the same lines from the same events, so `show logging` keeps them (engine.device_folds)."""

from __future__ import annotations

from engine.messages import log_date, plural
from events.trustpool import (
    TrustpoolCleaned,
    TrustpoolImported,
    TrustpoolPolicyWarned,
    TrustpoolUpdateFailed,
)


def imported(ev: TrustpoolImported) -> str:
    how = "Automatic trustpool update" if ev.automatic else "Trustpool download"
    what = ("the same certificates as before" if ev.unchanged
            else plural(len(ev.certificates), "certificate"))
    return (f"%PKI-6-TRUSTPOOL_DOWNLOAD_SUCCESS: {how} from {ev.url} succeeded: {what}, "
            f"{ev.signature}")


def update_failed(ev: TrustpoolUpdateFailed) -> str:
    return (f"%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL: Automatic trustpool update from {ev.url} "
            f"failed: {ev.cause}")


def cleaned(ev: TrustpoolCleaned) -> str:
    return (f"%PKI-6-TRUSTPOOL_CLEANED: {plural(ev.removed, 'certificate')} downloaded into "
            "the trustpool removed; the built-in certificates remain")


def warned(ev: TrustpoolPolicyWarned) -> str:
    return (f"%PKI-4-TRUSTPOOL_AUTO_UPDATE_DISABLED: The trustpool update timer is running "
            f"(earliest expiry {log_date(ev.target)}) but no cabundle url is configured: "
            "configure one under 'crypto ca trustpool policy'")
