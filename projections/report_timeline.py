"""The audit report's timeline: which stored event becomes which timeline entry.

`TIMELINE` is the one table: an event type's name -> a function of its stored payload giving
the entry (a kind, a title and the facts an auditor checks: fingerprints, serials, subjects,
keys, diffs). It reads payloads, not event classes, so types another part of trustledger adds
(CRL, validation, renewal, rollover) map here by name alone, and a log written by a newer
build still reports. An event type not in the table, or whose payload an entry does not
understand, still appears: `generic_entry` lists its fields (bytes as their length and
SHA-256). A new trust event is one line here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from engine.certids import ios_name, ios_serial, md5_spaced, sha256_hex
from projections.timefmt import ios_time

Payload = Mapping[str, Any]


@dataclass(frozen=True)
class Entry:
    kind: str  # ca, certificate, key, trustpool, crl, validation, config, clock, audit, other
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    diff: tuple[tuple[str, str], ...] = ()  # ("+" | "-", configuration line)
    refused: bool = False  # a refusal an auditor looks for (shown in red)
    tags: tuple[str, ...] = field(default=())  # trustpoints it concerns


def _tp(p: Payload) -> tuple[str, ...]:
    name = p.get("trustpoint")
    return (str(name),) if name else ()


def _cert_facts(der: bytes) -> list[tuple[str, str]]:
    facts = [("SHA-256", sha256_hex(der))]
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return [*facts, ("certificate", "unparseable DER")]
    return [("subject", ios_name(cert.subject)), ("issuer", ios_name(cert.issuer)),
            ("serial", ios_serial(cert)),
            ("valid", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
                      f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"), *facts]


def _time(us: object) -> str:
    return ios_time(int(us)) if isinstance(us, int) else "-"


def _commit(p: Payload) -> Entry:
    diff: list[tuple[str, str]] = []
    for path, old, new in p["changes"]:
        where = " > ".join(path[:-1])
        prefix = f"{where} > " if where else ""
        if old is not None:
            diff.append(("-", prefix + old))
        if new is not None:
            diff.append(("+", prefix + new))
    title = (f"Rollback to commit {p['rollback_to']} (commit {p['commit_id']})"
             if p.get("rollback_to") else f"Configuration commit {p['commit_id']}")
    facts = [("user", p["user"])] + [(k, p[k]) for k in ("label", "comment") if p.get(k)]
    tps = tuple(sorted({path[0].removeprefix("crypto ca trustpoint ")
                        for path, _o, _n in p["changes"]
                        if path and path[0].startswith("crypto ca trustpoint ")}))
    return Entry("config", title, tuple(facts), tuple(diff), tags=tps)


def _key_generated(p: Payload) -> Entry:
    size = f"{p['algorithm']} {p['size']}" + (f" {p['curve']}" if p.get("curve") else "")
    return Entry("key", f"Key pair generated: {p['label']}", (
        ("key", size), ("usage", p["usage"]), ("key id", p["key_id"]),
        ("public key SHA-256", sha256_hex(p["public_key"]))))


def _key_zeroized(p: Payload) -> Entry:
    return Entry("key", f"Key pair zeroized: {p['label']}", (
        ("algorithm", p["algorithm"]), ("key ids", ", ".join(p["key_ids"])),
        ("reason", p["reason"]), ("data keys", "destroyed (crypto-shredding)")))


def _ca_accepted(p: Payload) -> Entry:
    der = p["ca_certificate"]
    facts = [("trustpoint", p["trustpoint"]), ("source", p["source"]),
             *_cert_facts(der), ("MD5", md5_spaced(der))]
    facts += [(f"RA certificate {i}", sha256_hex(ra))
              for i, ra in enumerate(p["ra_certificates"], 1)]
    return Entry("ca", f"CA certificate accepted for {p['trustpoint']}", tuple(facts),
                 tags=_tp(p))


def _ca_refused(p: Payload) -> Entry:
    return Entry("ca", f"CA certificate refused for {p['trustpoint']}", (
        ("subject", p["subject"]), ("SHA-256", p["sha256_fingerprint"])), refused=True,
        tags=_tp(p))


def _requested(p: Payload) -> Entry:
    return Entry("certificate", f"Certificate requested for {p['trustpoint']}", (
        ("subject", p["subject"]), ("method", p["method"]),
        ("transactions", ", ".join(p["transaction_ids"])),
        ("request MD5", ", ".join(p["request_fingerprints"]))), tags=_tp(p))


def _pending(p: Payload) -> Entry:
    return Entry("certificate", f"Enrollment pending at the CA for {p['trustpoint']}", (
        ("transaction", p["transaction_id"]), ("polls", str(p["polls"])),
        ("next poll", _time(p["next_poll_at"]))), tags=_tp(p))


def _received(p: Payload, what: str = "Certificate received") -> Entry:
    return Entry("certificate", f"{what} for {p['trustpoint']}", (
        ("usage", p["usage"]), ("key id", p["key_id"]), *_cert_facts(p["certificate"])),
        tags=_tp(p))


def _failed(p: Payload, what: str = "Enrollment failed") -> Entry:
    facts = [("reason", p["reason"])] + [(k, p[k]) for k in ("fail_info", "detail")
                                           if p.get(k)]
    return Entry("certificate", f"{what} for {p['trustpoint']}", tuple(facts), refused=True,
                 tags=_tp(p))


def _removed(p: Payload) -> Entry:
    facts = [(f"{kind} {serial}", fp) for kind, serial, fp in
             zip(p["kinds"], p["serials"], p["fingerprints"], strict=False)]
    return Entry("certificate", f"Certificates of {p['trustpoint']} removed ({p['reason']})",
                 tuple(facts), tags=_tp(p))


def _revoked(p: Payload) -> Entry:
    return Entry("certificate", f"Certificate of {p['trustpoint']} revoked", (
        ("serial", p["serial"]), ("reason", p["reason"]), ("revoked at", _time(p["revoked_at"])),
        ("CRL SHA-256", p["crl_sha256"])), refused=True, tags=_tp(p))


def _pool_builtins(p: Payload) -> Entry:
    return Entry("trustpool", "Trustpool built-in bundle recorded", (
        ("source", p["source"]), ("certificates", str(len(p["certificates"]))),
        ("bundle SHA-256", p["sha256"])))


def _pool_imported(p: Payload) -> Entry:
    facts = [("url", p["url"]), ("signature", p["signature"]),
             ("by", "the update timer" if p.get("automatic") else "the operator"),
             ("bundle SHA-256", p["sha256"])]
    if p.get("unchanged"):
        facts.append(("certificates", "unchanged"))
    else:
        facts += [(f"certificate {i}", sha256_hex(der))
                  for i, der in enumerate(p["certificates"], 1)]
    return Entry("trustpool", "Trustpool replaced", tuple(facts + [
        ("note", n) for n in p.get("notes", ())]))


def _crl(p: Payload) -> Entry:
    return Entry("crl", f"CRL applied: {p['issuer_text']}", (
        ("number", str(p.get("number"))), ("this update", _time(p["this_update"])),
        ("next update", _time(p.get("next_update"))), ("revoked entries", str(p["count"])),
        ("source", p["source"]), ("CRL SHA-256", p["sha256"])), tags=_tp(p))


def _validated(p: Payload) -> Entry:
    ok = bool(p["ok"])
    facts = [("peer", str(p.get("peer_name") or "-")), ("purpose", p["purpose"]),
             ("at", _time(p["at"])), ("anchor", f"{p['anchor_source']} {p['anchor_name']}")]
    if not ok:
        facts += [("reasons", ", ".join(p["reasons"])), ("detail", p["detail"])]
    facts += [(f"chain {i}", h) for i, h in enumerate(p["chain"], 1)]
    return Entry("validation", "Peer certificate accepted" if ok else "Validation refused",
                 tuple(facts), refused=not ok)


def _expiry(p: Payload) -> Entry:
    return Entry("certificate", f"Expiry warning for {p['trustpoint']}", (
        ("certificate", p["certificate_type"]), ("serial", p["serial"]),
        ("issuer", p["issuer"]), ("expires", _time(p["not_after"])),
        ("days left", str(p["days_left"]))), tags=_tp(p))


def _simple(kind: str, title: str, *fields: str, refused: bool = False
            ) -> Callable[[Payload], Entry]:
    def entry(p: Payload) -> Entry:
        return Entry(kind, title.format(**p), tuple((f, _text(p[f])) for f in fields),
                     refused=refused, tags=_tp(p))
    return entry


TIMELINE: dict[str, Callable[[Payload], Entry]] = {
    "ConfigurationCommitted": _commit,
    "KeyPairGenerated": _key_generated,
    "KeyPairZeroized": _key_zeroized,
    "PublicKeyImported": _simple("key", "Public key imported: {label}", "algorithm", "usage",
                                 "size", "public_key"),
    "PublicKeyRemoved": _simple("key", "Public key removed: {label}", "reason"),
    "CACertificateAccepted": _ca_accepted,
    "CACertificateRefused": _ca_refused,
    "EnrollmentRequested": _requested,
    "EnrollmentPending": _pending,
    "CertificateReceived": _received,
    "EnrollmentFailed": _failed,
    "TrustpointCertificatesRemoved": _removed,
    "RouterCertificateRevoked": _revoked,
    "TrustpoolBuiltinsRecorded": _pool_builtins,
    "TrustpoolImported": _pool_imported,
    "TrustpoolCleaned": _simple("trustpool", "Trustpool cleaned", "removed"),
    "TrustpoolUpdateFailed": _simple("trustpool", "Trustpool update failed", "url", "cause",
                                     refused=True),
    "TrustpoolPolicyWarned": _simple("trustpool", "Trustpool expiry warning", "target"),
    "CrlFetched": _crl,
    "CrlFetchFailed": _simple("crl", "CRL fetch failed: {issuer_text}", "attempts",
                              refused=True),
    "CrlCacheCleared": _simple("crl", "CRL cache cleared", "removed"),
    "PeerValidated": _validated,
    "RenewalRequested": _simple("certificate", "Renewal requested for {trustpoint}",
                                "purpose", "subject", "message_type", "transaction_ids"),
    "RenewalCertificateReceived": lambda p: _received(p, "Renewed certificate received"),
    "RenewalFailed": lambda p: _failed(p, "Renewal failed"),
    "NextCertificateActivated": _simple("certificate", "Next certificate activated for "
                                        "{trustpoint}", "serial", "usage", "key_id"),
    "CertificateExpiryWarned": _expiry,
    "ClockSet": lambda p: Entry("clock", f"Clock set to {_time(p['set_to_us'])}"),
    "AuditKeyCreated": _simple("audit", "Audit key created", "origin", "public_key"),
}


def entry_for(type_name: str, payload: Payload) -> Entry:
    """The timeline entry of one stored event (see the module docstring)."""
    make = TIMELINE.get(type_name)
    if make is not None:
        try:
            return make(payload)
        except (KeyError, TypeError, ValueError):
            pass  # a payload of another shape (a newer schema): shown as it is
    return generic_entry(type_name, payload)


def generic_entry(type_name: str, payload: Payload) -> Entry:
    title = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", type_name)
    return Entry("other", title, tuple((k, _text(v)) for k, v in payload.items()),
                 tags=_tp(payload))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes, SHA-256 {hashlib.sha256(value).hexdigest().upper()}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**15:
        return ios_time(value)  # µs since the epoch: every time the log records
    return str(value)
