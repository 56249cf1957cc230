"""The CA's commands, as handlers of the one kernel (engine/runtime.py).

`decide(state, command)` is a generator: it yields effects (`Now`, `DrawRandom`,
`DrawSerial`, `SignCertificate`, `SignCRL`; for `Initialize` and `RollOver` also
`GenerateCAKey`, `SignCACertificate`, `HoldCAKey`, `SignRACertificate`; for `CreateAuditKey`
the keystore's `GenerateKeyPairs`) and returns a `Decided`: the events of one batch, the state
they fold to, and the new CA keys the service writes to files before it appends them. It
runs the pure decisions of engine/ca/decide.py, folds their events into a tentative state
where a later step needs it (an approved request is issued in the same batch; a revocation is
followed by a new CRL), and asks the runtime for whatever comes from outside: the time,
randomness, new keys (the KeyGenerator port), signatures by the CA key (the `Signer`). It
performs nothing itself, so tests drive it with canned answers (given events, when command,
then events). The service (engine/ca/service.py) drives it under its write lock and appends
the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.ca import profile
from engine.ca.decide import (
    Enroll,
    Policy,
    SignOffline,
    check_rollover,
    decide_approve,
    decide_crl,
    decide_enrollment,
    decide_init,
    decide_issue,
    decide_mint_challenge,
    decide_offline,
    decide_reject,
    decide_revoke,
    decide_rollover,
    decide_unissuable,
)
from engine.ca.errors import CAError, FailInfo, ScepRefusal
from engine.ca.generations import generation_at, issuing_generation
from engine.ca.keyfile import key_spec
from engine.ca.offline import OfflineRequest
from engine.ca.state import CAState, RequestStatus, evolve
from engine.ca.template import CertificateTemplate
from engine.effects import DrawRandom, Effect, Now, performs
from engine.errors import Reason
from engine.keys import KeyAlgorithm, KeySpec
from engine.ports import PrivateKey, from_micros, to_micros
from events.ca import CAInitialized, CARolledOver, CRLIssued
from events.registry import Event

if TYPE_CHECKING:
    from engine.runtime import Ports

log = structlog.get_logger("trustledger.ca")

Handler = Generator[Effect, Any, "Decided"]

# The CA's key files in its directory (engine/ca/service.py); a rollover's is named in its event.
CA_KEY = "ca.key"
RA_SIGNING_KEY = "ra-signing.key"
RA_ENCRYPTION_KEY = "ra-encryption.key"
RA_KEY_SPEC = KeySpec(KeyAlgorithm.RSA, 2048)


@dataclass(frozen=True, slots=True)
class Decided:
    """One command's batch: its events, recorded at `at` with `correlation`, the state they
    fold to, and what the command answers besides (a one-time password)."""

    events: list[Event]
    state: CAState
    at: int
    correlation: str = ""
    value: str = ""
    # New CA keys, (file name in the CA directory, key): the service writes them (0600)
    # before it appends the batch; the log never holds a private key.
    keys: tuple[tuple[str, PrivateKey], ...] = ()


# -- effects and the port that performs them --------------------------------------------------


@dataclass(frozen=True)
class DrawSerial(Effect):
    """A fresh random certificate serial (`profile.random_serial`); the answer is an int."""


@dataclass(frozen=True)
class SignCertificate(Effect):
    """Sign a device certificate with the CA key; the answer is a `Signed`, or ScepRefusal
    (badRequest) thrown in if the profile cannot issue it."""

    request: profile.EndEntityRequest
    serial: int
    not_before: datetime
    not_after: datetime
    crl_url: str | None
    generation: int = 1  # which CA certificate and key sign (engine/ca/generations.py)
    ldap_url: str | None = None  # a second name of the same CDP (ca serve --ldap-url)


@dataclass(frozen=True)
class SignCRL(Effect):
    """Sign a CRL with the CA key; the answer is its DER."""

    number: int
    this_update: datetime
    next_update: datetime
    entries: tuple[profile.RevokedEntry, ...]
    generation: int = 1


@dataclass(frozen=True)
class GenerateCAKey(Effect):
    """A new private key of `spec` from the KeyGenerator port (the CA keeps it in a file, not
    sealed in a keystore); the answer is the key."""

    spec: KeySpec


@dataclass(frozen=True)
class SignCACertificate(Effect):
    """Self-sign a CA certificate with `key` (engine/ca/profile.py); the answer is its DER."""

    key: PrivateKey
    subject: x509.Name
    serial: int
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class HoldCAKey(Effect):
    """From now on the Signer port signs for generation 1 with `key` and `certificate` (DER):
    `ca init` signs its RA certificates and its first CRL with the key it just made."""

    key: PrivateKey
    certificate: bytes


@dataclass(frozen=True)
class SignRACertificate(Effect):
    """Issue an RA certificate (`purpose` "signing" or "encryption") for `key` with the CA key
    of generation 1; the answer is its DER."""

    key: rsa.RSAPrivateKey
    purpose: str
    serial: int
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Signed:
    der: bytes
    not_before: int  # µs, as the certificate states it (whole seconds)
    not_after: int


class Signer(Protocol):
    """The CA's signing key, a port: what holds the key signs; decisions never see it."""

    def sign_certificate(self, eff: SignCertificate) -> Signed: ...

    def sign_crl(self, eff: SignCRL) -> bytes: ...

    def sign_ra_certificate(self, eff: SignRACertificate) -> bytes: ...


class KeySigner:
    """Signs with the CA's private keys and certificates (engine/ca/profile.py): generation 1's
    (`ca init`) and those of later rollovers (`add`), each effect naming its generation."""

    def __init__(self, key: PrivateKey, certificate: x509.Certificate) -> None:
        self._keys: dict[int, tuple[PrivateKey, x509.Certificate]] = {}
        # Device certificates of an RSA CA key from DER parts (engine/ca/template.py).
        self._templates: dict[int, CertificateTemplate | None] = {}
        self.add(1, key, certificate)

    def add(self, generation: int, key: PrivateKey, certificate: x509.Certificate) -> None:
        self._keys[generation] = (key, certificate)
        self._templates[generation] = CertificateTemplate.for_ca(key, certificate)

    def _key(self, generation: int) -> tuple[PrivateKey, x509.Certificate]:
        found = self._keys.get(generation)
        if found is None:
            raise CAError(Reason.NOT_FOUND, f"the key of CA certificate {generation} is not "
                                            "loaded")
        return found

    def sign_certificate(self, eff: SignCertificate) -> Signed:
        key, ca_cert = self._key(eff.generation)
        template = self._templates[eff.generation]
        if template is not None:
            try:
                issued = template.issue(eff.request, eff.serial, eff.not_before, eff.not_after,
                                        eff.crl_url, eff.ldap_url)
            except ValueError as e:
                raise ScepRefusal(FailInfo.BAD_REQUEST, f"cannot issue: {e}") from None
            return Signed(issued.der, to_micros(issued.not_before), to_micros(issued.not_after))
        try:
            cert = profile.end_entity_certificate(key, ca_cert, eff.request, eff.serial,
                                                  eff.not_before, eff.not_after, eff.crl_url,
                                                  eff.ldap_url)
        except ValueError as e:
            raise ScepRefusal(FailInfo.BAD_REQUEST, f"cannot issue: {e}") from None
        return Signed(cert.public_bytes(serialization.Encoding.DER),
                      to_micros(cert.not_valid_before_utc), to_micros(cert.not_valid_after_utc))

    def sign_crl(self, eff: SignCRL) -> bytes:
        key, ca_cert = self._key(eff.generation)
        crl = profile.certificate_revocation_list(key, ca_cert, eff.number, eff.this_update,
                                                  eff.next_update, eff.entries)
        return crl.public_bytes(serialization.Encoding.DER)

    def sign_ra_certificate(self, eff: SignRACertificate) -> bytes:
        key, ca_cert = self._key(1)
        cert = profile.ra_certificate(key, ca_cert, eff.key, eff.purpose, eff.serial,
                                      eff.not_before, eff.not_after)
        return cert.public_bytes(serialization.Encoding.DER)


def _signer(ports: Ports) -> Signer:
    if ports.signer is None:
        raise CAError(Reason.NOT_ALLOWED, "the CA is open read-only")
    return ports.signer


@performs(DrawSerial)
def _draw_serial(ports: Ports, eff: DrawSerial) -> int:
    return profile.random_serial(ports.randomness)


@performs(SignCertificate)
def _sign_certificate(ports: Ports, eff: SignCertificate) -> Signed:
    return _signer(ports).sign_certificate(eff)


@performs(SignCRL)
def _sign_crl(ports: Ports, eff: SignCRL) -> bytes:
    return _signer(ports).sign_crl(eff)


@performs(GenerateCAKey)
def _generate_ca_key(ports: Ports, eff: GenerateCAKey) -> PrivateKey:
    from engine.keystore import keygen_of

    key = keygen_of(ports).generate(eff.spec)
    if not eff.spec.matches(key) or not isinstance(key, rsa.RSAPrivateKey
                                                   | ec.EllipticCurvePrivateKey):
        raise TypeError(f"the key generator returned a key that is not {eff.spec}")
    return key


@performs(SignCACertificate)
def _sign_ca_certificate(ports: Ports, eff: SignCACertificate) -> bytes:
    cert = profile.ca_certificate(eff.key, eff.subject, eff.serial, eff.not_before,
                                  eff.not_after)
    return cert.public_bytes(serialization.Encoding.DER)


@performs(HoldCAKey)
def _hold_ca_key(ports: Ports, eff: HoldCAKey) -> None:
    ports.signer = KeySigner(eff.key, x509.load_der_x509_certificate(eff.certificate))


@performs(SignRACertificate)
def _sign_ra_certificate(ports: Ports, eff: SignRACertificate) -> bytes:
    return _signer(ports).sign_ra_certificate(eff)


# -- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A PKCSReq/RenewalReq: recorded, and issued in the same batch if approved and a server
    has set the CDP URL (`crl_url`)."""

    request: Enroll
    policy: Policy
    crl_url: str | None
    ldap_url: str | None = None  # the LDAP name of the CDP, beside `crl_url`


@dataclass(frozen=True, slots=True)
class Approve:
    transaction_id: str
    crl_url: str | None  # issue at once if set, else at the next `IssueApproved`
    ldap_url: str | None = None


@dataclass(frozen=True, slots=True)
class IssueApproved:
    """Issue one approved request still without a certificate, or record why it cannot be."""

    transaction_id: str
    crl_url: str | None
    ldap_url: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    transaction_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Revoke:
    serial: str
    reason: str  # a key of profile.REASONS


@dataclass(frozen=True, slots=True)
class RefreshCRL:
    force: bool  # issue one even if the current one is not due


@dataclass(frozen=True, slots=True)
class MintChallenge:
    valid_for: timedelta


@dataclass(frozen=True, slots=True)
class SignRequest:
    """`ca sign`: an offline PKCS#10 request, signature checked, issued for `days`."""

    request: OfflineRequest
    days: int | None
    crl_url: str | None
    ldap_url: str | None = None


@dataclass(frozen=True, slots=True)
class Initialize:
    """`ca init`: the CA key (`key`, one of engine/ca/keyfile.py KEY_SPECS), its self-signed
    certificate valid `days`, RA keys and certificates with `ra`, and the first CRL."""

    subject: x509.Name
    key: str
    days: int
    certificate_days: int
    ra: bool
    crl_lifetime: timedelta


@dataclass(frozen=True, slots=True)
class RollOver:
    """`ca rollover`: the next CA key and certificate, with the current one's `subject`, valid
    until `days` after the current one expires (None: as long as the current one lasts)."""

    subject: x509.Name
    days: int | None


@dataclass(frozen=True, slots=True)
class CreateAuditKey:
    """The log's audit key (engine/audit/key.py), sealed in the CA directory's keystore."""

    hostname: str = "ca"


def decide(state: CAState, command: object) -> Handler:
    """The handler of `command` over `state` (a generator for `engine.runtime.drive`)."""
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"not a CA command: {type(command).__name__}")
    return handler(state, command)


def _enroll(state: CAState, c: Enrollment) -> Handler:
    now = yield Now()
    txid = c.request.transaction_id
    events = decide_enrollment(state, c.request, c.policy, now)
    after = fold(state, events, now)
    if after.requests[txid].status is RequestStatus.APPROVED and c.crl_url is not None:
        more = yield from _issue(after, txid, now, c.crl_url, c.ldap_url)
        events += more
        after = fold(after, more, now)
    return Decided(events, after, now, txid)


def _approve(state: CAState, c: Approve) -> Handler:
    now = yield Now()
    events = decide_approve(state, c.transaction_id)
    after = fold(state, events, now)
    if c.crl_url is not None:
        more = yield from _issue(after, c.transaction_id, now, c.crl_url, c.ldap_url)
        events += more
        after = fold(after, more, now)
    return Decided(events, after, now, c.transaction_id)


def _issue_approved(state: CAState, c: IssueApproved) -> Handler:
    now = yield Now()
    txid = c.transaction_id
    try:
        events = yield from _issue(state, txid, now, c.crl_url, c.ldap_url)
    except CAError as e:
        log.warning("approved request cannot be issued; rejecting it",
                    transaction_id=txid, reason=e.text)
        events = decide_unissuable(state, txid, e.text)
    return Decided(events, fold(state, events, now), now, txid)


def _reject(state: CAState, c: Reject) -> Handler:
    now = yield Now()
    events = decide_reject(state, c.transaction_id, c.reason)
    return Decided(events, fold(state, events, now), now, c.transaction_id)


def _revoke(state: CAState, c: Revoke) -> Handler:
    """Revoke a certificate and issue a new CRL in the same batch."""
    now = yield Now()
    events = decide_revoke(state, c.serial, c.reason, now)
    after = fold(state, events, now)
    crl = yield from next_crl(after, now)
    events.append(crl)
    return Decided(events, evolve(after, crl, now), now, c.serial)


def _refresh_crl(state: CAState, c: RefreshCRL) -> Handler:
    now = yield Now()
    if not (c.force or crl_due(state, now)):
        return Decided([], state, now)
    crl = yield from next_crl(state, now)
    return Decided([crl], evolve(state, crl, now), now)


def _mint_challenge(state: CAState, c: MintChallenge) -> Handler:
    password = (yield DrawRandom(15)).hex()  # 120 bits
    now = yield Now()
    expires = now + int(c.valid_for.total_seconds() * 1_000_000)
    events = decide_mint_challenge(state, challenge_digest(password), expires)
    return Decided(events, fold(state, events, now), now, value=password)


def _sign_request(state: CAState, c: SignRequest) -> Handler:
    now = yield Now()
    txid = "OFFLINE-" + (yield DrawRandom(8)).hex().upper()
    r = c.request
    events = decide_offline(state, SignOffline(txid, r.subject, r.subject_text, r.public_key,
                                               r.requested_extensions))
    after = fold(state, events, now)
    try:
        more = yield from _issue(after, txid, now, c.crl_url, c.ldap_url, c.days)
    except ScepRefusal as e:  # the profile refused the request: no peer to answer
        raise CAError(Reason.BAD_DATA, e.text) from None
    events += more
    return Decided(events, fold(after, more, now), now, txid)


def _initialize(state: CAState, c: Initialize) -> Handler:
    now = yield Now()
    at = from_micros(now)
    not_before, not_after = at - profile.CLOCK_SKEW, at + timedelta(days=c.days)
    ca_key: PrivateKey = yield GenerateCAKey(key_spec(c.key))
    serial = yield DrawSerial()
    ca_der: bytes = yield SignCACertificate(ca_key, c.subject, serial, not_before, not_after)
    yield HoldCAKey(ca_key, ca_der)  # it signs the RA certificates and the first CRL
    keys: tuple[tuple[str, PrivateKey], ...] = ((CA_KEY, ca_key),)
    ra: list[bytes | None] = [None, None]
    if c.ra:
        signing: rsa.RSAPrivateKey = yield GenerateCAKey(RA_KEY_SPEC)
        encryption: rsa.RSAPrivateKey = yield GenerateCAKey(RA_KEY_SPEC)
        for i, (ra_key, purpose) in enumerate(((signing, "signing"),
                                               (encryption, "encryption"))):
            serial = yield DrawSerial()
            ra[i] = yield SignRACertificate(ra_key, purpose, serial, not_before, not_after)
        keys += ((RA_SIGNING_KEY, signing), (RA_ENCRYPTION_KEY, encryption))
    initialized = CAInitialized(c.subject.rfc4514_string(), c.key, ca_der, ra[0], ra[1],
                                c.certificate_days, int(c.crl_lifetime.total_seconds()))
    crl = yield from next_crl(evolve(state, initialized, now), now)
    events = decide_init(state, initialized, crl)
    return Decided(events, fold(state, events, now), now, keys=keys)


def _roll_over(state: CAState, c: RollOver) -> Handler:
    now = yield Now()
    current = check_rollover(state, now)
    number = len(state.generations) + 1
    lifetime = timedelta(microseconds=current.not_after - current.not_before)
    key: PrivateKey = yield GenerateCAKey(key_spec(state.key_algorithm))
    serial = yield DrawSerial()
    not_after = (from_micros(current.not_after)
                 + (timedelta(days=c.days) if c.days is not None else lifetime))
    der: bytes = yield SignCACertificate(key, c.subject, serial,
                                         from_micros(now) - profile.CLOCK_SKEW, not_after)
    cert = x509.load_der_x509_certificate(der)
    ev = CARolledOver(number, state.key_algorithm, f"ca-{number}.key", der,
                      to_micros(cert.not_valid_before_utc), to_micros(cert.not_valid_after_utc))
    events = decide_rollover(state, ev, now)
    return Decided(events, fold(state, events, now), now, keys=((ev.key_file, key),))


def _create_audit_key(state: CAState, c: CreateAuditKey) -> Handler:
    from engine.audit.key import new_audit_key

    ev = yield from new_audit_key(c.hostname)
    now = yield Now()
    return Decided([ev], evolve(state, ev, now), now, "open")


_HANDLERS: dict[type, Callable[[CAState, Any], Handler]] = {
    Enrollment: _enroll,
    Approve: _approve,
    IssueApproved: _issue_approved,
    Reject: _reject,
    Revoke: _revoke,
    RefreshCRL: _refresh_crl,
    MintChallenge: _mint_challenge,
    SignRequest: _sign_request,
    Initialize: _initialize,
    RollOver: _roll_over,
    CreateAuditKey: _create_audit_key,
}


# -- steps shared by the commands ------------------------------------------------------------


def _issue(state: CAState, txid: str, now: int, crl_url: str | None, ldap_url: str | None,
           days: int | None = None) -> Generator[Effect, Any, list[Event]]:
    """Sign the certificate of approved request `txid`, valid for `days` (default: the CA's
    certificate validity), its CDP named by `crl_url` (and `ldap_url`, if set)."""
    req = state.requests[txid]
    serial = yield DrawSerial()
    while profile.serial_hex(serial) in state.certificates:
        serial = yield DrawSerial()  # 2^-127 per try; never loops
    at = from_micros(now)
    signed: Signed = yield SignCertificate(
        profile.EndEntityRequest(req.subject, req.public_key, req.requested_extensions),
        serial, at - profile.CLOCK_SKEW,
        at + timedelta(days=days if days is not None else state.certificate_days), crl_url,
        issuing_generation(state.generations, req.ca_generation, now), ldap_url)
    return decide_issue(state, txid, profile.serial_hex(serial), signed.der,
                        signed.not_before, signed.not_after)


def next_crl(state: CAState, now: int) -> Generator[Effect, Any, CRLIssued]:
    """The next CRL: every revoked certificate, valid for the CA's CRL lifetime."""
    number = state.crl.number + 1 if state.crl is not None else 1
    lifetime = timedelta(seconds=state.crl_lifetime_seconds)
    entries = []
    for serial in state.revoked:
        cert = state.certificates[serial]
        assert cert.revoked_at is not None and cert.revocation_reason is not None
        entries.append(profile.RevokedEntry(int(serial, 16), from_micros(cert.revoked_at),
                                            cert.revocation_reason))
    this_update = from_micros(now).replace(microsecond=0)
    der = yield SignCRL(number, this_update, this_update + lifetime, tuple(entries),
                        generation_at(state.generations, now))
    events = decide_crl(state, number, der, to_micros(this_update),
                        to_micros(this_update + lifetime))
    crl = events[0]
    assert isinstance(crl, CRLIssued)
    return crl


def crl_due(state: CAState, now: int) -> bool:
    """True once less than half the CRL's lifetime remains before its nextUpdate, or once
    another CA certificate issues than the one that signed it (a rollover took over)."""
    if state.crl is None:
        return True
    if generation_at(state.generations, state.crl.this_update) != generation_at(
            state.generations, now):
        return True
    margin = state.crl_lifetime_seconds * 1_000_000 // 2
    return now >= state.crl.next_update - margin


def challenge_digest(password: str) -> bytes:
    """What is recorded of a challenge password: its SHA-256, never the password."""
    return hashlib.sha256(password.encode("utf-8")).digest()


def fold(state: CAState, events: Iterable[Event], at: int) -> CAState:
    for ev in events:
        state = evolve(state, ev, at)
    return state

