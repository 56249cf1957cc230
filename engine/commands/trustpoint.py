"""Trustpoints: `crypto ca trustpoint` configuration, `crypto ca authenticate`, `crypto ca
enroll` (SCEP), `crypto ca cancel-enroll`, and the certificate `show` commands.

Every exec command first fires its trigger through the lifecycle machine
(engine/machines/trustpoint.py); one it does not take gets a `%` error and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from engine.certids import ios_name, md5_words, sha256_hex
from engine.commands.keys import LABEL as KEY_LABEL
from engine.destruction import confirm
from engine.effects import Ask, Effect, Outcome, ReadBlock, Say
from engine.errors import OperatorError, PeerReason, Reason, ScepFailure, TrustledgerError
from engine.grammar import (
    DESCRIPTION,
    ENROLLMENT_URL,
    GRAMMAR,
    IP_ADDRESS,
    LDAP_URL,
    LINE,
    WORD,
    ArgKind,
    ArgRefused,
    ArgSpec,
    Mode,
    int_range,
)
from engine.keys import KeyAlgorithm, KeyPair
from engine.machines import trustpoint as lifecycle
from engine.machines.trustpoint import Lifecycle
from engine.messages import certret, enrollment_failure, failure_message, plural, poll_failed
from engine.scep import FailInfo, PkiStatus
from engine.schedule import Job
from engine.state import DeviceState
from engine.trustpoints import (
    TrustpointConfig,
    TrustpointStatus,
    status_of,
    trustpoint_config,
    trustpoint_names,
    usable_certificates,
)

if TYPE_CHECKING:
    from engine.context import Ctx
    from engine.scep_client import CAView, Identity, ScepReply
    from events.trustpoint import (
        EnrollmentFailed,
    )

# The SCEP client (engine.scep_client: its effects, their performers, httpx) is imported by
# the handlers that talk to a CA, when they run: a `show` never loads it.

G = GRAMMAR
TP = Mode.TRUSTP
NAME = ArgSpec(WORD, "Trustpoint name", source="trustpoint")

G.describe({
    "ca": "Certification authority",
    "trustpoint": "Define a CA trustpoint",
    "authenticate": "Get the certification authority certificate",
    "enroll": "Request a certificate from a CA",
    "cancel-enroll": "Cancel a pending enrollment request",
    "certificates": "Show certificates of trustpoints",
    "enrollment": "Enrollment parameters",
    "url": "CA server enrollment URL",
    "retry": "Polling parameters",
    "period": "Minutes between polls of a pending request",
    "count": "Polls before giving up",
    "query": "Query parameters",
    "rsakeypair": "RSA key pair for this trustpoint",
    "subject-name": "Subject name in the certificate request",
    "ip-address": "IP address in the certificate request",
    "serial-number": "Include the device serial number in the certificate request",
    "crl": "Certificate revocation list options",
    "optional": "Accept certificates when no CRL can be had",
    "message-digest": "Digest algorithm of the certificate request",
    "description": "Trustpoint description",
})

# -- configuration --------------------------------------------------------------------------------

def _generable(label: str) -> None:
    """`rsakeypair` names a key `crypto key generate rsa LABEL` can make: a label that command
    refuses would leave the trustpoint unable to enroll. A screen, not a parse: a line an
    older build accepted still replays."""
    try:
        KEY_LABEL.kind.parse(label)
    except ValueError:
        raise ArgRefused("A key pair label is 1 to 64 letters, digits, '_', '.' or '-', as "
                         "'crypto key generate rsa' takes it.") from None


KEYPAIR_LABEL = ArgKind("WORD", str, screen=_generable)

G.config("crypto ca trustpoint <name>", key="crypto ca trustpoint {name}", enters=TP,
         help="Define a CA trustpoint", args={"name": NAME})
G.config("enrollment url <url>", key="enrollment", mode=TP, help="CA server enrollment URL",
         args={"url": ArgSpec(ENROLLMENT_URL, "http://host[:port][/path] or https://...")})
G.config("enrollment terminal", key="enrollment", mode=TP,
         help="Enroll by cut-and-paste at the terminal")
G.config("enrollment retry period <minutes>", key="enrollment retry period", mode=TP,
         help="Minutes between polls of a pending request",
         args={"minutes": ArgSpec(int_range(1, 60), "Minutes (default 1)")})
G.config("enrollment retry count <count>", key="enrollment retry count", mode=TP,
         help="Polls before giving up",
         args={"count": ArgSpec(int_range(1, 100), "Number of polls (default 10)")})
G.config("query url <url>", key="query url", mode=TP, help="LDAP URL of the CA's directory",
         args={"url": ArgSpec(LDAP_URL, "ldap://host[:port]/dn")})
G.config("rsakeypair <label>", key="rsakeypair", mode=TP, help="RSA key pair for this trustpoint",
         args={"label": ArgSpec(KEYPAIR_LABEL, "Key pair label", source="rsa")})
G.config("subject-name <dn>", key="subject-name", mode=TP,
         help="Subject name in the certificate request",
         args={"dn": ArgSpec(LINE, "X.500 distinguished name, e.g. CN=r1,O=Example")})
G.config("ip-address <address>", key="ip-address", mode=TP,
         help="IP address in the certificate request",
         args={"address": ArgSpec(IP_ADDRESS, "Address")})
G.config("serial-number", key="serial-number", mode=TP,
         help="Include the device serial number in the certificate request")
G.config("crl optional", key="crl optional", mode=TP,
         help="Accept certificates when no CRL can be had")
G.config("message-digest {digest: md5 | sha1 | sha256 | sha384 | sha512}", key="message-digest",
         mode=TP, help="Digest algorithm of the certificate request",
         words={"md5": "MD5 (weak)", "sha1": "SHA-1",
                "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"})
G.config("description <text>", key="description", mode=TP, help="Trustpoint description",
         args={"text": ArgSpec(DESCRIPTION, "Up to 80 characters")})


# -- helpers --------------------------------------------------------------------------------------


def _configured(state: DeviceState, name: str) -> TrustpointConfig:
    cfg = trustpoint_config(state, name)
    if cfg is None:
        raise OperatorError(Reason.NOT_FOUND, f"Trustpoint {name} is not configured.")
    return cfg


def _legal(status: TrustpointStatus, triggers: tuple[str, ...], message: str) -> str:
    """The trigger the lifecycle machine takes for this command (the first of `triggers` it
    allows, guards checked), or the `%` refusal."""
    taken = lifecycle.fire(status, *triggers)
    if taken is None:
        raise OperatorError(Reason.NOT_ALLOWED, message)
    return taken[0]




# -- crypto ca authenticate -----------------------------------------------------------------------


PASTE_CA = ("Enter the base 64 encoded CA certificate.\n"
            "End with a blank line or the word \"quit\" on a line by itself\n")


@G.action("crypto ca authenticate <name>", help="Get the certification authority certificate",
          args={"name": NAME})
def authenticate(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    from engine.views.state import CACertificateOffered
    from events.trustpoint import CACertificateAccepted, CACertificateRefused

    name = ctx.args["name"]
    cfg = _configured(ctx.state, name)
    status = status_of(ctx.state, name)
    _legal(status, ("authenticate",),
           f"Trustpoint {name} already has an authenticated CA certificate. Remove the "
           "trustpoint (no crypto ca trustpoint) to authenticate another CA.")
    from engine.pki import check_ca_certificate, check_ca_signature, decode_pasted, load_certificate
    from engine.scep_client import CAFetched, FetchCA

    if cfg.terminal:
        pasted = yield ReadBlock(PASTE_CA)
        fetched = CAFetched(decode_pasted(pasted, "CA certificate"), (), ())
        source = "terminal"
    elif cfg.scep_url is not None:
        fetched = yield FetchCA(cfg.scep_url)
        source = "scep"
    else:
        raise OperatorError(Reason.NOT_ALLOWED,
                           f"Trustpoint {name} has no enrollment method: configure "
                           "'enrollment url' or 'enrollment terminal'.")
    ca = load_certificate(fetched.ca_certificate, "CA certificate")
    check_ca_certificate(ca, ctx.now)
    check_ca_signature(ca, [load_certificate(c, "CA chain certificate") for c in fetched.chain])
    yield Say(CACertificateOffered(fetched.ca_certificate))
    if not (yield from confirm("Do you accept this certificate?? [yes/no]:")):
        return Outcome(events=[CACertificateRefused(name, sha256_hex(fetched.ca_certificate),
                                                    ios_name(ca.subject))],
                       output="% Certificate not accepted: nothing was stored.")
    return Outcome(events=[CACertificateAccepted(name, fetched.ca_certificate,
                                                 fetched.ra_certificates,
                                                 fetched.capabilities, source)])


# -- crypto ca enroll -----------------------------------------------------------------------------


START = """\
% Start certificate enrollment ...
% Create a challenge password. You will need to verbally provide this
password to the CA Administrator in order to revoke your certificate.
% For security reasons your password will not be saved in the configuration.
% Please make a note of it.
"""


def key_pairs(state: DeviceState, cfg: TrustpointConfig) -> tuple[KeyPair, ...]:
    pairs = state.keys.pairs_of(KeyAlgorithm.RSA, cfg.key_label)
    if not pairs:
        raise OperatorError(Reason.NOT_FOUND,
                           f"RSA key pair {cfg.key_label} not found. Generate it with "
                           f"'crypto key generate rsa"
                           f"{'' if cfg.key_label == 'the_default' else ' ' + cfg.key_label}'.")
    return pairs


def identity(state: DeviceState, cfg: TrustpointConfig) -> Identity:
    """The request subject: unstructuredName=<hostname>.<domain> plus what the trustpoint adds
    (subject-name, serial-number, ip-address); the FQDN also goes in a dNSName."""
    from engine.scep_client import Identity

    fqdn = state.hostname + (f".{state.domain}" if state.domain else "")
    parts = [f"unstructuredName={fqdn}"]
    if cfg.ip_address:
        parts.append(f"unstructuredAddress={cfg.ip_address}")
    if cfg.serial_number:
        parts.append(f"serialNumber={_serial_of(state)}")
    extra = cfg.subject_name
    if extra:
        from cryptography import x509

        try:
            x509.Name.from_rfc4514_string(extra)
        except ValueError as e:
            raise OperatorError(Reason.INVALID_VALUE,
                               f"subject-name {extra!r} is not a distinguished name.") from e
        parts.append(extra)
    return Identity(",".join(parts), (fqdn,),
                    (cfg.ip_address,) if cfg.ip_address else ())


def _serial_of(state: DeviceState) -> str:
    import hashlib

    return hashlib.sha256(state.hostname.encode()).hexdigest()[:11].upper()


def ca_view(status: TrustpointStatus) -> CAView:
    from engine.scep_client import CAView

    assert status.ca_certificate is not None
    return CAView(status.ca_certificate, status.ra_certificates, status.capabilities)


def _password() -> Generator[Effect, Any, str]:
    for _ in range(3):
        first = yield Ask("Password:", secret=True)
        again = yield Ask("Re-enter Password:", secret=True)
        if first != again:
            yield Say("% Passwords do not match.\n")
            continue
        if not first:
            yield Say("% The challenge password cannot be empty.\n")
            continue
        return str(first)
    raise OperatorError(Reason.CANCELLED, "Enrollment cancelled: no challenge password.")


_ENROLL_REFUSED = {
    Lifecycle.DECLARED: "The CA of trustpoint {name} is not authenticated. Use "
                        "'crypto ca authenticate {name}' first.",
    Lifecycle.ENROLLING: "An enrollment for trustpoint {name} is already in progress. "
                         "Use 'crypto ca cancel-enroll {name}' to stop it.",
}
"""Why `enroll` is refused, by the state the machine refused it in (the table allows it from
every other state)."""


@G.action("crypto ca enroll <name>", help="Request a certificate from a CA", args={"name": NAME})
def enroll(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    name = ctx.args["name"]
    cfg = _configured(ctx.state, name)
    status = status_of(ctx.state, name)
    _legal(status, ("enroll",), _ENROLL_REFUSED.get(
        status.lifecycle, "Trustpoint {name} cannot enroll now.").format(name=name))
    pairs = key_pairs(ctx.state, cfg)
    if status.certificates:
        yield Say(f"% Trustpoint {name} already has a router certificate.\n")
        if not (yield from confirm("Re-enroll to replace it? [yes/no]:")):
            return Outcome(output="% Enrollment cancelled.")
    if cfg.terminal:
        from engine.commands.paste import enroll_terminal

        done: Outcome = yield from enroll_terminal(ctx, cfg, status, pairs)
        return done
    if cfg.scep_url is None:
        raise OperatorError(Reason.NOT_ALLOWED,
                           f"Trustpoint {name} has no enrollment url.")
    from engine.scep_client import ScepEnroll, check_envelope_recipient

    check_envelope_recipient(ca_view(status), name)
    yield Say(START)
    challenge = yield from _password()
    who = identity(ctx.state, cfg)
    replies: list[ScepReply] = []
    # A renewal is signed with the installed certificate: never with one a CRL revoked.
    held = {c.key_id: c.der for c in usable_certificates(status)}
    for pair in pairs:
        replies.append((yield ScepEnroll(cfg.scep_url, pair, who, ca_view(status), challenge,
                                         cfg.message_digest, held.get(pair.key_id))))
    return _enrolled(ctx, cfg, status, pairs, who, replies)


def _enrolled(ctx: Ctx, cfg: TrustpointConfig, status: TrustpointStatus,
              pairs: tuple[KeyPair, ...], who: Identity, replies: list[ScepReply]) -> Outcome:
    """Turn the CA's answers into events: requested, then issued / pending / failed."""
    from events.trustpoint import EnrollmentFailed, EnrollmentRequested

    name = cfg.name
    fingerprints = tuple(md5_words(r.request_fingerprint) for r in replies)
    events: list[Any] = [EnrollmentRequested(
        name, tuple(p.key_id for p in pairs), tuple(p.usage.value for p in pairs),
        tuple(r.transaction_id for r in replies), who.subject, fingerprints, "scep",
        cfg.retry_period, cfg.retry_count)]
    lines = [f"  Fingerprint: {fp}" for fp in fingerprints]
    failure: ScepFailure | None = None
    out, pending = handle_replies(ctx.now, cfg, status, pairs, replies, 0,
                                  cfg.retry_period)
    events += out
    if any(isinstance(e, EnrollmentFailed) for e in out):
        failure = _refused(next(e for e in out if isinstance(e, EnrollmentFailed)))
        lines.append(failure.message)
    elif pending:
        lines.append(f"% Certificate request pending at the CA: polling every "
                     f"{plural(cfg.retry_period, 'minute')}, up to "
                     f"{plural(cfg.retry_count, 'time')}.")
    else:
        lines.append(certret(name))
    return Outcome(events=events, output="\n".join(lines), failure=failure)


def handle_replies(now: int, cfg: TrustpointConfig, status: TrustpointStatus,
                   pairs: tuple[KeyPair, ...], replies: list[ScepReply], polls: int,
                   retry_period: int) -> tuple[list[Any], bool]:
    """Events for a round of CA answers (enroll or poll). Certificates are checked before
    anything is accepted: ours, from the trustpoint's CA, valid now."""
    from engine.pki import bad, check_router_certificate
    from events.trustpoint import CertificateReceived, EnrollmentFailed, EnrollmentPending

    assert status.ca_certificate is not None
    events: list[Any] = []
    pending = False
    failed: list[Any] = []
    for pair, reply in zip(pairs, replies, strict=True):
        if reply.status is PkiStatus.SUCCESS:
            if reply.certificate is None:
                raise bad("The CA answered SUCCESS without a certificate for our key.")
            check_router_certificate(reply.certificate, pair.public_key,
                                     status.ca_certificate, now)
            events.append(CertificateReceived(cfg.name, pair.key_id, pair.usage.value,
                                              reply.certificate, reply.transaction_id))
        elif reply.status is PkiStatus.PENDING:
            pending = True
        elif not failed:
            failed.append(EnrollmentFailed(cfg.name, reply.transaction_id, "failure",
                                           fail_name(reply.fail_info),
                                           _why_refused(reply, pair, status, earlier=polls == 0)
                                           + _which(pairs, replies)))
    if failed:
        # A sibling request the CA did answer with a certificate (usage keys) is kept.
        return [*events, *failed], False
    if pending:
        txid = next(r.transaction_id for r in replies if r.status is PkiStatus.PENDING)
        events.append(EnrollmentPending(cfg.name, txid, polls,
                                        now + retry_period * 60_000_000))
    return events, pending


_FAIL_TEXT = {
    FailInfo.BAD_ALG: "the CA does not accept the algorithms of the request",
    FailInfo.BAD_MESSAGE_CHECK: "the CA could not verify the request's signature",
    FailInfo.BAD_REQUEST: "the CA refused the request (often a wrong or reused challenge "
                          "password)",
    FailInfo.BAD_TIME: "the request's signing time is too far from the CA's clock",
    FailInfo.BAD_CERT_ID: "the CA does not know the certificate the request refers to",
}


def fail_name(info: FailInfo | None) -> str:
    """The RFC's name of a failInfo as events record it ("" for none)."""
    return info.label if info is not None else ""


def explain_failure(info: FailInfo | None) -> str:
    return _FAIL_TEXT.get(info, "the CA gave no reason") if info is not None else \
        "the CA gave no reason"


def _refused(failed: EnrollmentFailed) -> ScepFailure:
    """An enrollment the CA refused: the failInfo, what it usually means and the CA's own
    failInfoText; with usage keys, which certificate was issued and which refused (a CA that
    allows one certificate per subject, as micromdm's default does, refuses the second). The
    same words as the ENROLL_FAILED message `show logging` keeps."""
    reason = PeerReason.TIMED_OUT if failed.reason == "timeout" else PeerReason.REFUSED
    info = next((i for i in FailInfo if i.label == failed.fail_info), None)
    return ScepFailure(reason, info,
                       enrollment_failure(failed.trustpoint, failed.fail_info, failed.detail))


def _which(pairs: tuple[KeyPair, ...], replies: list[ScepReply]) -> str:
    """"; the signature certificate was issued, the encryption certificate was refused" for
    usage keys, else ""."""
    if len(pairs) < 2:
        return ""
    return "; " + ", ".join(f"the {pair.usage.value} certificate was {_OUTCOME[reply.status]}"
                            for pair, reply in zip(pairs, replies, strict=True))


_OUTCOME = {PkiStatus.SUCCESS: "issued", PkiStatus.PENDING: "left pending",
            PkiStatus.FAILURE: "refused"}


def _why_refused(reply: ScepReply, pair: KeyPair, status: TrustpointStatus, *,
                 earlier: bool) -> str:
    """What a FAILURE means. For a request the CA held (it answered PENDING before), the
    FAILURE is the CA's decision on that request, whatever the new message carried: say so
    with the CA's own text, and what it takes to get a certificate."""
    if reply.transaction_id not in status.held_by_ca:
        text = _ca_text(reply)
        return explain_failure(reply.fail_info) + (f"; the CA says: {text}" if text else "")
    generate = "crypto key generate rsa" + ("" if pair.label == "the_default"
                                            else f" {pair.label}")  # enrollment is RSA only
    return (f"the CA rejected this request{' earlier' if earlier else ''} "
            f"({_ca_text(reply) or 'it gave no reason'}). A new key pair or the CA's approval "
            f"is needed: '{generate}' and enroll again, or ask the CA administrator to "
            "approve the request")


def _ca_text(reply: ScepReply) -> str:
    """The CA's failInfoText as we show it: control characters as '?', at most 200
    characters (it is the peer's text), without a closing full stop."""
    text = "".join(c if c.isprintable() else "?" for c in (reply.fail_info_text or ""))
    return text.strip().rstrip(".")[:200]


# -- crypto ca cancel-enroll ----------------------------------------------------------------------


@G.action("crypto ca cancel-enroll <name>", help="Cancel a pending enrollment request",
          args={"name": NAME})
def cancel_enroll(ctx: Ctx) -> Outcome:
    from events.trustpoint import EnrollmentFailed

    name = ctx.args["name"]
    _configured(ctx.state, name)
    status = status_of(ctx.state, name)
    _legal(status, ("cancel", "renewal_cancelled"),
           f"Trustpoint {name} has no enrollment in progress.")
    assert status.enrollment is not None
    txid = status.enrollment.transaction_ids[0] if status.enrollment.transaction_ids else ""
    return Outcome(events=[EnrollmentFailed(name, txid, "cancelled", "",
                                            "cancelled by the operator")],
                   output=f"% Enrollment request for trustpoint {name} cancelled.")


# -- show -----------------------------------------------------------------------------------------


@G.action("show crypto ca certificates [<name>]", help="Show certificates of trustpoints",
          args={"name": NAME})
def show_certificates(ctx: Ctx) -> Outcome:
    from engine.views.state import CertificatesView

    return Outcome(output=CertificatesView(ctx.state, _selected(ctx), ctx.now))


def _selected(ctx: Ctx) -> list[str]:
    """The trustpoint a show command names (which must exist), or all of them."""
    want = ctx.args.get("name")
    if want is None:
        return trustpoint_names(ctx.state)
    _configured(ctx.state, want)
    return [want]


@G.action("show crypto ca trustpoint [<name>]", help="Show trustpoints and their state",
          args={"name": NAME})
def show_trustpoint(ctx: Ctx) -> Outcome:
    from engine.views.state import TrustpointsView

    return Outcome(output=TrustpointsView(ctx.state, _selected(ctx), ctx.now))


# -- polling (scheduled) --------------------------------------------------------------------------


def due_polls(state: DeviceState, now: int) -> list[Job]:
    """Trustpoints whose pending SCEP request is due for a CertPoll (a timer listed in
    engine/device_timers.py)."""
    jobs = []
    for name, st in state.trustpoints.items():
        e = st.enrollment
        if e is not None and e.method == "scep" and e.next_poll_at and e.next_poll_at <= now:
            jobs.append(Job(f"poll {name}", e.next_poll_at, _poller(name)))
    return jobs


def _poller(name: str) -> Callable[[DeviceState, int], Generator[Effect, Any, Outcome]]:
    return lambda state, now: poll(state, now, name)


def poll(state: DeviceState, now: int, name: str) -> Generator[Effect, Any, Outcome]:
    """One CertPoll round; an enrollment that ends failed makes the job's Result an error."""
    from events.trustpoint import EnrollmentFailed

    outcome: Outcome = yield from _poll_round(state, now, name)
    if any(isinstance(ev, EnrollmentFailed) for ev in outcome.events):
        outcome.failure = _refused(next(ev for ev in outcome.events
                                        if isinstance(ev, EnrollmentFailed)))
    return outcome


def _poll_round(state: DeviceState, now: int, name: str) -> Generator[Effect, Any, Outcome]:
    """One CertPoll round (RFC 8894 §3.3.3) for every key pair still waiting."""
    from engine.scep_client import Identity, ScepPoll
    from events.trustpoint import EnrollmentFailed, EnrollmentPending

    cfg = trustpoint_config(state, name)
    status = status_of(state, name)
    e = status.enrollment
    if cfg is None or e is None:
        return Outcome()
    if cfg.scep_url is None:
        return _failed(EnrollmentFailed(name, e.transaction_ids[0], "failure", "",
                                        "the enrollment url was removed while a request was "
                                        "pending; polling stopped"))
    waiting = [(k, t) for k, t in zip(e.key_ids, e.transaction_ids, strict=True)
               if k not in e.received]
    pairs = tuple(p for k, _ in waiting if (p := state.keys.by_key_id(k)) is not None)
    if len(pairs) != len(waiting):
        return _failed(EnrollmentFailed(name, e.transaction_ids[0], "failure", "",
                                        "the key pair was removed"))
    who = Identity(e.subject)  # CertPoll names the subject as requested (RFC 8894 §3.3.3)
    replies = []
    polls = e.polls + 1
    try:
        for pair, (_, txid) in zip(pairs, waiting, strict=True):
            replies.append((yield ScepPoll(cfg.scep_url, pair, who, ca_view(status), txid,
                                           cfg.message_digest)))
        events, pending = handle_replies(now, cfg, status, pairs, replies, polls,
                                     e.retry_period)
    except TrustledgerError as err:
        # The CA could not be asked this time, or answered with nothing we can accept (e.g.
        # SUCCESS with a certificate for another key): the attempt counts, the next one is
        # scheduled. (Raised past this point, the poll would stay due and rerun at once.)
        error = err.text
        if polls >= e.retry_count:
            return _failed(EnrollmentFailed(name, e.transaction_ids[0], "timeout", "",
                                            f"{plural(polls, 'poll')}, the last one failed: "
                                            f"{error}"))
        return Outcome(events=[EnrollmentPending(name, waiting[0][1], polls,
                                                 now + e.retry_period * 60_000_000, error)],
                       output=poll_failed(name, error))
    if any(isinstance(ev, EnrollmentFailed) for ev in events):
        return _failed(*events)
    if pending and polls >= e.retry_count:
        return _failed(*[ev for ev in events if not isinstance(ev, EnrollmentPending)],
                       EnrollmentFailed(name, e.transaction_ids[0], "timeout", "",
                                        f"no certificate after {plural(polls, 'poll')}"))
    if pending:
        return Outcome(events=events)
    return Outcome(events=events, output=certret(name))


def _failed(*events: Any) -> Outcome:
    """A poll round that ends the enrollment: its message is the one the log keeps."""
    from events.trustpoint import EnrollmentFailed

    failed = next(ev for ev in events if isinstance(ev, EnrollmentFailed))
    return Outcome(events=list(events), output=failure_message(failed) or "")
