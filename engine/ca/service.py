"""`BuiltinCA`: the CA's wiring. It opens the log and folds it into state, builds the ports
(clock, randomness, the CA key as the `Signer`), and exposes methods that run commands: each
drives a handler of engine/ca/commands.py through the one runtime (engine/runtime.py), which
performs its effects (reading the clock, drawing serials, signing), and appends the command's
events as one atomic batch.

Directory layout (`DIR`):

    DIR/ca.key              CA private key, PEM PKCS#8, mode 0600 (never logged)
    DIR/ca.pem              CA certificate (public; a convenience copy of what the log holds)
    DIR/ca.crl              the current CRL, DER (public; rewritten whenever one is issued;
                            the worker processes of `ca serve --workers N` serve it from here)
    DIR/ra-signing.key      RA keys, in --ra mode only (0600)
    DIR/ra-encryption.key
    DIR/log/                the CA's FileEventLog (stream "ca"), unless DIR/STORE names the
                            CA's log in a PostgreSQL store (`ca init|serve --store URL --device
                            ID`; engine/storebinding.py): then DIR/audit/ holds the audit
                            trail's files and the log is the store's (engine/sharedlog.py)
    DIR/admin.json          while `ca serve` runs: its loopback admin URL and token (0600)

One writer: the process that opened the CA read-write holds the log's lock for as long as it
stays open (DIR/log's lock file, or in a PostgreSQL store the log's single-writer lock,
events/pgstore.py `WriterLock`). Should another writer append all the same (nothing of ours
stops a hand-made append to the store), the CA's append is refused with nothing written: the
CA reads what the other wrote, folds it, and decides the command once more over that state
(`CAConflict` if it loses twice); it goes on serving. Another process can open it read-only
(listings) or ask the running server's admin endpoint to act (see engine/ca/admin.py).

Thread safety: every write runs under one lock; readers take the current state, an immutable
value, without it.

Durability: commands append under the lock and then wait, without it, until what they
appended is on disk (group commit, events/groupcommit.py); only then is anything shown to
anyone: a command's result, a poll or GetCert answer (they wait for the events they read), the
CRL file (published once its CRLIssued is durable, so a crash never makes its number go
backwards). If a write or an fdatasync fails, none of the commands waiting for it is on disk,
and every command and every answer raises `CAUnavailable` until the CA is reopened.

Opening: a writer's open that cut a torn tail, or a read-only open that found one (and left it),
says so in `log_notice`; a log shorter than its head marker (acknowledged events missing)
refuses to open, read-only too (events/filelog.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Self

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.audit.trail import AuditMismatch, AuditTrail, open_trail, read_saved
from engine.ca import commands, offline, profile
from engine.ca.commands import CA_KEY as CA_KEY  # noqa: PLC0414 - the workers import it from here
from engine.ca.commands import RA_ENCRYPTION_KEY as RA_ENCRYPTION_KEY  # noqa: PLC0414
from engine.ca.commands import RA_SIGNING_KEY as RA_SIGNING_KEY  # noqa: PLC0414
from engine.ca.commands import (
    Approve,
    CreateAuditKey,
    Decided,
    Enrollment,
    Initialize,
    IssueApproved,
    KeySigner,
    MintChallenge,
    RefreshCRL,
    Reject,
    Revoke,
    RollOver,
    SignRequest,
)
from engine.ca.commands import challenge_digest as challenge_digest  # noqa: PLC0414 - frontends import it from here
from engine.ca.console import Console
from engine.ca.decide import (
    Enroll,
    Policy,
    ReplyStatus,
    reply_status,
)
from engine.ca.errors import CAError, CAUnavailable, NotACA, ScepRefusal
from engine.ca.generations import CAGeneration, generation_at, next_generation
from engine.ca.keyfile import (
    KEY_SPECS,
    load_private_key,
    write_new_file,
    write_private_key,
)
from engine.ca.state import (
    CA_FOLDS,
    CRL,
    CAState,
    IssuedCertificate,
    Request,
    RequestStatus,
    evolve,
)
from engine.devicelog import DeviceLog, LogConflict
from engine.errors import Reason
from engine.folds import UnfoldedEvent
from engine.keystore import KeyGenerator, keystore_of
from engine.ports import (
    Clock,
    PrivateKey,
    Randomness,
    SystemClock,
    SystemRandomness,
    from_micros,
)
from engine.runtime import Ports, drive
from engine.storebinding import (
    AUDIT_DIR,
    STORE_FILE,
    Binding,
    BindingError,
    record,
    recorded,
    same_store,
)
from events.audit import AuditKeyCreated
from events.ca import STREAM, CAInitialized
from events.durable import fsync_directory
from events.filelog import FileEventLog, LogError, LogLocked, LogWriteFailed
from events.groupcommit import GroupCommit
from events.pgstore import WriterLockPending
from events.registry import Event
from events.store import PendingEvent, Recorded

CA_PEM = "ca.pem"
CRL_FILE = "ca.crl"
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


class CAConflict(CAError):
    """Another writer appended to the CA's log: the command changed nothing; the CA has read
    what the other appended and goes on."""

    def __init__(self, conflict: LogConflict) -> None:
        super().__init__(Reason.NOT_ALLOWED, f"{conflict.text.rstrip('.')}; the CA has read "
                                             "it, try the command again")


@dataclass(frozen=True, slots=True)
class Enrolled:
    """The outcome of a certificate request: its status and, on SUCCESS, the certificate."""

    transaction_id: str
    status: ReplyStatus
    certificate: IssuedCertificate | None = None
    reason: str = ""


@dataclass(slots=True)
class Appended:
    """What a `deferred_appends` block appended or read: durable once seq is."""

    seq: int = 0


class BuiltinCA:
    """The built-in CA over its directory. Use `BuiltinCA.init` or `BuiltinCA.open`."""

    def __init__(self, root: Path, log: DeviceLog, state: CAState, *, clock: Clock,
                 randomness: Randomness, ca_key: PrivateKey | None,
                 ra_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey] | None,
                 next_keys: dict[int, PrivateKey] | None = None) -> None:
        self.root = root
        self._log = log
        self._state = state
        # What opening the log repaired, or (read-only) would repair: one line to show the
        # operator (`%LOG-4-RECOVERED` / `%LOG-4-REPAIR_PENDING`), None if nothing.
        self.log_notice = log.notice()
        self.clock = clock
        self.randomness = randomness
        self._ca_key = ca_key
        self._ra_keys = ra_keys
        self._ca_cert = x509.load_der_x509_certificate(state.ca_certificate)
        # The keys of the later CA certificates (`ca rollover`), by generation.
        self._next_keys = dict(next_keys or {})
        self._key_signer = None if ca_key is None else KeySigner(ca_key, self._ca_cert)
        for number, key in self._next_keys.items():
            assert self._key_signer is not None
            self._key_signer.add(number, key, self._generation_certificate(number))
        # One set of ports for every command: the CA key as the Signer; real key generation
        # (rollover, unless given a KeyGenerator; the audit key) and DIR/keystore (the audit
        # key, sealed), made on first use.
        self._ports = Ports(data_dir=root, clock=clock, randomness=randomness,
                            signer=self._key_signer)
        self._lock = threading.Lock()
        self._durability = GroupCommit(log, self._lock, CAUnavailable)
        self._deferred = threading.local()  # .seq: highest seq to make durable, in a block
        self._publishing = threading.Lock()  # the two below
        self._unpublished: list[tuple[int, CRL]] = (  # (seq of its CRLIssued, CRL)
            [(log.head[0], state.crl)] if state.crl is not None else [])
        self._published = 0  # number of the CRL in DIR/ca.crl (by this process)
        self.crl_url: str | None = None  # the CDP put in issued certificates (set by serve)
        self.ldap_url: str | None = None  # its LDAP name, beside crl_url (ca serve --ldap-url)
        # Called with each CRL once written to DIR/ca.crl (ca serve --ldap-url: the directory).
        self.on_crl_published: Callable[[CRL], None] | None = None
        self.console: Console | None = None  # the operator's event lines (set by `ca serve`)
        # Batches the console has not told yet, (seq of their last event, state after them,
        # events): told once durable, like any answer (`_announce_durable`).
        self._announcing = threading.Lock()
        self._unannounced: list[tuple[int, CAState, list[Event]]] = []
        self.audit: AuditTrail | None = None  # the log's audit trail (a writer's)

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def init(cls, root: str | os.PathLike[str], *, subject: str = DEFAULT_SUBJECT,
             key: str = "rsa:2048", days: int = DEFAULT_CA_DAYS,
             certificate_days: int = DEFAULT_CERTIFICATE_DAYS, ra: bool = False,
             crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME, clock: Clock | None = None,
             randomness: Randomness | None = None, keys: KeyGenerator | None = None,
             audit: bool = False, store: Binding | None = None) -> Self:
        """Create a CA in `root`: keys, self-signed certificate (RA certificates with `ra`), the
        first (empty) CRL; returns it open read-write. `audit`: make the log's audit key
        (engine/audit/; the CLI does). `store`: keep the CA's log in that PostgreSQL store
        (recorded in DIR/STORE once the store answered; the keys stay in DIR)."""
        clock = clock or SystemClock()
        randomness = randomness or SystemRandomness()
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
        rootp = _private_directory(Path(root), store is None and recorded(Path(root)) is None)
        log = _open_log(rootp, readonly=False, store=store)
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
            ports = Ports(clock=clock, randomness=randomness, keygen=keys)
            decided = drive(commands.decide(CAState(), Initialize(
                name, key, days, certificate_days, ra, crl_lifetime)), ports)
            state = decided.state
            # Files first, the log last: its first frame, synced, is the commit point.
            for file_name, secret in decided.keys:
                write_private_key(rootp / file_name, secret)
                created.append(rootp / file_name)
            ca_cert = x509.load_der_x509_certificate(state.ca_certificate)
            write_new_file(rootp / CA_PEM, ca_cert.public_bytes(serialization.Encoding.PEM),
                           0o644)
            created.append(rootp / CA_PEM)
            log.append(_batch(decided, "operator"))
        except BaseException as e:
            if fresh:
                _undo_init(rootp, created)
            log.close()
            if isinstance(e, OSError | LogWriteFailed):
                raise CAError(Reason.NOT_ALLOWED, f"cannot create a CA in {rootp}: {e} "
                                                  "(nothing was left behind)") from e
            raise
        made = dict(decided.keys)
        ra_keys = ((_rsa(made[RA_SIGNING_KEY]), _rsa(made[RA_ENCRYPTION_KEY])) if ra
                   else None)
        ca = cls(rootp, log, state, clock=clock, randomness=randomness, ca_key=made[CA_KEY],
                 ra_keys=ra_keys)
        ca._open_audit(audit)
        ca.publish_crl()
        return ca

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, readonly: bool = False,
             clock: Clock | None = None, randomness: Randomness | None = None,
             audit: bool = False, store: Binding | None = None) -> Self:
        """Open an existing CA. Read-only needs no key and no lock (listings while serving).
        `audit`: make the log's audit key if it has none; a writer of a log that has one
        checks the log against its trail and keeps it (engine/audit/). `store`: the CA's
        log is in that store (else: where DIR/STORE says, else DIR/log)."""
        rootp = Path(root)
        if not (rootp / LOG_DIR).is_dir() and not (rootp / STORE_FILE).is_file() and \
                store is None:
            raise CAError(Reason.NOT_FOUND, f"{rootp} holds no CA (run `ca init {rootp}`)")
        log = _open_log(rootp, readonly=readonly, store=store)
        try:
            try:
                state = replay(_ca_records(rootp, log.read()))
            except UnfoldedEvent as e:
                raise CAError(Reason.BAD_DATA, e.text) from None
            if not state.initialized:
                raise CAError(Reason.NOT_FOUND, f"{rootp} holds no CA (run `ca init {rootp}`)")
            ca_key = None if readonly else load_private_key(rootp / CA_KEY)
            next_keys = {} if readonly else {g.number: load_private_key(rootp / g.key_file)
                                             for g in state.generations[1:]}
            ra_keys = None
            if state.ra_mode and not readonly:
                ra_keys = (_rsa(load_private_key(rootp / RA_SIGNING_KEY)),
                           _rsa(load_private_key(rootp / RA_ENCRYPTION_KEY)))
        except BaseException:
            log.close()
            raise
        ca = cls(rootp, log, state, clock=clock or SystemClock(),
                 randomness=randomness or SystemRandomness(), ca_key=ca_key, ra_keys=ra_keys,
                 next_keys=next_keys)
        if not readonly:
            try:
                ca._open_audit(audit)
            except BaseException:
                log.close()
                raise
        return ca

    def close(self) -> None:
        self._durability.close()
        self._log.close()  # its last marker step writes the audit trail

    def write_out_audit(self) -> None:
        """Write the audit trail out now if it changed, up to what is durable (`ca serve`
        calls it every half second): `audit prove` and `audit export` then see a checkpoint
        within a second of the certificate or CRL it covers, not only at the next command's
        marker step. A failure is logged; the next step writes it."""
        if self.audit is not None:
            self.audit.write_out(self._durability.durable)

    def _open_audit(self, create: bool) -> None:
        """Check the log against its audit trail (AuditMismatch refuses, as a CAError); make
        the audit key (sealed in DIR/keystore) if the log has none: see engine/audit/."""
        log = self._log
        keystore = keystore_of(self._ports)  # DIR/keystore
        if self._state.audit_key is None and read_saved(log.root) is not None:
            raise CAError(Reason.BAD_DATA, f"The CA log {log.root} has an audit trail beside it "
                          "but no audit key: it is not the log the trail was kept for.")
        if self._state.audit_key is None and not create:
            return
        if self._state.audit_key is None:
            decided = drive(commands.decide(self._state, CreateAuditKey("ca")), self._ports)
            try:
                log.append(_batch(decided, "system"))
            except (LogError, OSError) as e:
                with contextlib.suppress(OSError):
                    for ev in decided.events:
                        if isinstance(ev, AuditKeyCreated):  # no event names its data key
                            keystore.discard(ev.key_id)
                raise CAError(Reason.NOT_ALLOWED, f"cannot record the audit key: {e}") from e
            self._state = decided.state
        key = self._state.audit_key
        assert key is not None
        try:
            self.audit = open_trail(log.root, log, key, lambda: key.open(keystore))
        except AuditMismatch as e:
            raise CAError(Reason.BAD_DATA, e.text) from None
        log.on_mark = self.audit.on_mark
        log.while_syncing = self.audit.sign_pending
        # the first checkpoint (the key, the upgrade), or those a crash kept back
        self.audit.sign_on_open()

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

    def _generation_certificate(self, number: int) -> x509.Certificate:
        return x509.load_der_x509_certificate(self._state.generations[number - 1].certificate)

    def current_generation(self) -> CAGeneration:
        """The CA certificate that issues now, on the CA's clock (engine/ca/generations.py)."""
        st = self._state
        return st.generations[generation_at(st.generations, self.clock.now_us()) - 1]

    def next_generation(self) -> CAGeneration | None:
        """The CA certificate that takes over when the current one expires, if any."""
        return next_generation(self._state.generations, self.clock.now_us())

    def ca_credentials(self) -> tuple[tuple[x509.Certificate, PrivateKey], ...]:
        """Every CA certificate with its key, oldest first (who signs and decrypts when is
        engine/ca/generations.py's rule, applied by the SCEP frontend per request)."""
        first = (self._ca_cert, self._writable_key())
        return (first, *((self._generation_certificate(n), key)
                         for n, key in sorted(self._next_keys.items())))

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
        failure = self._durability.failure
        assert failure is None or isinstance(failure, CAUnavailable)
        return failure

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
        with self.deferred_appends() as appended:
            yield
        self.wait_durable(appended.seq)

    @contextlib.contextmanager
    def deferred_appends(self) -> Iterator[Appended]:
        """`deferred_durability` without the wait at the end: the block's commands return
        once appended and `appended.seq` is what they appended or read. Nothing they
        returned may be shown to anyone before `wait_durable(appended.seq)` returned (the
        decider waits in another thread and decides the next batch meanwhile)."""
        if getattr(self._deferred, "seq", None) is not None:
            raise RuntimeError("deferred_durability blocks do not nest")
        appended = Appended()
        self._deferred.seq = 0
        try:
            yield appended
            appended.seq = self._deferred.seq
        finally:
            self._deferred.seq = None

    def wait_durable(self, seq: int) -> None:
        """Block until events up to `seq` are durable (CAUnavailable if they cannot be)."""
        if seq:
            self._durability.wait(seq)
            self._release_durable()

    def _run(self, command: object, actor: str) -> Decided:
        """Drive `command` over the current state and append its batch (under the lock); if
        another writer appended meanwhile (module doc, "One writer"), once more over the state
        that includes what it appended."""
        decided = drive(commands.decide(self._state, command), self._ports)
        try:
            self._commit(decided, actor)
        except CAConflict:
            decided = drive(commands.decide(self._state, command), self._ports)
            self._commit(decided, actor)
        return decided

    def _execute(self, command: object, actor: str) -> Decided:
        """Run one command; returns once its events (and what it read) are durable."""
        with self._writing():
            return self._run(command, actor)

    def _commit(self, decided: Decided, actor: str) -> None:
        """Append the batch and make its state current. Call under the lock. The appended
        records carry exactly `decided.events` at `decided.at`, so they fold to
        `decided.state`."""
        events = decided.events
        if not events:
            return
        before = self._state.crl
        try:
            records = self._log.append(_batch(decided, actor))
        except LogConflict as e:  # nothing written: the log is whole, only we are behind
            self._catch_up()
            raise CAConflict(e) from None
        except WriterLockPending as e:  # the store is away: nothing written, and the lock
            raise CAUnavailable(e) from None  # is taken back later: this request only (503)
        except (LogError, OSError) as e:  # the log is broken until reopened
            raise self._durability.fail(e) from e
        state = self._state = decided.state
        if self.audit is not None and self.audit.observe(records, self._log.position):
            self.audit.checkpoint()
        if self.console is not None:
            with self._announcing:
                self._unannounced.append((records[-1].seq, state, events))
        if state.crl is not before and state.crl is not None:
            with self._publishing:  # published once durable (`_publish_durable_crl`)
                self._unpublished.append((records[-1].seq, state.crl))

    def _catch_up(self) -> None:
        """Fold what another writer appended to the log since our head (under the lock)."""
        seq = self._log.head[0]
        self._log.refresh()
        records = list(self._log.read(seq + 1))
        state = self._state
        for rec in records:
            state = evolve(state, rec.event, rec.at)
        self._state = state
        if records and self.audit is not None:
            self.audit.observe(records, self._log.position)

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
            try:
                tmp.write_bytes(crl.der)
                os.replace(tmp, path)
            except OSError as e:  # the events are durable: their command succeeded
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
                self._unpublished.append((0, crl))  # tried again at the next release
                log.warning("CRL file not written; the log holds the CRL", path=str(path),
                            error=str(e))
                return
            self._published = crl.number
        if self.console is not None:
            self.console.crl_published(crl.number,
                                       f"{from_micros(crl.next_update):%Y-%m-%dT%H:%M:%SZ}")
        if self.on_crl_published is not None:
            self.on_crl_published(crl)

    def rollover(self, days: int | None = None, *, keys: KeyGenerator | None = None,
                 actor: str = "operator") -> CAGeneration:
        """`ca rollover`: the next CA key pair (DIR/ca-N.key, 0600, like DIR/ca.key) and its
        self-signed certificate with the same subject, valid from now until `days` after the
        current certificate's expiry (default: as many days as the current one lasts), recorded
        as `CARolledOver`. The key file is written (durably) before the event: a key without
        its event is a leftover the next rollover names, never an event without its key."""
        self._writable_key()
        if days is not None and days <= 0:
            raise CAError(Reason.INVALID_VALUE, "validity days must be positive")
        ports = self._ports if keys is None else dataclasses.replace(self._ports, keygen=keys)
        with self._writing():
            decided = drive(commands.decide(self._state, RollOver(self._ca_cert.subject, days)),
                            ports)
            ((key_file, key),) = decided.keys
            generation = decided.state.generations[-1]
            write_private_key(self.root / key_file, key)
            pem = self.root / f"ca-{generation.number}.pem"
            pem.unlink(missing_ok=True)  # a convenience copy an interrupted rollover left
            cert = x509.load_der_x509_certificate(generation.certificate)
            write_new_file(pem, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            self._commit(decided, actor)
            assert self._key_signer is not None
            self._next_keys[generation.number] = key
            self._key_signer.add(generation.number, key, cert)
        return generation

    def mint_challenge(self, valid_for: timedelta = DEFAULT_CHALLENGE_LIFETIME) -> str:
        """A new one-time challenge password (only its SHA-256 is recorded)."""
        self._writable_key()
        return self._execute(MintChallenge(valid_for), "operator").value

    def enroll(self, cmd: Enroll, policy: Policy, actor: str = "scep") -> Enrolled:
        """Record a PKCSReq/RenewalReq and, if approved, issue its certificate in the same batch."""
        self._writable_key()
        try:
            decided = self._execute(Enrollment(cmd, policy, self.crl_url, self.ldap_url), actor)
        except ScepRefusal as e:
            if self.console is not None:
                self.console.refused(cmd.transaction_id, cmd.subject_text, e)
            raise
        return self._outcome(cmd.transaction_id, decided.state)

    def poll(self, txid: str) -> Enrolled:
        """The status of a known request (CertPoll, or a re-sent PKCSReq), once durable."""
        return self._outcome(txid, self._durable_state())

    def _outcome(self, txid: str, state: CAState) -> Enrolled:
        status = reply_status(state, txid)
        req = state.requests[txid]
        cert = state.certificates.get(req.serial) if req.serial else None
        return Enrolled(txid, status, cert, req.reject_reason)

    def approve(self, txid: str, actor: str = "operator") -> IssuedCertificate | None:
        """Approve a pending request, or one an operator rejected (not one the CA rejected
        because it cannot be issued: see `decide_approve`); its certificate is issued at once
        if a server has set the CDP URL, else by the next `issue_approved` (which `serve` runs
        at start)."""
        self._writable_key()
        return _certificate_of(self._execute(Approve(txid, self.crl_url, self.ldap_url), actor))

    def issue_approved(self) -> list[IssuedCertificate]:
        """Issue every approved request still without a certificate (approved while no server
        ran). Needs the CDP URL, so `serve` calls it once the URL is known. A request that
        cannot be issued (one recorded before requests were checked on arrival, or a renewal
        of a certificate renewed since) is recorded as rejected, with the reason, instead:
        it must not keep every server start failing."""
        self._writable_key()
        out: list[IssuedCertificate] = []
        with self._writing():
            for req in sorted((r for r in self._state.requests.values()
                               if r.status is RequestStatus.APPROVED),
                              key=lambda r: (r.received_at, r.transaction_id)):
                issued = _certificate_of(
                    self._run(IssueApproved(req.transaction_id, self.crl_url, self.ldap_url),
                              "ca"))
                if issued is not None:
                    out.append(issued)
        return out

    def reject(self, txid: str, reason: str = "", actor: str = "operator") -> None:
        self._writable_key()
        self._execute(Reject(txid, reason), actor)

    def revoke(self, serial: str, reason: str = "unspecified", actor: str = "operator") -> CRL:
        """Revoke a certificate and issue a new CRL in the same batch."""
        self._writable_key()
        try:
            reason = profile.reason_name(reason)
        except ValueError as e:
            raise CAError(Reason.INVALID_VALUE, str(e)) from None
        crl = self._execute(Revoke(serial, reason), actor).state.crl
        assert crl is not None
        return crl

    def crl_due(self) -> bool:
        """True once less than half the CRL's lifetime remains before its nextUpdate."""
        return commands.crl_due(self._state, self.clock.now_us())

    def refresh_crl(self, force: bool = False) -> CRL | None:
        """Issue a new CRL if one is due (or `force`); returns it, or None if none was due."""
        self._writable_key()
        decided = self._execute(RefreshCRL(force), "ca")
        return decided.state.crl if decided.events else None

    def sign_offline(self, csr_der: bytes, *, days: int | None = None,
                     actor: str = "operator") -> IssuedCertificate:
        """Sign a PKCS#10 request the operator carried here (`ca sign`): verify its signature,
        record it as received and approved by the operator and issue its certificate with the
        SCEP profile (CDP only if a server has set `crl_url`), all in one batch. Its
        challenge password, if any, is ignored and never recorded."""
        self._writable_key()
        if days is not None and days <= 0:
            raise CAError(Reason.INVALID_VALUE, "validity days must be positive")
        request = offline.verified_request(csr_der)
        issued = _certificate_of(self._execute(SignRequest(request, days, self.crl_url,
                                                           self.ldap_url), actor))
        assert issued is not None
        return issued


def _batch(decided: Decided, actor: str) -> list[PendingEvent]:
    """A command's events as one batch for the log, recorded at `decided.at` by `actor`."""
    return [PendingEvent(ev, STREAM, decided.at, actor, decided.correlation)
            for ev in decided.events]


def _certificate_of(decided: Decided) -> IssuedCertificate | None:
    """The certificate the command's request got, if it has one."""
    serial = decided.state.requests[decided.correlation].serial
    return decided.state.certificates[serial] if serial else None


def replay(records: Iterable[Recorded]) -> CAState:
    """Fold recorded events into a state; no effects, no validation. A type the CA does not
    fold raises UnfoldedEvent (engine/folds.py), naming it and its seq."""
    state = CAState()
    for rec in records:
        CA_FOLDS.require(rec.type, rec.seq)
        state = evolve(state, rec.event, rec.at, rec.seq)
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


def _rsa(key: object) -> rsa.RSAPrivateKey:
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


def _private_directory(root: Path, with_log: bool = True) -> Path:
    """The CA directory and (`with_log`) its log directory, created 0700 whatever the umask."""
    try:
        for private in (root, *([root / LOG_DIR] if with_log else [])):
            private.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise CAError(Reason.NOT_ALLOWED,
                      f"cannot create a CA in {root}: {e.strerror or e}") from None
    return root


def _open_log(root: Path, readonly: bool, store: Binding | None = None) -> DeviceLog:
    """DIR/log, or the CA's log in the store `store` or DIR/STORE names (a `store` given is
    recorded in DIR/STORE once the store answered; one that disagrees with it is refused)."""
    try:
        known = recorded(root)
    except BindingError as e:
        raise CAError(e.reason, e.text) from None
    if store is not None and known is not None and (
            not same_store(store.shown, known.url) or store.device != known.device):
        raise CAError(Reason.INVALID_VALUE, f"{root} keeps the CA log {known.device} in "
                      f"{known.url}, not {store.device} in {store.shown}: refusing to mix them.")
    binding = store or known
    try:
        if binding is None:
            return FileEventLog.open(root / LOG_DIR, readonly=readonly)
        from engine.sharedlog import SharedLog

        log = SharedLog.open(binding.url, binding.device, root / AUDIT_DIR, kind="ca",
                             readonly=readonly, exclusive=True)  # one writer, as DIR/log
        if known is None and not readonly:
            try:
                record(root, binding)
            except BindingError as e:
                log.close()
                raise CAError(e.reason, e.text) from None
        return log
    except LogLocked:
        raise CALocked(root) from None
    except LogError as e:  # damaged, or shorter than what was acknowledged: name it
        raise CAError(Reason.BAD_DATA, e.text) from None

