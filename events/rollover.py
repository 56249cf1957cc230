"""Events of a trustpoint's CA rollover (stream `device`): the CA's next certificate, fetched
with GetNextCACert and held as the shadow CA certificate, and the moment the shadow CA and
the shadow router certificates (events/renewal.py, purpose "shadow") become current.

Everything the CA sent that matters later is here (the next CA certificate's DER), so replay
never fetches or verifies anything again.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("ShadowCAAccepted", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCAAccepted(Event):
    """GetNextCACert answered a certificate whose SignedData verified with the trustpoint's
    current CA certificate: held as the shadow CA certificate until the current one expires."""

    trustpoint: str
    ca_certificate: bytes  # DER of the next CA certificate
    current_not_after: int  # µs: when the current CA certificate expires (the switch)


@event("ShadowCAFetchFailed", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCAFetchFailed(Event):
    """GetNextCACert failed: the CA could not be reached, or its answer was refused (not
    signed by the current CA key, not a CA certificate). Nothing is held; the next attempt
    is due at `next_attempt_at`."""

    trustpoint: str
    detail: str  # the `%` error's text, without the `%`
    next_attempt_at: int  # µs


@event("ShadowCANotOffered", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCANotOffered(Event):
    """The CA's GetCACaps does not advertise GetNextCACert: the device cannot roll over by
    itself. Logged when first found, and once more when the CA certificate is about to expire
    (its last week) with still none; the operator must re-authenticate the trustpoint before
    the CA certificate expires (`ca_not_after`). GetCACaps is re-checked daily in between
    (`ShadowCARechecked`)."""

    trustpoint: str
    ca_not_after: int  # µs


@event("ShadowCARechecked", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCARechecked(Event):
    """A daily re-check of GetCACaps after `ShadowCANotOffered`, while the CA certificate is
    in its rollover window: the CA still offers no GetNextCACert, or could not be reached
    (`detail`). Silent; the next re-check is due at `next_check_at`."""

    trustpoint: str
    next_check_at: int  # µs
    detail: str = ""  # why the re-check could not ask (the `%` error's text), or ""


@event("ShadowCAActivated", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCAActivated(Event):
    """The old CA certificate expired: the shadow CA certificate is now the trustpoint's CA
    certificate (its RA certificates, issued by the old key, are dropped with it)."""

    trustpoint: str
    serial: str  # of the new CA certificate, as the router prints it
    old_serial: str


@event("ShadowCertificateActivated", version=1)
@dataclass(frozen=True, slots=True)
class ShadowCertificateActivated(Event):
    """With the shadow CA, the shadow router certificate of one key usage became current."""

    trustpoint: str
    key_id: str
    usage: str
    serial: str  # as the router prints it


ROLLOVER_EVENTS: tuple[type[Event], ...] = (
    ShadowCAAccepted, ShadowCAFetchFailed, ShadowCANotOffered, ShadowCARechecked,
    ShadowCAActivated, ShadowCertificateActivated,
)
