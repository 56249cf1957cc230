"""One renewal attempt, and the polls of a renewal the CA holds.

A renewal is an enrollment with what the trustpoint already has: its current key pairs (IOS
XR has no `regenerate`), the identity it requests (engine.commands.trustpoint `identity`: the
same subject and subjectAltNames as the current certificate unless the configuration changed
since), each request signed by the current certificate of its key pair, as a PKCSReq or, with
`renewal-message-type renewalreq`, an RFC 8894 RenewalReq. No challenge password: nobody is
at the keyboard, and the signature of a certificate the CA issued is what authorizes it. What
each CA needs for that:
- the built-in CA renews a request signed by a current certificate it issued, for the same
  subject and subjectAltNames, once per certificate (PKCSReq or RenewalReq alike);
- micromdm's scepserver checks the challenge even in a RenewalReq: automatic renewal works
  against one started without `-challenge`, and its duplicate-subject rule needs the current
  certificate to expire within `-allowrenew` days (0: always).

An attempt never moves the trustpoint's lifecycle (it stays enrolled, with its certificate in
use); every outcome is an event of events/renewal.py. Anything that goes wrong (the CA
unreachable or refusing, a reply we cannot accept, a key pair gone) ends the attempt as
`RenewalFailed` with the next attempt after a wait that backs off (schedule.py `retry_wait`,
from the consecutive failures the status holds); nothing is raised past here,
so a job never stays due and reruns at once.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.commands.trustpoint import explain_failure, fail_name, identity
from engine.effects import Effect, Outcome
from engine.errors import TrustledgerError
from engine.keys import KeyPair
from engine.machines.renewal import RenewalPhase
from engine.messages import plural
from engine.pki import bad, check_issued_for, load_certificate
from engine.ports import from_micros, to_micros
from engine.renewal import messages
from engine.renewal.messages import certificate_facts
from engine.renewal.schedule import expiry, failures_so_far, retry_at
from engine.scep import PkiStatus
from engine.state import DeviceState
from engine.trustpoints import RouterCertificate, TrustpointConfig, TrustpointStatus, status_of
from events.renewal import (
    RenewalCertificateReceived,
    RenewalFailed,
    RenewalPending,
    RenewalRequested,
)

if TYPE_CHECKING:
    from cryptography import x509

    from engine.scep_client import CAView, ScepReply

MINUTE = 60_000_000


def renewal_exchange(state: DeviceState, trustpoint: str, now: int,
                     ca_certificate: bytes | None = None,
                     purpose: str = "renew") -> Generator[Effect, Any, Outcome]:
    """One attempt: a request per current key pair, signed by its current certificate, to
    the trustpoint's CA (or to `ca_certificate`, the CA's next certificate, for a shadow
    router certificate: `purpose="shadow"`); the answers become events."""
    from engine.scep_client import ScepEnroll

    cfg = state.trustpoint_configs.get(trustpoint)
    status = status_of(state, trustpoint)
    if cfg is None or not status.certificates or status.ca_certificate is None:
        return Outcome()
    current = status.certificates
    requested = RenewalRequested(trustpoint, purpose, tuple(c.key_id for c in current),
                                 tuple(c.usage for c in current), (), "",
                                 cfg.renewal_message_type, cfg.retry_period, cfg.retry_count)
    retry = retry_at(now, cfg.retry_period, failures_so_far(status.renewal),
                     expiry(status) if purpose == "renew" else None)
    try:
        pairs = _pairs(state, current)
        url = _url(cfg)
        who = identity(state, cfg)
        requested = replace(requested, subject=who.subject)
        ca_der = ca_certificate or status.ca_certificate
        view = _ca_view(status, ca_certificate)
        replies = []
        for pair, cert in zip(pairs, current, strict=True):
            replies.append((yield ScepEnroll(url, pair, who, view, "", cfg.message_digest,
                                             cert.der, cfg.renewal_message_type
                                             == "renewalreq")))
        requested = replace(requested,
                            transaction_ids=tuple(r.transaction_id for r in replies))
        answers = _answers(cfg, purpose, ca_der, pairs, replies, 0,
                           (now, now + cfg.retry_period * MINUTE, retry), _windows(status, purpose))
    except TrustledgerError as err:
        answers = [RenewalFailed(trustpoint, purpose, "", "peer", "", err.text, retry)]
    return messages.said([requested, *answers], now)


def renewal_poll(state: DeviceState, trustpoint: str,
                 now: int) -> Generator[Effect, Any, Outcome]:
    """One CertPoll round (RFC 8894 §3.3.3) for every key pair of a PENDING renewal still
    waiting; past the retry count, the attempt has failed (retried after the back-off's wait)."""
    from engine.scep_client import Identity, ScepPoll

    cfg = state.trustpoint_configs.get(trustpoint)
    status = status_of(state, trustpoint)
    r = status.renewal
    if cfg is None or r is None or r.phase is not RenewalPhase.PENDING:
        return Outcome()
    polls = r.polls + 1
    poll_at = now + r.retry_period * MINUTE
    retry = retry_at(now, r.retry_period, r.failures,
                     expiry(status) if r.purpose == "renew" and status.certificates else None)
    waiting = [(k, t) for k, t in zip(r.key_ids, r.transaction_ids, strict=True)
               if k not in r.received]
    txid = waiting[0][1] if waiting else ""
    ca_der = status.shadow_ca_certificate if r.purpose == "shadow" else status.ca_certificate
    try:
        if ca_der is None:
            raise bad("The CA certificate the request went to is gone.")
        pairs = tuple(_pair(state, k) for k, _ in waiting)
        url = _url(cfg)
        view = _ca_view(status, ca_der if r.purpose == "shadow" else None)
        replies = []
        for pair, (_, t) in zip(pairs, waiting, strict=True):
            replies.append((yield ScepPoll(url, pair, Identity(r.subject), view, t,
                                           cfg.message_digest)))
        events = _answers(cfg, r.purpose, ca_der, pairs, replies, polls,
                          (now, poll_at, retry), _windows(status, r.purpose))
    except TrustledgerError as err:
        if polls >= r.retry_count:
            events = [RenewalFailed(trustpoint, r.purpose, txid, "timeout", "",
                                    f"{plural(polls, 'poll')}, the last one failed: "
                                    f"{err.text}", retry)]
        else:
            events = [RenewalPending(trustpoint, r.purpose, txid, polls, poll_at, err.text)]
        return messages.said(events, now)
    if polls >= r.retry_count and any(isinstance(e, RenewalPending) for e in events):
        events = [e for e in events if not isinstance(e, RenewalPending)]
        events.append(RenewalFailed(trustpoint, r.purpose, txid, "timeout", "",
                                    f"no certificate after {plural(polls, 'poll')}",
                                    retry))
    return messages.said(events, now)


# -- answers -> events -------------------------------------------------------------------------


def _answers(cfg: TrustpointConfig, purpose: str, ca_der: bytes, pairs: tuple[KeyPair, ...],
             replies: list[ScepReply], polls: int,
             times: tuple[int, int, int], windows: Mapping[str, Window]) -> list[Any]:
    """Events for a round of CA answers: certificates (checked first: ours, from that CA, not
    expired, in its window: `windows`, by key id; one whose validity begins later is held),
    PENDING (polled at `poll_at`), or the first FAILURE (retried at `retry_at`); `times` is
    (now, poll_at, retry_at)."""
    name = cfg.name
    now, poll_at, retry_at = times
    events: list[Any] = []
    for pair, reply in zip(pairs, replies, strict=True):
        if reply.status is PkiStatus.SUCCESS:
            der, not_before = _checked(reply.certificate, pair, ca_der, now,
                                       windows.get(pair.key_id))
            events.append(RenewalCertificateReceived(name, purpose, pair.key_id,
                                                     pair.usage.value, der,
                                                     reply.transaction_id, not_before))
        elif reply.status is PkiStatus.FAILURE:
            text = "".join(c if c.isprintable() else "?" for c in (reply.fail_info_text or ""))
            why = explain_failure(reply.fail_info) + (
                f"; the CA says: {text.strip().rstrip('.')[:200]}" if text.strip() else "")
            return [*events, RenewalFailed(name, purpose, reply.transaction_id, "failure",
                                           fail_name(reply.fail_info), why, retry_at)]
    pending = [r for r in replies if r.status is PkiStatus.PENDING]
    if pending:
        events.append(RenewalPending(name, purpose, pending[0].transaction_id, polls,
                                     poll_at))
    return events


def _checked(der: bytes | None, pair: KeyPair, ca_der: bytes, now: int,
             window: Window | None) -> tuple[bytes, int]:
    """(DER, notBefore µs) of a renewed certificate we accept: for this key pair, issued by
    the CA, an end-entity certificate, valid at some time and not expired, and in its
    `window` (`_windows`). Its notBefore may be later than now (the CA dated it to follow
    the current one): then it is held, not refused."""
    if der is None:
        raise bad("The CA answered SUCCESS without a certificate for our key.")
    cert = load_certificate(der)
    check_issued_for(cert, pair.public_key, ca_der, "renewed certificate")
    if now > to_micros(cert.not_valid_after_utc):
        raise bad(f"The renewed certificate has expired "
                  f"({cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC).")
    if window is not None:
        _check_window(cert, window)
    return der, to_micros(cert.not_valid_before_utc)


class Window(NamedTuple):
    """When a received certificate must be valid: beginning by `starts_by` (µs), and, for a
    shadow certificate, still valid after `lasts_past` (µs: the CA switch)."""

    starts_by: int
    lasts_past: int | None


def _check_window(cert: x509.Certificate, window: Window) -> None:
    """A renewed certificate that begins after the one it renews ends would be held, which
    stops the renewals, and leave the router without a valid certificate between the two; a
    shadow certificate is installed at the CA switch whatever its dates, so it must be valid
    then. Either is a failed attempt, retried."""
    begins, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
    at = from_micros(window.starts_by)
    # RFC 5280 §4.1.2.5: a certificate is valid through its notAfter second, so a successor
    # that begins the second after leaves no gap (a CA may date it so).
    starts_by = window.starts_by + 1_000_000
    if window.lasts_past is None:
        if to_micros(begins) > starts_by:
            raise bad(f"The renewed certificate begins after the current certificate ends "
                      f"(valid from {begins:%Y-%m-%d %H:%M:%S} UTC, the current one ends "
                      f"{at:%Y-%m-%d %H:%M:%S} UTC): the router would be left without a "
                      "valid certificate.")
        return
    if not (to_micros(begins) <= starts_by and window.starts_by < to_micros(ends)):
        raise bad(f"The shadow certificate is not valid when the CA's next certificate takes "
                  f"over (valid {begins:%Y-%m-%d %H:%M:%S} to {ends:%Y-%m-%d %H:%M:%S} UTC, "
                  f"the switch at {at:%Y-%m-%d %H:%M:%S} UTC): it would be installed then.")


def _windows(status: TrustpointStatus, purpose: str) -> dict[str, Window]:
    """By key id, the window of each certificate an attempt may receive: a renewal's must
    begin by the end of the current certificate of its key; a shadow certificate must be
    valid at the switch (the current CA certificate's end)."""
    if purpose == "renew":
        return {c.key_id: Window(certificate_facts(c.der)[1], None)
                for c in status.certificates}
    if status.ca_certificate is None:
        return {}
    switch = certificate_facts(status.ca_certificate)[1]
    return {c.key_id: Window(switch, switch) for c in status.certificates}


# -- what an attempt needs -----------------------------------------------------------------------


def _pairs(state: DeviceState, current: tuple[RouterCertificate, ...]) -> tuple[KeyPair, ...]:
    return tuple(_pair(state, c.key_id) for c in current)


def _pair(state: DeviceState, key_id: str) -> KeyPair:
    pair = state.keys.by_key_id(key_id)
    if pair is None:
        raise bad("The key pair of the current certificate was removed.")
    return pair


def _url(cfg: TrustpointConfig) -> str:
    if cfg.scep_url is None:
        raise bad(f"Trustpoint {cfg.name} has no enrollment url: a renewal needs SCEP.")
    return cfg.scep_url


def _ca_view(status: TrustpointStatus, ca_certificate: bytes | None) -> CAView:
    """The CA as the request sees it: the trustpoint's (with its RA), or the next CA
    certificate alone."""
    from engine.scep_client import CAView

    assert status.ca_certificate is not None
    if ca_certificate is not None:
        return CAView(ca_certificate, (), status.capabilities)
    return CAView(status.ca_certificate, status.ra_certificates, status.capabilities)

