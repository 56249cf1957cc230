"""Automatic renewal of a trustpoint's router certificate, and the expiry alerts of its
certificates, on the engine clock.

- `schedule.py`: when things are due (pure functions of the folded status): the renewal
  point (`auto-enroll` percent of the certificate's lifetime), the retry of a failed attempt,
  the activation of a held certificate, the expiry alerts' points.
- `exchange.py`: one renewal attempt and its polls (`renewal_exchange`, `renewal_poll`): an
  enrollment with the trustpoint's current key pairs and identity, each request signed by its
  current certificate (PKCSReq or RenewalReq per `renewal-message-type`), no challenge
  password, PENDING polled on the trustpoint's retry period and count.
- `jobs.py`: the due functions of engine/device_timers.py (`renew`, `poll`, `alert` jobs).
- `folds.py`, `messages.py`: what the events change in the status, and the `%PKI` lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.renewal.exchange import renewal_exchange, renewal_poll

__all__ = ["renewal_exchange", "renewal_poll"]


def __getattr__(name: str) -> Any:
    """The exchange (SCEP, certificate checks) loads when first named (PEP 562): the due
    functions run at every open, a `show`'s too, and only an attempt needs it."""
    if name in __all__:
        from engine.renewal import exchange

        return getattr(exchange, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
