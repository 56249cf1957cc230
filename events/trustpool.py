"""Events of the CA trustpool (stream `device`): the built-in bundle, downloads, cleans, and
the automatic update timer's attempts and warnings.

Certificates are carried in the events themselves (DER), not stored beside the log: the log
is then the whole record (copying `log/` copies the trustpool; `log verify` covers every
certificate the device ever trusted), and replay reads nothing else. The cost is each
bundle's size once: the built-in one (certifi 2026.10.19: 117 certificates, 127 KB) when a
device first opens and again only when an upgrade brings a different one; a download once
per successful update. An update that brings exactly the certificates already downloaded
(automatic or by hand) records only the bundle's digest (`certificates` empty, `unchanged`
true).
"""

from __future__ import annotations

from dataclasses import dataclass

from events.registry import Event, event


@event("TrustpoolBuiltinsRecorded", version=1)
@dataclass(frozen=True, slots=True)
class TrustpoolBuiltinsRecorded(Event):
    """The built-in bundle this build ships (certifi's Mozilla roots), as the device found it
    when it opened: replaces the built-in part of the pool."""

    sha256: str  # hex SHA-256 of the bundle file as shipped
    source: str  # where it came from, e.g. "certifi 2026.10.19"
    certificates: tuple[bytes, ...]  # DER, in the bundle's order


@event("TrustpoolImported", version=1)
@dataclass(frozen=True, slots=True)
class TrustpoolImported(Event):
    """A bundle was downloaded, parsed and checked: it replaces the downloaded part of the
    pool, whole (the pool is one entity)."""

    url: str
    sha256: str  # hex SHA-256 of the bundle as fetched
    certificates: tuple[bytes, ...]  # DER, after dropping duplicates (see `notes`)
    signature: str  # "unsigned" or "signed by <subject>"
    notes: tuple[str, ...]  # what the import decided (duplicates dropped), for the audit
    automatic: bool  # the update timer's (True) or `crypto ca trustpool import url` (False)
    unchanged: bool = False  # the same certificates as downloaded before (none carried)


@event("TrustpoolCleaned", version=1)
@dataclass(frozen=True, slots=True)
class TrustpoolCleaned(Event):
    """`crypto ca trustpool import url clean`: every downloaded certificate removed."""

    removed: int  # how many there were


@event("TrustpoolUpdateFailed", version=1)
@dataclass(frozen=True, slots=True)
class TrustpoolUpdateFailed(Event):
    """An automatic update attempt failed: nothing changed but the timer (it retries)."""

    url: str
    cause: str  # the `%` error's text, without the marker


@event("TrustpoolPolicyWarned", version=1)
@dataclass(frozen=True, slots=True)
class TrustpoolPolicyWarned(Event):
    """The daily warning: the update timer runs but no `cabundle url` is configured."""

    target: int  # µs: the expiry the timer watches
