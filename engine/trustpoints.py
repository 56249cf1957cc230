"""Trustpoints: their configuration and their PKI status, both folded from events.

The configuration is typed (`TrustpointConfig`): when a `ConfigurationCommitted` event changes
a trustpoint's lines, the fold below reads them from the new running configuration through the
grammar, once, into `DeviceState.trustpoint_configs`; every use reads that record. The status
(lifecycle, CA certificate, router certificates, the enrollment in flight) is folded from the
trustpoint's own events.

A trustpoint exists while `crypto ca trustpoint NAME` is in the running configuration; its
status record appears with the first event about it and disappears with the commit that
removes it (and so do its certificates, as on the router).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.config import ConfigTree
from engine.errors import TrustledgerError
from engine.grammar import GRAMMAR, Mode
from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import LIFECYCLE, Lifecycle, trigger_of
from engine.parser import parse
from engine.state import DeviceState, with_state

if TYPE_CHECKING:
    from events.device import ConfigurationCommitted, WireChange
    from events.keys import KeyPairZeroized
    from events.revocation import CrlFetched, CrlFetchFailed
    from events.trustpoint import (
        CACertificateAccepted,
        CertificateReceived,
        EnrollmentFailed,
        EnrollmentPending,
        EnrollmentRequested,
        RouterCertificateRevoked,
        TrustpointCertificatesRemoved,
    )

DEFAULT_KEY_LABEL = "the_default"
DEFAULT_RETRY_PERIOD = 1  # minutes (reference: "Default is 1 minute")
DEFAULT_RETRY_COUNT = 10  # the reference gives no default; ten polls, then the timeout
SCEP_PATH = "/cgi-bin/pkiclient.exe"  # where IOS goes when the enrollment URL has no path


def trustpoint_key(name: str) -> str:
    return f"crypto ca trustpoint {name}"


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustpointConfig:
    """A trustpoint's configuration, typed from its `crypto ca trustpoint` submode."""

    name: str
    enrollment_url: str | None = None
    terminal: bool = False
    query_url: str | None = None
    retry_period: int = DEFAULT_RETRY_PERIOD
    retry_count: int = DEFAULT_RETRY_COUNT
    key_label: str = DEFAULT_KEY_LABEL
    subject_name: str | None = None
    ip_address: str | None = None
    serial_number: bool = False
    crl_optional: bool = False
    message_digest: str | None = None
    description: str | None = None
    auto_enroll: int | None = None  # renew when this percentage of the lifetime has passed
    renewal_message_type: str = "pkcsreq"  # "pkcsreq" (IOS XR's default) | "renewalreq"

    @property
    def scep_url(self) -> str | None:
        """The enrollment URL as used: no path means IOS's `/cgi-bin/pkiclient.exe`."""
        if self.enrollment_url is None:
            return None
        scheme, _, rest = self.enrollment_url.partition("://")
        host, slash, path = rest.partition("/")
        if not slash or not path:
            return f"{scheme}://{host}{SCEP_PATH}"
        return self.enrollment_url


def trustpoint_config(state: DeviceState, name: str) -> TrustpointConfig | None:
    """The trustpoint's configuration, or None when it is not configured."""
    return state.trustpoint_configs.get(name)


CONFIG_FIELDS: Mapping[str, tuple[str, str | None]] = {
    # a trustpoint submode command, as declared -> (its TrustpointConfig field, the argument
    # that gives its value; None: the command sets True)
    "enrollment url <url>": ("enrollment_url", "url"),
    "enrollment terminal": ("terminal", None),
    "enrollment retry period <minutes>": ("retry_period", "minutes"),
    "enrollment retry count <count>": ("retry_count", "count"),
    "query url <url>": ("query_url", "url"),
    "rsakeypair <label>": ("key_label", "label"),
    "subject-name <dn>": ("subject_name", "dn"),
    "ip-address <address>": ("ip_address", "address"),
    "serial-number": ("serial_number", None),
    "crl optional": ("crl_optional", None),
    "message-digest {digest: md5 | sha1 | sha256 | sha384 | sha512}": ("message_digest",
                                                                        "digest"),
    "description <text>": ("description", "text"),
    "auto-enroll <percent>": ("auto_enroll", "percent"),
    "renewal-message-type {type: pkcsreq | renewalreq}": ("renewal_message_type", "type"),
}
"""Every command of the trustpoint submode (a test checks the list against the grammar)."""


def parse_trustpoint_config(config: ConfigTree, name: str) -> TrustpointConfig | None:
    """Read a trustpoint's configuration from a running configuration (the fold's reader)."""
    node = config.node((trustpoint_key(name),))
    if node is None:
        return None
    values: dict[str, Any] = {}
    for child in node.children.values():
        try:
            m = parse(GRAMMAR, Mode.TRUSTP, child.line)
        except TrustledgerError:  # a line an older build accepted (e.g. an ftp:// url): unused
            continue
        if m is None:
            continue
        field_arg = CONFIG_FIELDS.get(m.command.name)
        if field_arg is not None:
            values[field_arg[0]] = True if field_arg[1] is None else m.args[field_arg[1]]
    return TrustpointConfig(name, **values)


def trustpoint_names(state: DeviceState) -> list[str]:
    prefix = "crypto ca trustpoint "
    return [k[len(prefix):] for k in state.config.roots if k.startswith(prefix)]


# -- status ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouterCertificate:
    """A router certificate installed on a trustpoint, for one key pair and usage."""

    key_id: str
    usage: str  # "general" | "signature" | "encryption"
    der: bytes
    installed_at: int
    revoked_at: int | None = None  # µs, the CRL entry's date, once a CRL lists it
    revocation_reason: str = ""


def usable_certificates(st: TrustpointStatus) -> tuple[RouterCertificate, ...]:
    """The router certificates no CRL has listed."""
    return tuple(c for c in st.certificates if c.revoked_at is None)


@dataclass(frozen=True, slots=True)
class Enrollment:
    """An enrollment in flight (SCEP PENDING, or a cut-and-paste request awaiting import)."""

    key_ids: tuple[str, ...]
    usages: tuple[str, ...]
    transaction_ids: tuple[str, ...]
    subject: str
    fingerprints: tuple[str, ...]
    method: str
    retry_period: int
    retry_count: int
    requested_at: int
    polls: int = 0
    next_poll_at: int = 0
    received: tuple[str, ...] = ()  # key ids whose certificate is already in


@dataclass(frozen=True, slots=True)
class RenewalState:
    """The trustpoint's automatic renewal (engine/renewal/): the attempt in flight, or how
    the last one ended. `phase` is the renewal machine's (engine/machines/renewal.py)."""

    phase: RenewalPhase
    purpose: str  # "renew" | "shadow"
    started_at: int  # µs: the first attempt of this renewal
    attempts: int  # requests sent in this renewal
    last_attempt_at: int
    last_result: str  # "" while the first answer is awaited; "issued", "held", "pending", why
    subject: str = ""  # RFC 4514, as requested (CertPoll names it)
    next_attempt_at: int = 0  # µs: the retry of a failed attempt (phase retrying)
    key_ids: tuple[str, ...] = ()
    transaction_ids: tuple[str, ...] = ()
    retry_period: int = 1  # minutes, as the trustpoint had it when the attempt was made
    retry_count: int = 1
    polls: int = 0  # CertPolls of the attempt in flight
    next_poll_at: int = 0  # µs (phase pending)
    received: tuple[str, ...] = ()  # key ids whose renewed certificate is in
    failures: int = 0  # consecutive failed attempts: the retry's back-off (renewal/schedule.py)


@dataclass(frozen=True, slots=True)
class RolloverState:
    """The trustpoint's CA rollover (engine/rollover/): GetNextCACert's failed attempts, the
    CA's answer that it offers none, or when the shadow CA certificate was accepted."""

    not_offered_at: int = 0  # µs: GetCACaps lacked GetNextCACert, said (re-checked daily)
    attempts: int = 0  # failed GetNextCACert attempts
    last_result: str = ""  # why the last one failed
    next_attempt_at: int = 0  # µs: the retry of a failed attempt, or the next re-check
    shadow_accepted_at: int = 0  # µs: when the shadow CA certificate was accepted


@dataclass(frozen=True, slots=True)
class TrustpointStatus:
    """What the log says of a trustpoint: CA, certificates, enrollment, renewal, rollover."""

    name: str
    lifecycle: Lifecycle = Lifecycle.DECLARED
    ca_certificate: bytes | None = None
    ra_certificates: tuple[bytes, ...] = ()
    capabilities: tuple[str, ...] = ()
    ca_source: str = ""
    certificates: tuple[RouterCertificate, ...] = ()
    enrollment: Enrollment | None = None
    last_result: str = ""  # what the last enrollment ended with, for `show crypto ca trustpoint`
    # Transaction IDs the CA answered PENDING: it holds those requests, so a FAILURE for one
    # later is its decision on that request (a rejection), not a check of the new message.
    # A fact about one CA: emptied when the trustpoint may talk to another one (a CA
    # certificate accepted, the enrollment URL or method changed); gone with the trustpoint.
    held_by_ca: tuple[str, ...] = ()
    renewal: RenewalState | None = None  # None: this certificate was never renewed
    # Renewed certificates whose validity has not begun: each replaces the current one of
    # its usage at its notBefore.
    next_certificates: tuple[RouterCertificate, ...] = ()
    # CA rollover (engine/rollover/): the CA's next certificate, and router certificates
    # under it, both current when the old CA certificate expires.
    shadow_ca_certificate: bytes | None = None
    shadow_certificates: tuple[RouterCertificate, ...] = ()
    rollover: RolloverState | None = None  # CA rollover in progress (engine/rollover/)
    # Expiry notifications: (certificate type and serial, e.g. "CA 01", time of the last one).
    expiry_alerts: tuple[tuple[str, int], ...] = ()
    # The CRL refresh timer's record (engine/revocation/refresh.py): when the trustpoint last
    # fetched a CRL, and how many fetches in a row gave no fresh one.
    crl_fetched_at: int = 0
    crl_failures: int = 0


def status_of(state: DeviceState, name: str) -> TrustpointStatus:
    return state.trustpoints.get(name) or TrustpointStatus(name)


def _after(ev: Any, st: TrustpointStatus) -> Lifecycle:
    """The lifecycle `ev` leads `st` to: the table's destination for the event's trigger."""
    trigger = trigger_of(ev, st)
    return st.lifecycle if trigger is None else LIFECYCLE.destination(st.lifecycle, trigger)


def put_status(state: DeviceState, status: TrustpointStatus) -> DeviceState:
    """`state` with `status` as its trustpoint's (every feature's trustpoint folds use it)."""
    tps = dict(state.trustpoints)
    tps[status.name] = status
    return with_state(state, trustpoints=MappingProxyType(tps))


_put = put_status  # this module's folds

_ORDER = {"general": 0, "signature": 1, "encryption": 2}


def with_certificate(certs: tuple[RouterCertificate, ...], cert: RouterCertificate
                     ) -> tuple[RouterCertificate, ...]:
    """`certs` with `cert` in place of the one of its usage, in usage order."""
    kept = [c for c in certs if c.usage != cert.usage]
    kept.append(cert)
    kept.sort(key=lambda c: _ORDER.get(c.usage, 3))
    return tuple(kept)


def _ca_accepted(state: DeviceState, ev: CACertificateAccepted, at: int) -> DeviceState:
    st = status_of(state, ev.trustpoint)
    return _put(state, replace(st, lifecycle=_after(ev, st),
                               ca_certificate=ev.ca_certificate,
                               ra_certificates=ev.ra_certificates,
                               capabilities=ev.capabilities, ca_source=ev.source,
                               held_by_ca=()))


def _requested(state: DeviceState, ev: EnrollmentRequested, at: int) -> DeviceState:
    enrollment = Enrollment(ev.key_ids, ev.usages, ev.transaction_ids, ev.subject,
                            ev.request_fingerprints, ev.method, ev.retry_period,
                            ev.retry_count, at)
    st = status_of(state, ev.trustpoint)
    return _put(state, replace(st, lifecycle=_after(ev, st), enrollment=enrollment,
                               last_result=""))


def _pending(state: DeviceState, ev: EnrollmentPending, at: int) -> DeviceState:
    st = status_of(state, ev.trustpoint)
    if st.enrollment is None:
        return state
    enrollment = replace(st.enrollment, polls=ev.polls, next_poll_at=ev.next_poll_at)
    held = st.held_by_ca if ev.transaction_id in st.held_by_ca else (*st.held_by_ca,
                                                                      ev.transaction_id)
    return _put(state, replace(st, lifecycle=_after(ev, st), enrollment=enrollment,
                               last_result="pending", held_by_ca=held))


def _received(state: DeviceState, ev: CertificateReceived, at: int) -> DeviceState:
    st = status_of(state, ev.trustpoint)
    certs = [c for c in st.certificates if c.usage != ev.usage]
    certs.append(RouterCertificate(ev.key_id, ev.usage, ev.certificate, at))
    lifecycle = _after(ev, st)
    enrollment = st.enrollment
    if lifecycle is Lifecycle.ENROLLED:
        enrollment = None
    elif enrollment is not None:
        enrollment = replace(enrollment, received=(*enrollment.received, ev.key_id))
    order = {"general": 0, "signature": 1, "encryption": 2}
    certs.sort(key=lambda c: order.get(c.usage, 3))
    return _put(state, replace(st, certificates=tuple(certs), enrollment=enrollment,
                               lifecycle=lifecycle,
                               last_result="issued" if enrollment is None else st.last_result))


def _failed(state: DeviceState, ev: EnrollmentFailed, at: int) -> DeviceState:
    st = status_of(state, ev.trustpoint)
    # A failed re-enrollment leaves the certificates already installed in place.
    result = ev.reason + (f" ({ev.fail_info})" if ev.fail_info else "")
    return _put(state, replace(st, lifecycle=_after(ev, st), enrollment=None,
                               last_result=result))


def _revoked(state: DeviceState, ev: RouterCertificateRevoked, at: int) -> DeviceState:
    """The key pair's certificate is marked revoked; the trustpoint follows `revoke`."""
    st = status_of(state, ev.trustpoint)
    certs = tuple(replace(c, revoked_at=ev.revoked_at, revocation_reason=ev.reason)
                  if c.key_id == ev.key_id else c for c in st.certificates)
    return _put(state, replace(st, lifecycle=_after(ev, st), certificates=certs))


def _crl_fetched(state: DeviceState, ev: CrlFetched, at: int) -> DeviceState:
    """A fetch for the trustpoint gave a CRL: fresh (its nextUpdate ahead) or not."""
    st = state.trustpoints.get(ev.trustpoint or "")
    if st is None:
        return state
    fresh = ev.next_update is not None and ev.next_update > at
    return _put(state, replace(st, crl_fetched_at=at,
                               crl_failures=0 if fresh else st.crl_failures + 1))


def _crl_failed(state: DeviceState, ev: CrlFetchFailed, at: int) -> DeviceState:
    st = state.trustpoints.get(ev.trustpoint or "")
    if st is None:
        return state
    return _put(state, replace(st, crl_fetched_at=at, crl_failures=st.crl_failures + 1))


def _zeroized(state: DeviceState, ev: KeyPairZeroized, at: int) -> DeviceState:
    gone = set(ev.key_ids)
    for st in list(state.trustpoints.values()):
        trigger = trigger_of(ev, st)
        if trigger is None:
            continue
        in_flight = st.enrollment is not None and bool(gone & set(st.enrollment.key_ids))
        kept = tuple(c for c in st.certificates if c.key_id not in gone)
        # A re-enrollment that lost its key: as when it fails, the installed certificates stay.
        lifecycle = LIFECYCLE.destination(st.lifecycle, trigger)
        state = _put(state, replace(st, certificates=kept, lifecycle=lifecycle,
                                    enrollment=None if in_flight else st.enrollment,
                                    last_result="key zeroized" if in_flight else st.last_result))
    return state


_TRUSTPOINT = "crypto ca trustpoint "
_ENROLLMENT = "enrollment"  # the node of `enrollment url URL` and `enrollment terminal`


def _configs(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    """The typed configuration of each trustpoint the commit touched, read once from the new
    running configuration (the running configuration is already folded: engine.state)."""
    touched = {path[0][len(_TRUSTPOINT):] for path, _old, _new in ev.changes
               if path[0].startswith(_TRUSTPOINT)}
    if not touched:
        return state
    configs = dict(state.trustpoint_configs)
    for name in touched:
        cfg = parse_trustpoint_config(state.config, name)
        if cfg is None:
            configs.pop(name, None)
        else:
            configs[name] = cfg
    return with_state(state, trustpoint_configs=MappingProxyType(configs))


def touching(commits: Sequence[Iterable[WireChange]]) -> list[int]:
    """The indexes, in order, of the commits (given by their changes) that change a
    trustpoint's lines: `_configs` and `_config` change nothing for any other (replay folds
    a run of commits and runs them only for these; one call a run, not one a commit). A run
    is first screened in C (every change's top-level line, joined; no Python step per
    change): most runs touch no trustpoint, and the screen never misses one that does."""
    tops = "\n" + "\n".join(map(_first, map(_first, chain.from_iterable(commits))))
    if "\n" + _TRUSTPOINT not in tops:
        return []
    return sorted({i for i, changes in enumerate(commits) for path, _old, _new in changes
                   if path[0].startswith(_TRUSTPOINT)})


_first = itemgetter(0)


def _config(state: DeviceState, ev: ConfigurationCommitted, at: int) -> DeviceState:
    """A removed trustpoint loses its status; one whose enrollment URL or method changed
    forgets the requests its CA held (the new URL may be another CA, which holds none)."""
    if not state.trustpoints:
        return state
    removed: set[str] = set()
    elsewhere: set[str] = set()
    for path, _old, new in ev.changes:
        if not path[0].startswith(_TRUSTPOINT):
            continue
        if len(path) == 1 and new is None:
            removed.add(path[0][len(_TRUSTPOINT):])
        elif len(path) == 2 and path[1] == _ENROLLMENT:
            elsewhere.add(path[0][len(_TRUSTPOINT):])
    if not removed and not elsewhere:
        return state
    kept = {k: replace(v, held_by_ca=()) if k in elsewhere and v.held_by_ca else v
            for k, v in state.trustpoints.items() if k not in removed}
    return with_state(state, trustpoints=MappingProxyType(kept))


def _certificates_removed(state: DeviceState, ev: TrustpointCertificatesRemoved,
                          at: int) -> DeviceState:
    kept = {k: v for k, v in state.trustpoints.items() if k != ev.trustpoint}
    return with_state(state, trustpoints=MappingProxyType(kept))


