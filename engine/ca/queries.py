"""What the SCEP frontend asks of the CA's state, and the answers: one vocabulary for the
in-process server and for the worker processes of `ca serve --workers N`.

A SCEP request needs the CA's state (and, for enrollments, its one writer) only between
parsing and answering: the frontend (engine/ca/scep_frontend.py) turns a verified pkiMessage
into a `Query`, the owner of the log turns the query into an `Answer` with `answer(ca, policy,
query)`, and the frontend builds the CertRep from it. In one process that is a function call;
with workers the query and the answer cross a local channel (engine/ca/channel.py) as the
msgpack-ready dicts of `encode_query` / `encode_answer`.

Nothing secret crosses: an enrollment carries the SHA-256 of its challenge password, never
the password, and neither side ever sends a private key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.ca.decide import Enroll, Policy, ReplyStatus
from engine.ca.errors import CAError, CAUnavailable, FailInfo, ScepRefusal
from engine.ca.service import BuiltinCA, Enrolled

T = TypeVar("T")

# -- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrollQuery:
    """A verified PKCSReq/RenewalReq: decide, record, issue if approved."""

    command: Enroll
    actor: str  # "scep:<peer address>"


@dataclass(frozen=True, slots=True)
class PollQuery:
    """CertPoll (or GetCertInitial): the status of a request, asked by the pkiMessage signer."""

    transaction_id: str
    signer_certificate: bytes  # DER


@dataclass(frozen=True, slots=True)
class CertificateQuery:
    """GetCert: a certificate this CA issued, by serial (lowercase hex)."""

    serial: str


Query = EnrollQuery | PollQuery | CertificateQuery

# -- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """The status of a request; `certificate` (DER) on SUCCESS, `reason` on FAILURE."""

    status: ReplyStatus
    certificate: bytes | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Found:
    certificate: bytes  # DER


@dataclass(frozen=True, slots=True)
class Refused:
    """The CA refused the query; answered with a CertRep FAILURE carrying `fail_info`."""

    fail_info: FailInfo
    message: str  # without the leading "% "


Answer = Outcome | Found | Refused


def answer(ca: BuiltinCA, policy: Policy, query: Query) -> Answer:
    """Run `query` on the CA (the only side that reads or writes its state). CAUnavailable
    (the log cannot be made durable) is no answer to a peer's request: it propagates."""
    try:
        if isinstance(query, EnrollQuery):
            return _outcome(ca.enroll(query.command, policy, actor=query.actor))
        if isinstance(query, PollQuery):
            return _poll(ca, query)
        issued = ca.certificate(query.serial)
        if issued is None:
            raise ScepRefusal(FailInfo.BAD_CERT_ID, f"no certificate with serial {query.serial}")
        return Found(issued.certificate)
    except CAUnavailable:
        raise
    except ScepRefusal as e:
        return Refused(e.fail_info, e.text)
    except CAError as e:
        return Refused(FailInfo.BAD_REQUEST, e.text)


def _outcome(enrolled: Enrolled) -> Outcome:
    cert = enrolled.certificate.certificate if enrolled.certificate is not None else None
    return Outcome(enrolled.status, cert, enrolled.reason)


def _poll(ca: BuiltinCA, query: PollQuery) -> Outcome:
    known = ca.state.requests.get(query.transaction_id)
    if known is None:
        raise ScepRefusal(FailInfo.BAD_CERT_ID,
                          f"no request with transactionID {query.transaction_id}")
    signer = x509.load_der_x509_certificate(query.signer_certificate)
    signer_spki = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # Only the requester (its key, or the certificate that signed its renewal) may poll.
    if signer_spki != known.public_key and query.signer_certificate != known.signer_certificate:
        raise ScepRefusal(FailInfo.BAD_REQUEST,
                          "CertPoll not signed by the requester of that transaction")
    return _outcome(ca.poll(query.transaction_id))


# -- the channel encoding ------------------------------------------------------------------------


class BadFrame(ValueError):
    """A query or answer dict that is not one (a bug in the other process)."""


def encode_query(query: Query) -> dict[str, Any]:
    if isinstance(query, EnrollQuery):
        c = query.command
        return {"k": "enroll", "txid": c.transaction_id, "mt": c.message_type,
                "subject": c.subject, "subject_text": c.subject_text, "spki": c.public_key,
                "ext": c.requested_extensions, "signer": c.signer_certificate,
                "challenge_sha256": c.challenge_sha256, "gen": c.ca_generation,
                "actor": query.actor}
    if isinstance(query, PollQuery):
        return {"k": "poll", "txid": query.transaction_id, "signer": query.signer_certificate}
    return {"k": "cert", "serial": query.serial}


def decode_query(d: Any) -> Query:
    kind = _field(d, "k", str)
    if kind == "enroll":
        digest = d.get("challenge_sha256")
        if digest is not None and (not isinstance(digest, bytes) or len(digest) != 32):
            raise BadFrame("challenge_sha256 is not a SHA-256 digest")
        return EnrollQuery(Enroll(
            transaction_id=_field(d, "txid", str), message_type=_field(d, "mt", int),
            subject=_field(d, "subject", bytes), subject_text=_field(d, "subject_text", str),
            public_key=_field(d, "spki", bytes), requested_extensions=_field(d, "ext", bytes),
            signer_certificate=_field(d, "signer", bytes), challenge_sha256=digest,
            ca_generation=_field(d, "gen", int)), actor=_field(d, "actor", str))
    if kind == "poll":
        return PollQuery(_field(d, "txid", str), _field(d, "signer", bytes))
    if kind == "cert":
        return CertificateQuery(_field(d, "serial", str))
    raise BadFrame(f"unknown query kind {kind[:20]!r}")


def encode_answer(a: Answer) -> dict[str, Any]:
    if isinstance(a, Outcome):
        return {"k": "outcome", "status": a.status.value, "certificate": a.certificate,
                "reason": a.reason}
    if isinstance(a, Found):
        return {"k": "found", "certificate": a.certificate}
    return {"k": "refused", "fail_info": int(a.fail_info), "message": a.message}


def decode_answer(d: Any) -> Answer:
    kind = _field(d, "k", str)
    try:
        if kind == "outcome":
            cert = d.get("certificate")
            if cert is not None and not isinstance(cert, bytes):
                raise BadFrame("certificate is not bytes")
            return Outcome(ReplyStatus(_field(d, "status", str)), cert, _field(d, "reason", str))
        if kind == "found":
            return Found(_field(d, "certificate", bytes))
        if kind == "refused":
            return Refused(FailInfo(_field(d, "fail_info", int)), _field(d, "message", str))
    except ValueError as e:  # an unknown status or failInfo value
        raise BadFrame(str(e)) from None
    raise BadFrame(f"unknown answer kind {kind[:20]!r}")


def _field(d: Any, name: str, kind: type[T]) -> T:
    if not isinstance(d, dict):
        raise BadFrame("not a map")
    value = d.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadFrame(f"field {name!r} is not {kind.__name__}")
    return value
