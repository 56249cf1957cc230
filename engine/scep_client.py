"""The SCEP client: the effects a trustpoint command asks for, and how the runtime performs
them (HTTP through a transport port, messages through the sans-I/O core in engine.scep).

The handler stays pure: it gets back facts (`CAFetched`, `ScepReply`) and decides what they
mean; the performer does the talking and the crypto that needs the private key. Everything a
peer can get wrong (unreachable, HTTP errors, wrong content type, garbage or truncated
PKCS#7, a reply signed by someone else, a mismatched transaction ID or nonce) becomes one
`TrustledgerError` with a `%` message, and nothing is accepted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import scep
from engine.effects import Effect, performs
from engine.errors import OperatorError, PeerError, PeerReason, Reason, peer_words
from engine.keys import KeyPair
from engine.keystore import keystore_of
from engine.pki import parse_rfc4514
from engine.runtime import Ports

if TYPE_CHECKING:
    import httpx

MAX_REPLY = 1 << 20  # a SCEP reply larger than 1 MiB is not a SCEP reply
TIMEOUT = 10.0  # seconds for any one socket operation
DEADLINE = 60.0  # seconds for a whole exchange, whatever the CA does


# -- the transport port ------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes


class ScepTransport(Protocol):
    def get(self, url: str, params: Mapping[str, str]) -> HttpReply: ...

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply: ...


class TransportError(Exception):
    """The CA could not be reached or did not answer in time."""


class ReplyTooLarge(TransportError):
    """The CA answered, with more than MAX_REPLY bytes: no SCEP reply is that large."""


def unreachable(url: str, e: TransportError) -> PeerError:
    """The `%` error for an exchange with the CA at `url` that `e` cut short."""
    if isinstance(e, ReplyTooLarge):
        return PeerError(PeerReason.BAD_ANSWER, f"The CA at {url} sent {e}: not a SCEP reply.")
    return PeerError(PeerReason.UNREACHABLE, f"Unable to reach the CA at {url}: {e}")


def http_failure(e: Exception) -> str:
    """httpx's words for a failed exchange, without the Python repr of the peer's bytes that
    h11 appends to a line it cannot read ("illegal status line: bytearray(b'...')"), nor the
    errno an OS error starts with ("[Errno 111] Connection refused": the words are enough)."""
    text = peer_words(e)
    if ": bytearray(" in text:
        return f"the answer is not HTTP ({text.split(': bytearray(')[0]})"
    return text


class HttpxTransport:
    """HTTP/1.1 through httpx: no proxies from the environment, no redirects, bounded bodies,
    and a total `deadline` (seconds) per exchange: authenticate (GetCACaps + GetCACert), an
    enrollment, each poll. A CA that trickles its answer is cut off at the deadline."""

    def __init__(self, timeout: float = TIMEOUT, deadline: float = DEADLINE) -> None:
        # httpx loads here, with the first transport: a command that talks to no CA never does
        from engine.adapters.http_deadline import Deadline, deadline_client

        self.deadline = Deadline(deadline)
        self.client = deadline_client(self.deadline, timeout)

    def exchange(self) -> AbstractContextManager[None]:
        """The requests made inside share one deadline (a lone request gets its own)."""
        return self.deadline.exchange()

    def _send(self, request: httpx.Request) -> HttpReply:
        import httpx

        with self.exchange():
            try:
                return self._receive(request)
            except httpx.HTTPError as e:
                if self.deadline.expired():
                    raise TransportError(f"no complete answer within the "
                                         f"{self.deadline.seconds:g} s deadline of the "
                                         "exchange") from e
                raise TransportError(http_failure(e)) from e

    def _receive(self, request: httpx.Request) -> HttpReply:
        with self.client.stream(request.method, request.url, content=request.content,
                                headers=request.headers) as resp:
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_REPLY:
                    raise ReplyTooLarge(f"a reply larger than {MAX_REPLY} bytes")
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            return HttpReply(resp.status_code, ctype, bytes(body))

    def get(self, url: str, params: Mapping[str, str]) -> HttpReply:
        return self._send(self._request("GET", url, params=dict(params)))

    def post(self, url: str, params: Mapping[str, str], body: bytes) -> HttpReply:
        return self._send(self._request(
            "POST", url, params=dict(params), content=body,
            headers={"content-type": "application/x-pki-message"}))

    def _request(self, method: str, url: str, **kw: Any) -> httpx.Request:
        """A URL httpx cannot parse (a port out of range, an unclosed IPv6 bracket: one an
        older build let into a configuration) is this exchange's failure, not a crash."""
        import httpx

        from engine.grammar import well_formed_authority

        try:
            return self.client.build_request(method, well_formed_authority(url), **kw)
        except (httpx.InvalidURL, ValueError) as e:
            raise TransportError(f"invalid url {url}") from e


def transport_of(ports: Ports) -> ScepTransport:
    if ports.scep is None:
        ports.scep = HttpxTransport()
    return ports.scep


def one_exchange(ports: Ports) -> AbstractContextManager[None]:
    """One deadline for the requests of one exchange (transports in memory never block)."""
    transport = transport_of(ports)
    return transport.exchange() if isinstance(transport, HttpxTransport) else nullcontext()


# -- effects and facts --------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchCA(Effect):
    """GetCACaps + GetCACert from the enrollment URL."""

    url: str


@dataclass(frozen=True)
class Identity:
    """What goes into our requests for one key pair."""

    subject: str  # RFC 4514 (as x509.Name.rfc4514_string gives it)
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class CAView:
    """The trustpoint's CA as authenticated: what we envelope to and trust replies from."""

    ca_certificate: bytes
    ra_certificates: tuple[bytes, ...]
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class CAFetched(CAView):
    """What GetCACaps + GetCACert found, before the operator accepts it."""

    chain: tuple[bytes, ...] = ()  # the other CA certificates GetCACert sent (its issuers)


@dataclass(frozen=True)
class ScepEnroll(Effect):
    url: str
    key: KeyPair
    identity: Identity
    ca: CAView
    challenge: str = field(repr=False)  # never logged, never stored
    digest: str | None = None  # `message-digest` of the trustpoint, if set
    current_certificate: bytes | None = None  # re-enrollment: our certificate for this key
    renewal_req: bool = False  # RFC 8894 RenewalReq instead of PKCSReq (a renewal only)


@dataclass(frozen=True)
class ScepPoll(Effect):
    url: str
    key: KeyPair
    identity: Identity
    ca: CAView
    transaction_id: str
    digest: str | None = None


@dataclass(frozen=True)
class ScepReply:
    status: scep.PkiStatus
    transaction_id: str
    request_fingerprint: bytes  # DER of the PKCS#10 (for the MD5 shown to the operator)
    certificate: bytes | None = None  # the one for our key, if SUCCESS
    fail_info: scep.FailInfo | None = None
    fail_info_text: str | None = None  # the CA's own words (RFC 8894 failInfoText), if sent


# -- performing ------------------------------------------------------------------------------------


def _checked(reply: HttpReply, what: str, url: str) -> HttpReply:
    if reply.status != 200:
        raise PeerError(PeerReason.BAD_ANSWER,
                        f"{what} failed: the CA at {url} answered HTTP {reply.status}.")
    return reply


def _named(what: str, detail: str) -> str:
    """`detail` said of `what` once ("GetCACert: ...", not "GetCACert: GetCACert: ...")."""
    return detail if detail.startswith(what) else f"{what}: {detail}"


def _caps(ports: Ports, url: str) -> scep.Capabilities:
    try:
        reply = transport_of(ports).get(url, {"operation": "GetCACaps"})
    except TransportError as e:
        raise unreachable(url, e) from e
    if reply.status != 200:
        # RFC 8894 §3.5.2: a CA that does not answer GetCACaps is taken to support nothing.
        return scep.parse_capabilities(b"")
    try:
        return scep.parse_capabilities(reply.body)
    except scep.ScepError as e:
        raise PeerError(PeerReason.BAD_ANSWER, _named("GetCACaps", e.detail)) from e


@performs(FetchCA)
def _fetch_ca(ports: Ports, eff: FetchCA) -> CAFetched:
    with one_exchange(ports):
        caps = _caps(ports, eff.url)
        try:
            reply = _checked(transport_of(ports).get(eff.url, {"operation": "GetCACert",
                                                               "message": "trustledger"}),
                             "GetCACert", eff.url)
        except TransportError as e:
            raise unreachable(eff.url, e) from e
    try:
        found = scep.parse_ca_certificates(reply.content_type, reply.body)
    except scep.ScepError as e:
        raise PeerError(PeerReason.BAD_ANSWER, _named("GetCACert", e.detail)) from e
    ra_certs = [c for c in (found.ra_signing, found.ra_encryption) if c is not None]
    ra = tuple(dict.fromkeys(c.public_bytes(serialization.Encoding.DER) for c in ra_certs))
    return CAFetched(found.ca.public_bytes(serialization.Encoding.DER), ra,
                     tuple(sorted(c.value for c in caps.keywords)),
                     tuple(c.public_bytes(serialization.Encoding.DER) for c in found.chain))


def _ca_certs(view: CAView, trustpoint: str | None = None) -> scep.CACertificates:
    """The CA's certificates by role; refused (OperatorError) when a request cannot be
    encrypted to them. Every SCEP request (enroll, renewal, shadow, poll) goes through here."""
    certs = [x509.load_der_x509_certificate(view.ca_certificate)]
    certs += [x509.load_der_x509_certificate(d) for d in view.ra_certificates]
    cas = scep.cacert.identify_roles(certs)
    _check_recipient(cas, trustpoint)
    return cas


def check_envelope_recipient(view: CAView, trustpoint: str) -> None:
    """Refuse, before anything is sent or recorded, a CA a SCEP request cannot be encrypted
    to: the pkcsPKIEnvelope is RSA key transport to the CA or its RA (RFC 8894 §3), so a CA
    with an EC key and no RSA RA certificate can only enroll by cut-and-paste."""
    _ca_certs(view, trustpoint)


def _check_recipient(cas: scep.CACertificates, trustpoint: str | None) -> None:
    if isinstance(cas.recipient.public_key(), rsa.RSAPublicKey):
        return
    whose = f"The CA of trustpoint {trustpoint}" if trustpoint else "The CA"
    raise OperatorError(Reason.NOT_ALLOWED,
                        f"{whose} has no RSA certificate to encrypt a SCEP request to: SCEP "
                        "envelopes requests with RSA key transport to the CA or its RA "
                        "(RFC 8894 section 3), and this CA has another key type and no RA "
                        "certificate. Use 'enrollment terminal' (cut-and-paste enrollment) "
                        "instead.")


def _subject(identity: Identity) -> x509.Name:
    return parse_rfc4514(identity.subject)


def _signer(ports: Ports, key: KeyPair, subject: x509.Name,
            current: bytes | None = None) -> scep.Credential:
    """Who signs our request: the router certificate we hold for this key when there is one
    (a renewal, as Cisco devices do, so the CA issues anew rather than answering a re-send),
    else a transient self-signed certificate (RFC 8894 §2.3)."""
    private = keystore_of(ports).private_key(key.sealed)
    if not isinstance(private, scep.SigningKey):
        raise OperatorError(Reason.NOT_ALLOWED,
                           f"Key pair {key.label} ({key.algorithm.value}) cannot sign SCEP "
                           "messages; use an RSA or ECDSA key pair.")
    if current is not None:
        try:
            return scep.Credential(x509.load_der_x509_certificate(current), private)
        except ValueError:
            pass  # not this key's certificate after all: sign as a first enrollment
    now = dt.datetime.fromtimestamp(ports.clock.now_us() / 1e6, dt.UTC)
    serial = int.from_bytes(ports.randomness.token_bytes(8), "big") | 1
    cert = scep.build_self_signed_certificate(
        private, subject, not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=1), serial_number=serial)
    return scep.Credential(cert, private)


def request_digest(caps: tuple[str, ...], configured: str | None) -> scep.DigestAlgorithm:
    """The trustpoint's `message-digest` if set, else the strongest the CA advertises."""
    if configured is None:
        return scep.parse_capabilities("\n".join(caps)).strongest_digest()
    try:
        return scep.DigestAlgorithm[configured.upper()]  # md5 is no member: refused
    except KeyError:
        raise OperatorError(Reason.NOT_ALLOWED,
                            f"message-digest {configured} cannot sign a request: MD5 is "
                            "broken for signatures. Use sha256 or stronger.") from None


def csr_digest(digest: scep.DigestAlgorithm) -> scep.DigestAlgorithm:
    """The PKCS#10 signature's hash: SHA-1 cannot sign X.509 objects here (cryptography refuses
    it), so a CA that only speaks SHA-1 gets a SHA-1 pkiMessage around a SHA-256 request."""
    return scep.DigestAlgorithm.SHA256 if digest is scep.DigestAlgorithm.SHA1 else digest


def _params(ports: Ports, signer: scep.Credential, cas: scep.CACertificates,
            caps: tuple[str, ...], txid: str, digest: str | None = None
            ) -> scep.RequestParameters:
    capabilities = scep.parse_capabilities("\n".join(caps))
    now = dt.datetime.fromtimestamp(ports.clock.now_us() / 1e6, dt.UTC)
    return scep.RequestParameters(
        signer=signer, recipient=cas.recipient, transaction_id=txid,
        sender_nonce=scep.new_nonce(ports.randomness.token_bytes),
        cipher=capabilities.strongest_cipher(),
        digest=request_digest(caps, digest), signing_time=now)


def _exchange(ports: Ports, url: str, message: bytes, params: scep.RequestParameters,
              cas: scep.CACertificates, caps: tuple[str, ...]) -> scep.CertRep:
    post = scep.parse_capabilities("\n".join(caps)).post_pki_operation
    try:
        if post:
            reply = transport_of(ports).post(url, {"operation": "PKIOperation"}, message)
        else:
            reply = transport_of(ports).get(url, {"operation": "PKIOperation",
                                                  "message": scep.encode_message_param(message)})
    except TransportError as e:
        raise unreachable(url, e) from e
    _checked(reply, "PKIOperation", url)
    if reply.content_type != scep.PKI_MESSAGE_CONTENT_TYPE:
        raise PeerError(PeerReason.BAD_ANSWER,
                        f"PKIOperation: the CA answered {reply.content_type or 'no type'}, "
                        f"not {scep.PKI_MESSAGE_CONTENT_TYPE}.")
    try:
        return scep.parse_cert_rep(reply.body, signers=[cas.signer],
                                   transaction_id=params.transaction_id,
                                   sender_nonce=params.sender_nonce, recipient=params.signer)
    except scep.ScepError as e:
        raise PeerError(PeerReason.BAD_ANSWER, f"CertRep refused: {e.detail}") from e


def _reply(rep: scep.CertRep, key: KeyPair, csr_der: bytes) -> ScepReply:
    """The CA's answer; of the certificates it sent, the first one for our key."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = next((cert.public_bytes(serialization.Encoding.DER) for cert in rep.certificates
                 if cert.public_key().public_bytes(*spki) == key.public_key), None)
    return ScepReply(rep.status, rep.transaction_id, csr_der, mine, rep.fail_info,
                     rep.fail_info_text)


@performs(ScepEnroll)
def _enroll(ports: Ports, eff: ScepEnroll) -> ScepReply:
    cas = _ca_certs(eff.ca)  # refused before the key is touched
    subject = _subject(eff.identity)
    signer = _signer(ports, eff.key, subject, eff.current_certificate)
    csr = scep.build_csr(
        signer.private_key, subject, challenge_password=eff.challenge or None,
        dns_names=eff.identity.dns_names,
        ip_addresses=[ipaddress.ip_address(a) for a in eff.identity.ip_addresses],
        digest=csr_digest(request_digest(eff.ca.capabilities, eff.digest)))
    # The transactionID is a hash of the key, as IOS does: after a timeout the operator has
    # the request approved "and then enter[s] this command again" (the reference), and the CA
    # recognises the same transaction. Re-enrolling for a new certificate takes a new key.
    txid = scep.transaction_id_for(signer.private_key.public_key())
    params = _params(ports, signer, cas, eff.ca.capabilities, txid, eff.digest)
    build = scep.build_renewal_req if eff.renewal_req else scep.build_pkcs_req
    message = build(params, csr, random_bytes=ports.randomness.token_bytes)
    rep = _exchange(ports, eff.url, message, params, cas, eff.ca.capabilities)
    return _reply(rep, eff.key, csr.public_bytes(serialization.Encoding.DER))


@performs(ScepPoll)
def _poll(ports: Ports, eff: ScepPoll) -> ScepReply:
    subject = _subject(eff.identity)
    signer = _signer(ports, eff.key, subject)
    cas = _ca_certs(eff.ca)
    params = _params(ports, signer, cas, eff.ca.capabilities, eff.transaction_id, eff.digest)
    message = scep.build_cert_poll(params, issuer=cas.ca.subject, subject=subject,
                                   random_bytes=ports.randomness.token_bytes)
    rep = _exchange(ports, eff.url, message, params, cas, eff.ca.capabilities)
    return _reply(rep, eff.key, hashlib.sha256(eff.transaction_id.encode()).digest())


@dataclass(frozen=True)
class BuildRequest(Effect):
    """A PKCS#10 request for cut-and-paste enrollment (signed with the keystore's key)."""

    key: KeyPair
    identity: Identity
    challenge: str = field(repr=False)


@performs(BuildRequest)
def _build_request(ports: Ports, eff: BuildRequest) -> bytes:
    private = keystore_of(ports).private_key(eff.key.sealed)
    if not isinstance(private, scep.SigningKey):
        raise OperatorError(Reason.NOT_ALLOWED,
                           f"Key pair {eff.key.label} cannot sign a certificate request.")
    csr = scep.build_csr(
        private, _subject(eff.identity), challenge_password=eff.challenge,
        dns_names=eff.identity.dns_names,
        ip_addresses=[ipaddress.ip_address(a) for a in eff.identity.ip_addresses])
    return csr.public_bytes(serialization.Encoding.DER)


# -- GetCRL (engine.revocation asks it through its FetchCRL effect) -------------------------


@dataclass(frozen=True)
class CrlQuery:
    """A SCEP GetCRL for the CRL covering `certificate` (DER), signed with the trustpoint's
    key and, when it has one, its router certificate."""

    url: str
    key: KeyPair
    identity: Identity
    ca: CAView
    certificate: bytes
    digest: str | None = None
    current_certificate: bytes | None = None


def get_crl(ports: Ports, query: CrlQuery, timeout_s: float) -> bytes:
    """The CRL's DER from the CA's GetCRL answer (RFC 8894 §3.3.5); a PeerError naming why
    not. Over HTTP the whole exchange gets `timeout_s` seconds (the curl-timeout)."""
    transport = transport_of(ports)
    saved = ports.scep
    if isinstance(transport, HttpxTransport):
        ports.scep = HttpxTransport(timeout=timeout_s, deadline=timeout_s)
    try:
        with one_exchange(ports):
            return _get_crl(ports, query)
    finally:
        ports.scep = saved


def _peer_text(text: str, limit: int = 200) -> str:
    """A peer's own words as we record and show them: control characters as '?', at most
    `limit` characters (the CA chose them, and their length)."""
    return "".join(c if c.isprintable() else "?" for c in text).strip()[:limit]


def _get_crl(ports: Ports, query: CrlQuery) -> bytes:
    cert = x509.load_der_x509_certificate(query.certificate)
    signer = _signer(ports, query.key, _subject(query.identity), query.current_certificate)
    cas = _ca_certs(query.ca)
    txid = ports.randomness.token_bytes(16).hex().upper()
    params = _params(ports, signer, cas, query.ca.capabilities, txid, query.digest)
    message = scep.build_get_crl(params, issuer=cert.issuer, serial_number=cert.serial_number,
                                 random_bytes=ports.randomness.token_bytes)
    rep = _exchange(ports, query.url, message, params, cas, query.ca.capabilities)
    if rep.status is not scep.PkiStatus.SUCCESS or not rep.crls:
        why = _peer_text(rep.fail_info_text or "") or (
            rep.fail_info.name if rep.fail_info is not None else rep.status.name)
        raise PeerError(PeerReason.REFUSED, f"GetCRL: the CA at {query.url} answered {why}")
    return rep.crls[0].public_bytes(serialization.Encoding.DER)
