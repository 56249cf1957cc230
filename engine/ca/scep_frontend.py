"""The CA's SCEP operations (RFC 8894 §3.5, §4) over the sans-I/O core in engine/scep.

`ScepResponder` does everything a SCEP request needs except the CA's state: it parses and
verifies a pkiMessage with the core (`begin`), turns it into a `Query` (engine/ca/queries.py),
and builds the CertRep from the `Answer` (`finish`) with the request's own digest and cipher
(signatureAlgorithm rsaEncryption, by the core). Everything a peer gets wrong becomes a
CertRep FAILURE with its failInfo when the request's transactionID and senderNonce could be
read, else HTTP 400. It holds only certificates, keys, a clock and randomness, so the worker
processes of `ca serve --workers N` each run one while the process that owns the log answers
their queries.

`ScepFrontend` is the in-process application behind the HTTP adapter and the in-process
transport: a responder
whose queries `BuiltinCA` answers directly. Bytes in, bytes out.

Policy applied here (the core leaves it to us): `strict` refuses DES, 3DES and SHA-1 with
badAlg; a signingTime more than `signing_time_tolerance` from our clock gets badTime; CertPoll
is answered only to the key of the pending request (or its renewal signer); GetCert and GetCRL
only for our own issuer name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.ca import offline
from engine.ca.decide import Enroll, Policy, ReplyStatus
from engine.ca.errors import CAError, CAUnavailable, ScepRefusal
from engine.ca.profile import serial_hex
from engine.ca.queries import (
    Answer,
    CertificateQuery,
    EnrollQuery,
    Found,
    PollQuery,
    Query,
    Refused,
    answer,
)
from engine.ca.service import BuiltinCA, challenge_digest
from engine.ports import Clock, Randomness
from engine.scep import (
    Capabilities,
    Capability,
    ContentCipher,
    Credential,
    DigestAlgorithm,
    FailInfo,
    MessageType,
    ReplyTo,
    ScepError,
    ScepRequest,
    build_ca_certificates,
    build_cert_rep_failure,
    build_cert_rep_pending,
    build_cert_rep_success,
    build_next_ca_certificates,
    check_signing_time,
    new_nonce,
    parse_request,
)
from engine.scep.attributes import check_transaction_id
from engine.scep.wire import Unanswerable

log = structlog.get_logger("trustledger.ca.scep")

CAPABILITIES = Capabilities.of(
    Capability.AES, Capability.DES3, Capability.POST_PKI_OPERATION, Capability.RENEWAL,
    Capability.SHA1, Capability.SHA256, Capability.SHA384, Capability.SHA512,
    Capability.SCEP_STANDARD)
STRICT_CAPABILITIES = Capabilities(CAPABILITIES.keywords - {Capability.DES3, Capability.SHA1})
WEAK_CIPHERS = frozenset({ContentCipher.DES_CBC, ContentCipher.DES_EDE3_CBC})
DEFAULT_SIGNING_TIME_TOLERANCE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Ask:
    """A verified request waiting for the CA's answer to `query`; `signer` signs the CertRep."""

    request: ScepRequest
    query: Query
    peer: str
    signer: Credential


class ScepResponder:
    """Parse, check and answer pkiMessages for a CA whose state lives elsewhere.

    `signer` signs CertReps (the CA, or the RA signing credential), `decrypter` opens requests
    (the CA, or the RA encryption credential); `crl` returns the current CRL (DER) for GetCRL.
    Without RA certificates, `generations` are every CA certificate with its key, oldest
    first (`ca rollover`; engine/ca/generations.py): the one not yet expired on `clock`
    answers GetCACert and signs, the one after it is offered by GetNextCACert, and a request
    enveloped to either is answered by (and, through `Enroll.ca_generation`, issued under)
    the one it was enveloped to.
    """

    def __init__(self, *, ca_certificate: x509.Certificate,
                 ra_certificates: tuple[x509.Certificate, x509.Certificate] | None,
                 signer: Credential, decrypter: Credential, crl: Callable[[], bytes],
                 clock: Clock, randomness: Randomness, strict: bool = False,
                 signing_time_tolerance: timedelta = DEFAULT_SIGNING_TIME_TOLERANCE,
                 generations: Sequence[Credential] = ()) -> None:
        self.ca_certificate = ca_certificate
        self.strict = strict
        self.tolerance = signing_time_tolerance
        self.clock = clock
        self.randomness = randomness
        self._signer = signer
        # Without RAs, a rollover's CA certificates; with them (no rollover), the one signer.
        self._generations = tuple(generations) if ra_certificates is None else ()
        # In --ra mode requests go to the RA encryption certificate; clients that envelope to
        # every certificate of GetCACert (micromdm) also list the others, which is fine.
        self._recipients = list(self._generations) or [decrypter]
        self._crl = crl
        caps = STRICT_CAPABILITIES if strict else CAPABILITIES
        self._caps = caps.render()
        self._caps_with_next = Capabilities(caps.keywords | {Capability.GET_NEXT_CA_CERT}).render()
        self._ca_cert_answer = build_ca_certificates(ca_certificate, ra_certificates or ())
        self._ca_cert_answers = [build_ca_certificates(g.certificate)
                                 for g in self._generations]

    @classmethod
    def for_ca(cls, ca: BuiltinCA, *, strict: bool = False,
               signing_time_tolerance: timedelta = DEFAULT_SIGNING_TIME_TOLERANCE,
               ) -> ScepResponder:
        ra = ca.ra_certificates()
        return cls(ca_certificate=ca.ca_certificate, ra_certificates=ra,
                   signer=Credential(*ca.signer()), decrypter=Credential(*ca.decrypter()),
                   crl=lambda: ca.current_crl().der, clock=ca.clock, randomness=ca.randomness,
                   strict=strict, signing_time_tolerance=signing_time_tolerance,
                   generations=() if ra is not None
                   else [Credential(c, k) for c, k in ca.ca_credentials()])

    # -- which CA certificate answers (engine/ca/generations.py) -----------------------------

    def _current(self) -> int:
        """Index in `_generations` of the CA certificate not yet expired now (the last one
        once all have); 0 without generations."""
        now = self.clock.now()
        for i, g in enumerate(self._generations):
            if now < g.certificate.not_valid_after_utc:
                return i
        return max(len(self._generations) - 1, 0)

    def _next(self) -> int | None:
        current = self._current()
        return current + 1 if current + 1 < len(self._generations) else None

    def _signer_for(self, recipient: x509.Certificate | None) -> Credential:
        """Who signs the CertRep of a request enveloped to `recipient`: that CA certificate
        if it is the current or the next one, else the current one (or the fixed signer)."""
        if not self._generations:
            return self._signer
        current = self._current()
        for i, g in enumerate(self._generations[current:], start=current):
            if recipient is not None and g.certificate == recipient:
                return self._generations[i]
        return self._generations[current]

    def _generation_of(self, recipient: x509.Certificate | None) -> int:
        """`Enroll.ca_generation` of a request enveloped to `recipient` (1-based)."""
        for i, g in enumerate(self._generations):
            if recipient is not None and g.certificate == recipient:
                return i + 1
        return 1

    def get_ca_caps(self) -> bytes:
        # RFC 8894 §3.5.2: the GetNextCACert keyword says the CA answers GetNextCACert, so
        # it is advertised only while a next CA certificate exists.
        return self._caps_with_next if self._next() is not None else self._caps

    def get_ca_cert(self) -> tuple[str, bytes]:
        if self._generations:
            return self._ca_cert_answers[self._current()]
        return self._ca_cert_answer

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        """The next CA certificate in a SignedData signed by the current CA key (RFC 8894
        §4.7.1); NOT_OFFERED while there is none."""
        following = self._next()
        if following is None:
            raise Unanswerable(Unanswerable.Kind.NOT_OFFERED,
                               "GetNextCACert: this CA has no next CA certificate")
        return build_next_ca_certificates([self._generations[following].certificate],
                                          signer=self._generations[self._current()],
                                          signing_time=self.clock.now())

    # -- a PKIOperation in two steps ------------------------------------------------------

    def begin(self, message: bytes, peer: str) -> bytes | Ask:
        """The CertRep, if it needs nothing from the CA's state; else what to ask the CA.
        Raises Unanswerable for what is not a pkiMessage."""
        try:
            req = parse_request(message, recipients=self._recipients)
        except x509.InvalidVersion:
            # cryptography raises this (not ValueError) for a certificate with a bad version;
            # the core lets it through, so it is caught here.
            raise Unanswerable(Unanswerable.Kind.MALFORMED,
                               "not a pkiMessage: a certificate has an invalid version") from None
        except ScepError as e:
            if e.reply_to is None or not _replyable(e.reply_to.transaction_id):
                raise Unanswerable(Unanswerable.Kind.MALFORMED,
                                   f"not a pkiMessage: {e.detail}") from None
            log.info("scep refused", peer=peer, transaction_id=e.reply_to.transaction_id,
                     reason=e.reason.value, detail=e.detail)
            return self._failure(e.reply_to, _fail_info(e), e.detail, self._signer_for(None))
        signer = self._signer_for(req.recipient)
        if not _replyable(req.transaction_id):
            raise Unanswerable(Unanswerable.Kind.MALFORMED,
                               "transactionID is not a PrintableString")
        try:
            self._check_policy(req)
            return self._dispatch(req, peer, signer)
        except ScepError as e:
            log.info("scep refused", peer=peer, transaction_id=req.transaction_id,
                     reason=e.reason.value, detail=e.detail)
            return self._failure(req.reply_to, _fail_info(e), e.detail, signer)
        except ScepRefusal as e:
            log.info("scep refused", peer=peer, transaction_id=req.transaction_id,
                     detail=e.message)
            return self._failure(req.reply_to, e.fail_info, e.text, signer)
        except CAUnavailable as e:  # GetCRL: the CA can no longer vouch for what it holds
            raise unavailable(e) from e
        except CAError as e:  # e.g. the CRL could not be re-issued for a GetCRL
            log.info("scep refused", peer=peer, transaction_id=req.transaction_id,
                     detail=e.message)
            return self._failure(req.reply_to, FailInfo.BAD_REQUEST, e.text, signer)

    def finish(self, ask: Ask, answer: Answer) -> bytes:
        """The CertRep for `ask` once the CA has answered."""
        req, signer = ask.request, ask.signer
        if isinstance(answer, Refused):
            log.info("scep refused", peer=ask.peer, transaction_id=req.transaction_id,
                     detail=answer.message)
            return self._failure(req.reply_to, answer.fail_info, answer.message, signer)
        if isinstance(answer, Found):
            return self._success(req, signer, certificates=[
                x509.load_der_x509_certificate(answer.certificate)])
        if answer.status is ReplyStatus.SUCCESS:
            assert answer.certificate is not None
            return self._success(req, signer, certificates=[
                x509.load_der_x509_certificate(answer.certificate)])
        if answer.status is ReplyStatus.PENDING:
            return build_cert_rep_pending(req.reply_to, signer=signer,
                                          sender_nonce=self._nonce(),
                                          signing_time=self.clock.now())
        return self._failure(req.reply_to, FailInfo.BAD_REQUEST,
                             answer.reason or "request rejected", signer)

    # -- policy and dispatch -----------------------------------------------------------------

    def _check_policy(self, req: ScepRequest) -> None:
        if self.strict and (req.cipher in WEAK_CIPHERS or req.digest is DigestAlgorithm.SHA1):
            raise ScepRefusal(FailInfo.BAD_ALG, f"{req.cipher.name} / {req.digest.caps_keyword} "
                                                "refused (strict mode)")
        if self.strict and req.csr is not None and \
                req.csr.signature_digest is DigestAlgorithm.SHA1:
            raise ScepRefusal(FailInfo.BAD_ALG, "a certificate request signed with SHA-1 is "
                                                "refused (strict mode)")
        check_signing_time(req.signing_time, now=self.clock.now(), tolerance=self.tolerance)

    def _dispatch(self, req: ScepRequest, peer: str, signer: Credential) -> bytes | Ask:
        mt = req.message_type
        signer_der = req.signer_certificate.public_bytes(serialization.Encoding.DER)
        if mt in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
            return Ask(req, EnrollQuery(self._enroll_command(req, signer_der), f"scep:{peer}"),
                       peer, signer)
        if mt is MessageType.CERT_POLL:
            return Ask(req, PollQuery(req.transaction_id, signer_der), peer, signer)
        if mt is MessageType.GET_CERT:
            return Ask(req, CertificateQuery(serial_hex(self._check_issuer(req))), peer, signer)
        if mt is MessageType.GET_CRL:
            self._check_issuer(req)
            return self._success(req, signer, crls=[x509.load_der_x509_crl(self._crl())])
        raise ScepRefusal(FailInfo.BAD_REQUEST, f"{mt.label} is not a request this CA serves")

    def _enroll_command(self, req: ScepRequest, signer_der: bytes) -> Enroll:
        assert req.csr is not None  # the core sets it for PKCSReq/RenewalReq
        password = req.csr.challenge_password
        try:
            request = offline.request_of(req.csr.csr, req.csr.der,
                                         extensions=req.csr.extension_request)
        except ValueError as e:
            raise ScepRefusal(FailInfo.BAD_REQUEST, str(e)) from None
        return Enroll(
            transaction_id=req.transaction_id,
            message_type=int(req.message_type),
            subject=request.subject,
            subject_text=request.subject_text,
            public_key=request.public_key,
            requested_extensions=request.requested_extensions,
            signer_certificate=signer_der,
            challenge_sha256=challenge_digest(password) if password else None,
            ca_generation=self._generation_of(req.recipient),
        )

    def _check_issuer(self, req: ScepRequest) -> int:
        ias = req.issuer_and_serial
        assert ias is not None
        if ias.issuer != self.ca_certificate.subject:
            raise ScepRefusal(FailInfo.BAD_CERT_ID, "not this CA's issuer name")
        return ias.serial_number

    # -- CertReps ----------------------------------------------------------------------------

    def _success(self, req: ScepRequest, signer: Credential, *,
                 certificates: list[x509.Certificate] | None = None,
                 crls: list[x509.CertificateRevocationList] | None = None) -> bytes:
        return build_cert_rep_success(req.reply_to, signer=signer,
                                      sender_nonce=self._nonce(),
                                      random_bytes=self.randomness.token_bytes,
                                      certificates=certificates or (), crls=crls or (),
                                      signing_time=self.clock.now())

    def _failure(self, reply_to: ReplyTo, fail_info: FailInfo, text: str,
                 signer: Credential) -> bytes:
        if self.strict and reply_to.digest is DigestAlgorithm.SHA1:
            # Strict mode signs nothing with SHA-1, not even the refusal.
            reply_to = dataclasses.replace(reply_to, digest=DigestAlgorithm.SHA256)
        return build_cert_rep_failure(reply_to, fail_info, signer=signer,
                                      sender_nonce=self._nonce(),
                                      signing_time=self.clock.now(),
                                      fail_info_text=text[:200])

    def _nonce(self) -> bytes:
        return new_nonce(self.randomness.token_bytes)


class ScepFrontend:
    """The in-process SCEP application: a responder whose queries `ca` answers at once."""

    def __init__(self, ca: BuiltinCA, policy: Policy, *, strict: bool = False,
                 signing_time_tolerance: timedelta = DEFAULT_SIGNING_TIME_TOLERANCE) -> None:
        self.ca = ca
        self.policy = policy
        self.responder = ScepResponder.for_ca(ca, strict=strict,
                                              signing_time_tolerance=signing_time_tolerance)

    def get_ca_caps(self) -> bytes:
        return self.responder.get_ca_caps()

    def get_ca_cert(self) -> tuple[str, bytes]:
        return self.responder.get_ca_cert()

    def get_next_ca_cert(self) -> tuple[str, bytes]:
        return self.responder.get_next_ca_cert()

    def crl(self) -> bytes:
        try:
            return self.ca.current_crl().der
        except CAUnavailable as e:
            raise unavailable(e) from e

    def pki_operation(self, message: bytes, peer: str) -> bytes:
        step = self.responder.begin(message, peer)
        if isinstance(step, Ask):
            try:
                result = answer(self.ca, self.policy, step.query)
            except CAUnavailable as e:
                raise unavailable(e) from e
            return self.responder.finish(step, result)
        return step


def unavailable(e: CAUnavailable) -> Unanswerable:
    """The answer while the CA's log cannot be made durable (HTTP 503): nothing it holds."""
    log.error("ca unavailable", error=str(e.cause))
    return Unanswerable(Unanswerable.Kind.UNAVAILABLE, "the CA cannot record requests "
                                                       "durably; try again later")


def _fail_info(e: ScepError) -> FailInfo:
    """The failInfo to answer `e` with: its own, else badRequest. Compared with None, never
    tested for truth: badAlg is 0 (RFC 8894 §3.2.1.4), and `e.fail_info or BAD_REQUEST`
    answered every unsupported algorithm as badRequest."""
    return e.fail_info if e.fail_info is not None else FailInfo.BAD_REQUEST


def _replyable(transaction_id: str) -> bool:
    """Whether a CertRep can echo this transactionID. The core reads UTF8String/IA5String IDs
    too, but writes only PrintableStrings (RFC 8894 §3.2.1.1); an ID it cannot write gets an
    HTTP 400 instead of a CertRep."""
    try:
        check_transaction_id(transaction_id)
    except ValueError:
        return False
    return True
