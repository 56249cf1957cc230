"""`BuiltinCA`: the CA's runtime. It folds the log into state, runs the pure decisions, performs
their effects (signing with the CA key, drawing serials, reading the clock) and appends each
command's events as one atomic batch.

Directory layout (`DIR`):

    DIR/ca.key              CA private key, PEM PKCS#8, mode 0600 (never logged)
    DIR/ca.pem              CA certificate (public; a convenience copy of what the log holds)
    DIR/ca.crl              the current CRL, DER (public; rewritten whenever one is issued;
                            the worker processes of `ca serve --workers N` serve it from here)
    DIR/ra-signing.key      RA keys, in --ra mode only (0600)
    DIR/ra-encryption.key
    DIR/log/                the CA's FileEventLog (stream "ca")
    DIR/admin.json          while `ca serve` runs: its loopback admin URL and token (0600)

One writer: the process that opened the CA read-write holds the log's lock for as long as it
stays open. Another process can open it read-only (listings) or ask the running server's
admin endpoint to act (see engine/ca/admin.py).

Thread safety: every write runs under one lock; readers take the current state, an immutable
value, without it.

Durability: commands append under the lock and then wait, without it, until what they
appended is on disk (group commit, `_GroupCommit`); only then is anything shown to anyone:
a command's result, a poll or GetCert answer (they wait for the events they read), the CRL file
(published once its CRLIssued is durable, so a crash never makes its number go backwards). If
a write or an fdatasync fails, the log cuts itself back to its last acknowledged frame
(events/filelog.py), so none of the commands waiting for that sync is on disk, now or after a
reopen; the state in memory is ahead of the log, so from then on every command and every
answer raises `CAUnavailable` until the CA is reopened.

Opening: a writer's open that cut a torn tail, or a read-only open that found one (and left it),
says so in `log_notice`; a log shorter than its head marker (acknowledged events missing)
refuses to open, read-only too (events/filelog.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.ca import offline, profile
from engine.ca.console import Console
from engine.ca.decide import (
    Enroll,
    Policy,
    ReplyStatus,
    SignOffline,
    decide_approve,
    decide_crl,
    decide_enrollment,
    decide_init,
    decide_issue,
    decide_mint_challenge,
    decide_offline,
    decide_reject,
    decide_revoke,
    decide_unissuable,
    reply_status,
)
from engine.ca.errors import CAError, CAUnavailable, FailInfo, NotACA, ScepRefusal
from engine.ca.keyfile import load_private_key, write_new_file, write_private_key
from engine.ca.ports import (
    KEY_SPECS,
    Clock,
    GeneratedKeys,
    KeyFactory,
    PrivateKey,
    Randomness,
    SystemClock,
    SystemRandomness,
    from_micros,
    to_micros,
)
from engine.ca.state import CRL, CAState, IssuedCertificate, Request, RequestStatus, evolve
from engine.errors import Reason
from events.ca import STREAM, CAInitialized, CRLIssued
from events.durable import fsync_directory
from events.filelog import FileEventLog, LogError, LogLocked, LogWriteFailed
from events.registry import Event
from events.store import EventStore, PendingEvent, Recorded

CA_KEY = "ca.key"
CA_PEM = "ca.pem"
CRL_FILE = "ca.crl"
RA_SIGNING_KEY = "ra-signing.key"
RA_ENCRYPTION_KEY = "ra-encryption.key"
LOG_DIR = "log"
DEFAULT_SUBJECT = "CN=trustledger CA,O=trustledger"
DEFAULT_CA_DAYS = 3650
DEFAULT_CERTIFICATE_DAYS = 365
DEFAULT_CRL_LIFETIME = timedelta(days=7)
DEFAULT_CHALLENGE_LIFETIME = timedelta(hours=1)
CRL_PATH = "/crl/ca.crl"

log = structlog.get_logger("trustledger.ca")


class CALocked(CAError):
    """The CA directory is open for writing by another process (normally `ca serve`)."""

    def __init__(self, root: Path) -> None:
        super().__init__(Reason.NOT_ALLOWED, f"the CA in {root} is in use by another process")
        self.root = root


@dataclass(frozen=True, slots=True)
class Enrolled:
    """The outcome of a certificate request: its status and, on SUCCESS, the certificate."""

    transaction_id: str
    status: ReplyStatus
    certificate: IssuedCertificate | None = None
    reason: str = ""


def challenge_digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


class BuiltinCA:
    """The built-in CA over its directory. Use `BuiltinCA.init` or `BuiltinCA.open`."""

    def __init__(self, root: Path, log: EventStore, state: CAState, *, clock: Clock,
                 randomness: Randomness, ca_key: PrivateKey | None,
                 ra_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey] | None) -> None:
        self.root = root
        self._log = log
        self._state = state
        # What opening the log repaired, or (read-only) would repair: one line to show the
        # operator (`%LOG-4-RECOVERED` / `%LOG-4-REPAIR_PENDING`), None if nothing.
        self.log_notice = log.notice() if isinstance(log, FileEventLog) else None
        self.clock = clock
        self.randomness = randomness
        self._ca_key = ca_key
        self._ra_keys = ra_keys
        self._lock = threading.Lock()
        self._durability = _GroupCommit(log, self._lock)
        self._deferred = threading.local()  # .seq: highest seq to make durable, in a block
        self._publishing = threading.Lock()  # the two below
        self._unpublished: list[tuple[int, CRL]] = (  # (seq of its CRLIssued, CRL)
            [(log.head[0], state.crl)] if state.crl is not None else [])
        self._published = 0  # number of the CRL in DIR/ca.crl (by this process)
        self.crl_url: str | None = None  # the CDP put in issued certificates (set by serve)
        self.console: Console | None = None  # the operator's event lines (set by `ca serve`)
        # Batches the console has not told yet, (seq of their last event, state after them,
        # events): told once durable, like any answer (`_announce_durable`).
        self._announcing = threading.Lock()
        self._unannounced: list[tuple[int, CAState, list[Event]]] = []
        self._ca_cert = x509.load_der_x509_certificate(state.ca_certificate)

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def init(cls, root: str | os.PathLike[str], *, subject: str = DEFAULT_SUBJECT,
             key: str = "rsa:2048", days: int = DEFAULT_CA_DAYS,
             certificate_days: int = DEFAULT_CERTIFICATE_DAYS, ra: bool = False,
             crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME, clock: Clock | None = None,
             randomness: Randomness | None = None, keys: KeyFactory | None = None) -> Self:
        """Create a CA in `root`: keys, self-signed certificate (RA certificates with `ra`), the
        first (empty) CRL; returns it open read-write."""
        clock = clock or SystemClock()
        randomness = randomness or SystemRandomness()
        keys = keys or GeneratedKeys()
        if key not in KEY_SPECS:
            raise CAError(Reason.INVALID_VALUE,
                          f"unknown key type {key}; expected one of {', '.join(KEY_SPECS)}")
        if key.startswith("ecdsa") and not ra:
            # RFC 8894 §3.2.2: requests are enveloped with key transport to the CA (or RA)
            # certificate, which needs an RSA key.
            raise CAError(Reason.INVALID_VALUE, "an ECDSA CA cannot decrypt SCEP requests "
                                                "(RSA key transport); add --ra")
        if days <= 0 or certificate_days <= 0:
            raise CAError(Reason.INVALID_VALUE, "validity days must be positive")
        try:
            name = profile.parse_subject(subject)
        except ValueError as e:
            raise CAError(Reason.INVALID_VALUE, str(e)) from None
        rootp = _private_directory(Path(root))
        log = _open_log(rootp, readonly=False)
        created: list[Path] = []  # undone if init fails before its events are durable
        fresh = False
        try:
            if log.head[0] != 0:
                next(_ca_records(rootp, log.read()))  # NotACA if the log is a device's
                raise CAError(Reason.NOT_ALLOWED, f"{rootp} already holds a CA")
            leftovers = [n for n in (CA_KEY, RA_SIGNING_KEY, RA_ENCRYPTION_KEY, CA_PEM)
                         if (rootp / n).exists()]
            if leftovers:
                raise CAError(Reason.NOT_ALLOWED,
                              f"{rootp} holds {', '.join(leftovers)} but no CA log (an "
                              "interrupted `ca init`?); move them away and run init again")
            fresh = True
            now = clock.now()
            ca_key = keys.generate(key)
            ca_cert = profile.ca_certificate(ca_key, name, profile.random_serial(randomness),
                                             now - profile.CLOCK_SKEW, now + timedelta(days=days))
            ra_keys, ra_certs = (_make_ra(keys, ca_key, ca_cert, randomness, now) if ra
                                 else (None, None))
            initialized = CAInitialized(
                name.rfc4514_string(), key, ca_cert.public_bytes(serialization.Encoding.DER),
                ra_certs[0] if ra_certs else None, ra_certs[1] if ra_certs else None,
                certificate_days, int(crl_lifetime.total_seconds()))
            state = evolve(CAState(), initialized, to_micros(now))
            crl = _crl_event(state, ca_key, ca_cert, now)
            events = decide_init(CAState(), initialized, crl)
            # Files first, the log last: its first frame, synced, is the commit point.
            for name, secret in ((CA_KEY, ca_key), *(
                    ((RA_SIGNING_KEY, ra_keys[0]), (RA_ENCRYPTION_KEY, ra_keys[1]))
                    if ra_keys is not None else ())):
                write_private_key(rootp / name, secret)
                created.append(rootp / name)
            write_new_file(rootp / CA_PEM, ca_cert.public_bytes(serialization.Encoding.PEM),
                           0o644)
            created.append(rootp / CA_PEM)
            state = CAState()
            for rec in log.append([PendingEvent(ev, STREAM, to_micros(now), "operator")
                                   for ev in events]):
                state = evolve(state, rec.event, rec.at)
        except BaseException as e:
            if fresh:
                _undo_init(rootp, created)
            log.close()
            if isinstance(e, OSError | LogWriteFailed):
                raise CAError(Reason.NOT_ALLOWED, f"cannot create a CA in {rootp}: {e} "
                                                  "(nothing was left behind)") from e
            raise
        ca = cls(rootp, log, state, clock=clock, randomness=randomness, ca_key=ca_key,
                 ra_keys=ra_keys)
        ca.publish_crl()
        return ca

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, readonly: bool = False,
             clock: Clock | None = None, randomness: Randomness | None = None) -> Self:
        """Open an existing CA. Read-only needs no key and no lock (listings while serving)."""
        rootp = Path(root)
        if not (rootp / LOG_DIR).is_dir():
            raise CAError(Reason.NOT_FOUND, f"{rootp} holds no CA (run `ca init {rootp}`)")
        log = _open_log(rootp, readonly=readonly)
        try:
            state = replay(_ca_records(rootp, log.read()))
            if not state.initialized:
                raise CAError(Reason.NOT_FOUND, f"{rootp} holds no CA (run `ca init {rootp}`)")
            ca_key = None if readonly else load_private_key(rootp / CA_KEY)
            ra_keys = None
            if state.ra_mode and not readonly:
                ra_keys = (_rsa(load_private_key(rootp / RA_SIGNING_KEY)),
                           _rsa(load_private_key(rootp / RA_ENCRYPTION_KEY)))
        except BaseException:
            log.close()
            raise
        return cls(rootp, log, state, clock=clock or SystemClock(),
                   randomness=randomness or SystemRandomness(), ca_key=ca_key, ra_keys=ra_keys)

    def close(self) -> None:
        self._durability.close()
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- read side --------------------------------------------------------------------------

    @property
    def state(self) -> CAState:
        return self._state

    @property
    def ca_certificate(self) -> x509.Certificate:
        return self._ca_cert

    def ra_certificates(self) -> tuple[x509.Certificate, x509.Certificate] | None:
        """(signing, encryption) RA certificates in --ra mode."""
        st = self._state
        if st.ra_signing_certificate is None or st.ra_encryption_certificate is None:
            return None
        return (x509.load_der_x509_certificate(st.ra_signing_certificate),
                x509.load_der_x509_certificate(st.ra_encryption_certificate))

    def requests(self, status: RequestStatus | None = None) -> list[Request]:
        """The requests in `status`, oldest first; with None, every request ever received
        (also those a later request with the same transaction ID replaced)."""
        every = (*self._state.earlier_requests, *self._state.requests.values())
        reqs = [r for r in every if status is None or r.status is status]
        return sorted(reqs, key=lambda r: (r.received_at, r.transaction_id))

    def certificates(self) -> list[IssuedCertificate]:
        return sorted(self._state.certificates.values(), key=lambda c: (c.not_before, c.serial))

    def certificate(self, serial: str) -> IssuedCertificate | None:
        """A certificate this CA issued, once the event that issued it is durable."""
        return self._durable_state().certificates.get(serial)

    def current_crl(self) -> CRL:
        """The current CRL, re-issued first if it is due (see `refresh_crl`); durable."""
        if not self._readonly:
            self.refresh_crl()
        crl = self._durable_state().crl
        assert crl is not None  # `init` issues the first one
        return crl

    @property
    def unavailable(self) -> CAUnavailable | None:
        """Why the CA answers nothing more (its log could not be made durable), or None."""
        return self._durability.failure

    # -- keys (for the SCEP frontend) ----------------------------------------------------------

    @property
    def _readonly(self) -> bool:
        return self._ca_key is None

    def signer(self) -> tuple[x509.Certificate, PrivateKey]:
        """Who signs CertReps: the RA signing certificate in --ra mode, else the CA."""
        if self._ra_keys is not None:
            ra = self.ra_certificates()
            assert ra is not None
            return ra[0], self._ra_keys[0]
        return self._ca_cert, self._writable_key()

    def decrypter(self) -> tuple[x509.Certificate, PrivateKey]:
        """Whom requests are encrypted to: the RA encryption certificate in --ra mode."""
        if self._ra_keys is not None:
            ra = self.ra_certificates()
            assert ra is not None
            return ra[1], self._ra_keys[1]
        return self._ca_cert, self._writable_key()

    def _writable_key(self) -> PrivateKey:
        if self._ca_key is None:
            raise CAError(Reason.NOT_ALLOWED, "the CA is open read-only")
        return self._ca_key

    # -- write side -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Run a command under the write lock; once the lock is released, wait until everything
        it appended (or read, if another thread appended it) is durable. Concurrent commands
        thus share one fdatasync (group commit) instead of queueing behind one each. Inside
        `deferred_durability` the wait is left to the end of that block."""
        with self._lock:
            self._durability.check()
            yield
            seq = self._log.head[0]
        self._await_durable(seq)

    def _durable_state(self) -> CAState:
        """The current state, once every event it folds is durable (for answers that read it:
        another thread may have appended what it shows and still be waiting for the sync)."""
        self._durability.check()
        state = self._state
        self._await_durable(self._log.head[0])  # the head moves before the state does
        return state

    def _await_durable(self, seq: int) -> None:
        deferred = getattr(self._deferred, "seq", None)
        if deferred is None:
            self._durability.wait(seq)
            self._release_durable()
        else:
            self._deferred.seq = max(deferred, seq)

    @contextlib.contextmanager
    def deferred_durability(self) -> Iterator[None]:
        """Group commit for one thread that runs commands one after another (the decider of
        `ca serve --workers`): commands in this block return once their events are appended,
        and the block's end waits once until all of them are durable. Nothing a command in
        the block returned may be shown to anyone before the block ends."""
        if getattr(self._deferred, "seq", None) is not None:
            raise RuntimeError("deferred_durability blocks do not nest")
        self._deferred.seq = 0
        try:
            yield
            seq = self._deferred.seq
        finally:
            self._deferred.seq = None
        if seq:
            self._durability.wait(seq)
            self._release_durable()

    def _commit(self, state: CAState, events: list[Event], at: int, actor: str,
                correlation: str = "", *, folded: CAState | None = None) -> CAState:
        """Append `events` as one batch and make their state current. Call under the lock.
        `folded`, if the caller has it, is `_fold(state, events, at)`: the appended records
        carry exactly those events at `at`, so folding them again would give the same."""
        if not events:
            return state
        batch = [PendingEvent(ev, STREAM, at, actor, correlation) for ev in events]
        before = state.crl
        try:
            records = self._log.append(batch)
        except (LogError, OSError) as e:  # the log is broken until reopened
            raise self._durability.fail(e) from e
        if folded is not None:
            state = folded
        else:
            for rec in records:
                state = evolve(state, rec.event, rec.at)
        self._state = state
        if self.console is not None:
            with self._announcing:
                self._unannounced.append((records[-1].seq, state, events))
        if state.crl is not before and state.crl is not None:
            with self._publishing:  # published once durable (`_publish_durable_crl`)
                self._unpublished.append((records[-1].seq, state.crl))
        return state

    def _release_durable(self) -> None:
        """What waited for its events to be durable: the console's lines, the CRL file."""
        self._announce_durable()
        self._publish_durable_crl()

    def _announce_durable(self) -> None:
        """Tell the console about the batches now durable, in log order."""
        if self.console is None:
            return
        durable = self._durability.durable
        with self._announcing:  # held while telling, so lines keep the log's order
            ready = [b for b in self._unannounced if b[0] <= durable]
            self._unannounced = [b for b in self._unannounced if b[0] > durable]
            for _, state, events in ready:
                self.console.recorded(state, events)

    def publish_crl(self) -> None:
        """Write the newest durable CRL to DIR/ca.crl, if this process has not yet."""
        self._publish_durable_crl()

    def _publish_durable_crl(self) -> None:
        """Write the newest CRL whose CRLIssued is durable to DIR/ca.crl (atomically: readers
        see the old or the new), never one older than what it wrote before. A copy for readers
        that do not hold the log (the workers); the log stays the record."""
        if self._readonly:
            return
        with self._publishing:
            durable = self._durability.durable
            ready = [crl for seq, crl in self._unpublished if seq <= durable]
            if not ready:
                return
            self._unpublished = [(seq, crl) for seq, crl in self._unpublished if seq > durable]
            crl = max(ready, key=lambda c: c.number)
            if crl.number <= self._published:
                return
            path = self.root / CRL_FILE
            tmp = path.with_name(f".{CRL_FILE}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(crl.der)
            os.replace(tmp, path)
            self._published = crl.number
        if self.console is not None:
            self.console.crl_published(crl.number,
                                       f"{from_micros(crl.next_update):%Y-%m-%dT%H:%M:%SZ}")

    def mint_challenge(self, valid_for: timedelta = DEFAULT_CHALLENGE_LIFETIME) -> str:
        """A new one-time challenge password (only its SHA-256 is recorded)."""
        self._writable_key()
        password = self.randomness.token_bytes(15).hex()  # 120 bits
        with self._writing():
            now = to_micros(self.clock.now())
            expires = now + int(valid_for.total_seconds() * 1_000_000)
            events = decide_mint_challenge(self._state, challenge_digest(password), expires)
            self._commit(self._state, events, now, "operator")
        return password

    def enroll(self, cmd: Enroll, policy: Policy, actor: str = "scep") -> Enrolled:
        """Record a PKCSReq/RenewalReq and, if approved, issue its certificate in the same batch."""
        key = self._writable_key()
        with self._writing():
            now_dt = self.clock.now()
            now = to_micros(now_dt)
            state = self._state
            try:
                events = decide_enrollment(state, cmd, policy, now)
                tentative = _fold(state, events, now)
                req = tentative.requests[cmd.transaction_id]
                if req.status is RequestStatus.APPROVED and self.crl_url is not None:
                    more = self._issue(tentative, key, cmd.transaction_id, now_dt)
                    events += more
                    tentative = _fold(tentative, more, now)
            except ScepRefusal as e:
                if self.console is not None:
                    self.console.refused(cmd.transaction_id, cmd.subject_text, e)
                raise
            self._commit(state, events, now, actor, cmd.transaction_id, folded=tentative)
            return self._outcome(cmd.transaction_id)

    def poll(self, txid: str) -> Enrolled:
        """The status of a known request (CertPoll, or a re-sent PKCSReq), once durable."""
        return self._outcome(txid, self._durable_state())

    def _outcome(self, txid: str, state: CAState | None = None) -> Enrolled:
        state = state if state is not None else self._state
        status = reply_status(state, txid)
        req = state.requests[txid]
        cert = state.certificates.get(req.serial) if req.serial else None
        return Enrolled(txid, status, cert, req.reject_reason)

    def approve(self, txid: str, actor: str = "operator") -> IssuedCertificate | None:
        """Approve a pending request, or one an operator rejected (not one the CA rejected
        because it cannot be issued: see `decide_approve`); its certificate is issued at once
        if a server has set the CDP URL, else by the next `issue_approved` (which `serve` runs
        at start)."""
        key = self._writable_key()
        with self._writing():
            now_dt = self.clock.now()
            now = to_micros(now_dt)
            state = self._state
            events = decide_approve(state, txid)
            if self.crl_url is not None:
                events += self._issue(_fold(state, events, now), key, txid, now_dt)
            state = self._commit(state, events, now, actor, txid)
            serial = state.requests[txid].serial
            return state.certificates[serial] if serial else None

    def issue_approved(self) -> list[IssuedCertificate]:
        """Issue every approved request still without a certificate (approved while no server
        ran). Needs the CDP URL, so `serve` calls it once the URL is known. A request that
        cannot be issued (one recorded before requests were checked on arrival, or a renewal
        of a certificate renewed since) is recorded as rejected, with the reason, instead:
        it must not keep every server start failing."""
        key = self._writable_key()
        out: list[IssuedCertificate] = []
        with self._writing():
            for req in sorted((r for r in self._state.requests.values()
                               if r.status is RequestStatus.APPROVED),
                              key=lambda r: (r.received_at, r.transaction_id)):
                now_dt = self.clock.now()
                now = to_micros(now_dt)
                txid = req.transaction_id
                try:
                    events = self._issue(self._state, key, txid, now_dt)
                except CAError as e:
                    log.warning("approved request cannot be issued; rejecting it",
                                transaction_id=txid, reason=e.message)
                    events = decide_unissuable(self._state, txid, e.text)
                state = self._commit(self._state, events, now, "ca", txid)
                serial = state.requests[txid].serial
                if serial is not None:
                    out.append(state.certificates[serial])
        return out

    def reject(self, txid: str, reason: str = "", actor: str = "operator") -> None:
        self._writable_key()
        with self._writing():
            now = to_micros(self.clock.now())
            self._commit(self._state, decide_reject(self._state, txid, reason), now, actor, txid)

    def revoke(self, serial: str, reason: str = "unspecified", actor: str = "operator") -> CRL:
        """Revoke a certificate and issue a new CRL in the same batch."""
        key = self._writable_key()
        try:
            reason = profile.reason_name(reason)
        except ValueError as e:
            raise CAError(Reason.INVALID_VALUE, str(e)) from None
        with self._writing():
            now_dt = self.clock.now()
            now = to_micros(now_dt)
            state = self._state
            events = decide_revoke(state, serial, reason, now)
            tentative = _fold(state, events, now)
            events.append(_crl_event(tentative, key, self._ca_cert, now_dt))
            state = self._commit(state, events, now, actor, serial)
            assert state.crl is not None
            return state.crl

    def crl_due(self) -> bool:
        """True once less than half the CRL's lifetime remains before its nextUpdate."""
        st = self._state
        if st.crl is None:
            return True
        margin = st.crl_lifetime_seconds * 1_000_000 // 2
        return to_micros(self.clock.now()) >= st.crl.next_update - margin

    def refresh_crl(self, force: bool = False) -> CRL | None:
        """Issue a new CRL if one is due (or `force`); returns it, or None if none was due."""
        key = self._writable_key()
        with self._writing():
            if not (force or self.crl_due()):
                return None
            now_dt = self.clock.now()
            now = to_micros(now_dt)
            state = self._commit(self._state, [_crl_event(self._state, key, self._ca_cert,
                                                          now_dt)], now, "ca")
            return state.crl

    def sign_offline(self, csr_der: bytes, *, days: int | None = None,
                     actor: str = "operator") -> IssuedCertificate:
        """Sign a PKCS#10 request the operator carried here (`ca sign`): verify its signature,
        record it as received and approved by the operator and issue its certificate with the
        SCEP profile (CDP only if a server has set `crl_url`), all in one batch. Its
        challenge password, if any, is ignored and never recorded."""
        key = self._writable_key()
        if days is not None and days <= 0:
            raise CAError(Reason.INVALID_VALUE, "validity days must be positive")
        request = offline.verified_request(csr_der)
        with self._writing():
            now_dt = self.clock.now()
            now = to_micros(now_dt)
            state = self._state
            txid = "OFFLINE-" + self.randomness.token_bytes(8).hex().upper()
            events = decide_offline(state, SignOffline(
                txid, request.subject, request.subject_text, request.public_key,
                request.requested_extensions))
            try:
                events += self._issue(_fold(state, events, now), key, txid, now_dt, days)
            except ScepRefusal as e:  # the profile refused the request: no peer to answer
                raise CAError(Reason.BAD_DATA, e.text) from None
            state = self._commit(state, events, now, actor, txid)
            serial = state.requests[txid].serial
            assert serial is not None
            return state.certificates[serial]

    def _issue(self, state: CAState, key: PrivateKey, txid: str,
               now: datetime, days: int | None = None) -> list[Event]:
        """Sign the certificate of approved request `txid` (an effect: key + randomness),
        valid for `days` (default: the CA's certificate validity)."""
        req = state.requests[txid]
        serial = profile.random_serial(self.randomness)
        while profile.serial_hex(serial) in state.certificates:
            serial = profile.random_serial(self.randomness)  # 2^-127 per try; never loops
        try:
            cert = profile.end_entity_certificate(
                key, self._ca_cert,
                profile.EndEntityRequest(req.subject, req.public_key, req.requested_extensions),
                serial, now - profile.CLOCK_SKEW,
                now + timedelta(days=days if days is not None else state.certificate_days),
                self.crl_url)
        except ValueError as e:
            raise ScepRefusal(FailInfo.BAD_REQUEST, f"cannot issue: {e}") from None
        return decide_issue(state, txid, profile.serial_hex(serial),
                            cert.public_bytes(serialization.Encoding.DER),
                            to_micros(cert.not_valid_before_utc),
                            to_micros(cert.not_valid_after_utc))


class _GroupCommit:
    """Group commit over a FileEventLog: appends run inside one long `group_commit()` block, so
    they are buffered, not synced; `wait(seq)` returns once events up to `seq` are durable. The
    first waiter becomes the leader: under the CA's write lock (so no append interleaves) it
    ends the block, which writes every buffered frame and fdatasyncs once, and opens a new one;
    the other waiters sleep until it is done. Commands appended while one sync runs share the
    next, so N concurrent commands cost about two fdatasyncs, not N."""

    def __init__(self, log: EventStore, write_lock: threading.Lock) -> None:
        self._store = log
        self._log = log if isinstance(log, FileEventLog) and not log.readonly else None
        self._write_lock = write_lock
        self._cond = threading.Condition()
        self._durable = log.head[0]
        self._syncing = False
        self._group: contextlib.AbstractContextManager[None] | None = None
        self._failure: BaseException | None = None  # set once, never cleared: reopen instead
        if self._log is not None:
            self._group = self._log.group_commit()
            self._group.__enter__()

    @property
    def durable(self) -> int:
        """The highest seq known to be on disk."""
        return self._durable if self._log is not None else self._store.head[0]

    @property
    def failure(self) -> CAUnavailable | None:
        cause = self._failure
        return CAUnavailable(cause) if cause is not None else None

    def check(self) -> None:
        """Raise CAUnavailable once a write or a sync has failed."""
        cause = self._failure
        if cause is not None:
            raise CAUnavailable(cause) from cause

    def fail(self, cause: BaseException) -> CAUnavailable:
        """Record that the log is broken (a write or sync failed); returns the error to raise.
        After a failed fdatasync the kernel may have dropped the dirty pages and cleared the
        error, so a later sync succeeding would prove nothing: nothing is durable any more."""
        with self._cond:
            if self._failure is None:
                self._failure = cause
            self._cond.notify_all()
        return CAUnavailable(cause)

    def wait(self, seq: int) -> None:
        """Block until `seq` is durable; CAUnavailable if it cannot be (now or before). Call
        without holding the write lock."""
        self.check()
        if self._log is None:
            return
        with self._cond:
            while self._durable < seq:
                self.check()
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                failed: BaseException | None = None
                self._cond.release()
                try:
                    target = self._sync(self._log)
                except BaseException as e:  # the group block is spent: it must not be reused
                    failed = e
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    if failed is not None and self._failure is None:
                        self._failure = failed
                    self._cond.notify_all()
                if failed is not None:
                    if not isinstance(failed, Exception):
                        raise failed  # KeyboardInterrupt and the like go on as they are
                    raise CAUnavailable(failed) from failed
                self._durable = max(self._durable, target)
            self.check()  # after a failure nothing is answered, durable or not

    def _sync(self, log: FileEventLog) -> int:
        with self._write_lock:
            target = log.head[0]
            assert self._group is not None
            self._group.__exit__(None, None, None)  # write out + fdatasync
            self._group = log.group_commit()
            self._group.__enter__()
            return target

    def close(self) -> None:
        if self._group is not None and self._failure is None:
            self._group.__exit__(None, None, None)  # syncs whatever is still pending
        self._group = None


def replay(records: Iterable[Recorded]) -> CAState:
    """Fold recorded events into a state; no effects, no validation."""
    state = CAState()
    for rec in records:
        state = evolve(state, rec.event, rec.at)
    return state


def _ca_records(root: Path, records: Iterable[Recorded]) -> Iterator[Recorded]:
    """`records`, checked to be a CA's log: it starts with CAInitialized and holds only the
    CA's stream (`evolve` folds nothing else). NotACA names what the log holds instead."""
    for rec in records:
        if rec.stream != STREAM or (rec.seq == 1 and rec.type != CAInitialized.type_name):
            what = ("it is a device data directory" if rec.stream == "device"
                    else f"its log holds {rec.type} in stream {rec.stream!r} at seq {rec.seq}")
            raise NotACA(f"{root} holds no CA ({what}).")
        yield rec


def _fold(state: CAState, events: Iterable[Event], at: int) -> CAState:
    for ev in events:
        state = evolve(state, ev, at)
    return state


def _crl_event(state: CAState, key: PrivateKey, ca_cert: x509.Certificate,
               now: datetime) -> CRLIssued:
    number = state.crl.number + 1 if state.crl is not None else 1
    lifetime = timedelta(seconds=state.crl_lifetime_seconds)
    entries = []
    for serial in state.revoked:
        cert = state.certificates[serial]
        assert cert.revoked_at is not None and cert.revocation_reason is not None
        entries.append(profile.RevokedEntry(int(serial, 16), from_micros(cert.revoked_at),
                                            cert.revocation_reason))
    this_update = now.replace(microsecond=0)
    crl = profile.certificate_revocation_list(key, ca_cert, number, this_update,
                                              this_update + lifetime, entries)
    events = decide_crl(state, number, crl.public_bytes(serialization.Encoding.DER),
                        to_micros(this_update), to_micros(this_update + lifetime))
    ev = events[0]
    assert isinstance(ev, CRLIssued)
    return ev


def _make_ra(keys: KeyFactory, ca_key: PrivateKey, ca_cert: x509.Certificate,
             randomness: Randomness, now: datetime,
             ) -> tuple[tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey], tuple[bytes, bytes]]:
    """RSA-2048 keys and CA-issued certificates for the RA (signing, encryption)."""
    signing, encryption = _rsa(keys.generate("rsa:2048")), _rsa(keys.generate("rsa:2048"))
    certs = [profile.ra_certificate(ca_key, ca_cert, k, purpose, profile.random_serial(randomness),
                                    now - profile.CLOCK_SKEW, ca_cert.not_valid_after_utc,
                                    ).public_bytes(serialization.Encoding.DER)
             for k, purpose in ((signing, "signing"), (encryption, "encryption"))]
    return (signing, encryption), (certs[0], certs[1])


def _rsa(key: PrivateKey) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CAError(Reason.BAD_DATA, "RA keys must be RSA")
    return key


def _undo_init(root: Path, created: list[Path]) -> None:
    """Remove what a failed `init` wrote: its files and its log segments (the log was empty
    and is locked by us, so every segment is ours; a frame may be on disk even though its
    append failed). Otherwise a key without a log, or a log without its key, would be left."""
    with contextlib.suppress(OSError):  # what cannot be removed, `init` names next time
        for path in [*created, *(root / LOG_DIR).glob("*.seg")]:
            path.unlink(missing_ok=True)
        fsync_directory(root / LOG_DIR)
        fsync_directory(root)


def _private_directory(root: Path) -> Path:
    """The CA directory and its log directory, created 0700 whatever the umask."""
    try:
        for private in (root, root / LOG_DIR):
            private.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise CAError(Reason.NOT_ALLOWED,
                      f"cannot create a CA in {root}: {e.strerror or e}") from None
    return root


def _open_log(root: Path, readonly: bool) -> FileEventLog:
    try:
        return FileEventLog.open(root / LOG_DIR, readonly=readonly)
    except LogLocked:
        raise CALocked(root) from None
    except LogError as e:  # damaged, or shorter than what was acknowledged: name it
        raise CAError(Reason.BAD_DATA, e.text) from None

