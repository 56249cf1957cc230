"""`show crypto ca certificates` and `show crypto ca trustpoint`, from the folded state; the CA
certificate `crypto ca authenticate` offers for acceptance."""

from __future__ import annotations

from cryptography import x509

from engine.machines.renewal import RenewalPhase
from engine.machines.trustpoint import Lifecycle
from engine.messages import plural
from engine.renewal.messages import certificate_facts
from engine.renewal.schedule import expiry, next_attempt
from engine.state import DeviceState
from engine.trustpoints import (
    RouterCertificate,
    TrustpointConfig,
    TrustpointStatus,
    status_of,
    trustpoint_config,
)
from projections.certfmt import (
    crl_distribution_points,
    fingerprint_lines,
    ios_name,
    ios_serial,
    validity,
)
from projections.timefmt import ios_time

INDENT = " " * 19
USAGE = {"general": "General Purpose", "signature": "Signature", "encryption": "Encryption"}


def _block(title: str, cert: x509.Certificate, extra: list[str]) -> list[str]:
    start, end = validity(cert)
    lines = [title, *extra,
             f"Serial Number      :{ios_serial(cert)}",
             "Subject Name       :", INDENT + ios_name(cert.subject),
             "Issued By          :", INDENT + ios_name(cert.issuer),
             f"Validity Start     :{start}",
             f"Validity End       :{end}"]
    cdps = crl_distribution_points(cert)
    if cdps:
        lines.append("CRL Distribution Point")
        lines += [INDENT + u for u in cdps]
    return lines


def _status(cert: x509.Certificate, now: int, revoked: bool = False) -> str:
    if revoked:  # a CRL of its CA lists it (engine/revocation/)
        return "Revoked"
    if now / 1e6 > cert.not_valid_after_utc.timestamp():
        return "Expired"
    if now / 1e6 < cert.not_valid_before_utc.timestamp():
        return "Not yet valid"
    return "Available"


def _ra_title(cert: x509.Certificate) -> str:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "RA certificate"
    if ku.key_encipherment and not ku.digital_signature:
        return "RA KeyE certificate"
    if ku.digital_signature and not ku.key_encipherment:
        return "RA Signature certificate"
    return "RA certificate"


def render_certificates(state: DeviceState, names: list[str], now: int = 0) -> str:
    out: list[str] = []
    for name in names:
        st = status_of(state, name)
        if st.ca_certificate is None:
            continue
        if out:
            out.append("")
        out += [f"Trustpoint          :{name}", "====="]
        out += _block("CA certificate", x509.load_der_x509_certificate(st.ca_certificate), [])
        for der in st.ra_certificates:
            ra = x509.load_der_x509_certificate(der)
            out += _block(_ra_title(ra), ra, [])
        for rc in st.certificates:
            cert = x509.load_der_x509_certificate(rc.der)
            out += _block("Router certificate", cert,
                          [f"Key usage          :{USAGE.get(rc.usage, rc.usage)}",
                           f"Status             :"
                           f"{_status(cert, now or rc.installed_at, rc.revoked_at is not None)}"])
        for rc in st.next_certificates:  # renewed, held until their validity begins
            out += _held("Next router certificate", rc)
        out += _shadow_blocks(st)
    return "\n".join(out) + ("\n" if out else "")


def _held(title: str, rc: RouterCertificate) -> list[str]:
    """A router certificate held until its time comes (renewed, or under a shadow CA)."""
    return _block(title, x509.load_der_x509_certificate(rc.der),
                  [f"Key usage          :{USAGE.get(rc.usage, rc.usage)}",
                   "Status             :Held"])


def _shadow_blocks(st: TrustpointStatus) -> list[str]:
    """CA rollover (engine/rollover/): the CA's next certificate and the router certificates
    under it, held until the current CA certificate expires."""
    out: list[str] = []
    if st.shadow_ca_certificate is not None:
        out += _block("Shadow CA certificate",
                      x509.load_der_x509_certificate(st.shadow_ca_certificate),
                      ["Status             :Held"])
    for rc in st.shadow_certificates:
        out += _held("Shadow router certificate", rc)
    return out


def _duration(us: int) -> str:
    """HH:MM:SS, with whole days in front once there is one (`291d 23:58:43`)."""
    s = max(0, us // 1_000_000)
    days, s = divmod(s, 86_400)
    clock = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {clock}" if days else clock


def render_trustpoints(state: DeviceState, names: list[str], now: int) -> str:
    out: list[str] = []
    for name in names:
        cfg = trustpoint_config(state, name)
        if cfg is None:
            continue
        st = status_of(state, name)
        if out:
            out.append("")
        method = ("terminal" if cfg.terminal else
                  f"url {cfg.scep_url}" if cfg.scep_url else "not configured")
        out += [f"Trustpoint          :{name}",
                f"State               :{st.lifecycle.value}",
                f"Enrollment          :{method}",
                f"Key pair            :{cfg.key_label}",
                f"Retry period        :{cfg.retry_period} minute(s)",
                f"Retry count         :{cfg.retry_count}",
                "CA certificate      :" + (f"authenticated ({st.ca_source})"
                                           if st.ca_certificate else "not authenticated"),
                f"Router certificates :{len(st.certificates)}"]
        if cfg.query_url:
            out.append(f"Query url           :{cfg.query_url}")
        if cfg.crl_optional:
            out.append("CRL                 :optional")
        e = st.enrollment
        if e is not None:
            out.append(f"Pending request     :{e.method}, requested "
                       f"{ios_time(e.requested_at)}")
            out += [f"  Transaction ID    :{t}" for t in e.transaction_ids]
            if e.method == "scep":
                out.append(f"  Polls             :{e.polls} of {e.retry_count}")
                if e.next_poll_at:
                    out.append(f"  Next poll         :in {_duration(e.next_poll_at - now)} "
                               f"({ios_time(e.next_poll_at)})")
            else:
                out.append(f"  Certificates in   :{len(e.received)} of {len(e.key_ids)}")
        if st.last_result:
            out.append(f"Last enrollment     :{st.last_result}")
        out += _renewal_lines(cfg, st, now)
        out += _rollover_lines(st)
    return "\n".join(out) + ("\n" if out else "")


def _renewal_lines(cfg: TrustpointConfig, st: TrustpointStatus, now: int) -> list[str]:
    """Automatic renewal: the configuration, the renewal's phase, its last attempt and what
    comes next."""
    out = []
    if cfg.auto_enroll is not None:
        out.append(f"Auto-enroll         :{cfg.auto_enroll}% of the lifetime "
                   f"({cfg.renewal_message_type})")
    r = st.renewal
    if r is not None:
        out.append(f"Renewal             :{r.phase.value}, {plural(r.attempts, 'attempt')} "
                   f"since {ios_time(r.started_at)}")
        result = r.last_result or "awaiting the CA"
        out.append(f"  Last attempt      :{ios_time(r.last_attempt_at)} ({result})")
        if r.phase is RenewalPhase.PENDING and r.next_poll_at:
            out.append(f"  Polls             :{r.polls} of {r.retry_count}")
            out.append(f"  Next poll         :in {_duration(r.next_poll_at - now)} "
                       f"({ios_time(r.next_poll_at)})")
    at = next_attempt(cfg, st)
    if at is not None:
        out.append(f"Next renewal        :in {_duration(at - now)} ({ios_time(at)})")
    elif (cfg.auto_enroll is not None and st.lifecycle is Lifecycle.ENROLLED
          and st.certificates and not st.next_certificates):
        # Renewal never tries past the certificate's end: say so, or a renewal left
        # `retrying` reads as if it still were.
        end = expiry(st)
        if end <= now:
            out.append(f"Next renewal        :none: the router certificate expired at "
                       f"{ios_time(end)}; enter 'crypto ca enroll {cfg.name}'")
        elif r is not None and r.phase is RenewalPhase.RETRYING and not r.next_attempt_at:
            out.append(f"Next renewal        :none: no attempt is left before the router "
                       f"certificate expires at {ios_time(end)}; enter 'crypto ca enroll "
                       f"{cfg.name}'")
    return out


def _rollover_lines(st: TrustpointStatus) -> list[str]:
    """CA rollover (engine/rollover/), while one is under way or stuck; nothing otherwise."""
    ro = st.rollover
    if st.shadow_ca_certificate is not None and st.ca_certificate is not None:
        return [f"CA rollover         :shadow CA certificate held, current from "
                f"{ios_time(certificate_facts(st.ca_certificate)[1])}",
                f"  Shadow certs      :{len(st.shadow_certificates)} of {len(st.certificates)}"]
    if ro is not None and ro.not_offered_at and st.ca_certificate is not None:
        return ["CA rollover         :the CA does not offer GetNextCACert; re-authenticate "
                f"before {ios_time(certificate_facts(st.ca_certificate)[1])}",
                f"  Next check        :{ios_time(ro.next_attempt_at)}"]
    if ro is not None and ro.attempts:
        return [f"CA rollover         :{plural(ro.attempts, 'failed attempt')}, next at "
                f"{ios_time(ro.next_attempt_at)}",
                f"  Last result       :{ro.last_result}"]
    return []


def render_ca_offer(der: bytes) -> str:
    """The CA certificate `crypto ca authenticate` asks the operator to accept."""
    cert = x509.load_der_x509_certificate(der)
    start, end = validity(cert)
    return "\n".join([
        f"Serial Number :{ios_serial(cert)}",
        "Subject Name  :", ios_name(cert.subject),
        "Issued By     :", ios_name(cert.issuer),
        f"Validity Start :{start}",
        f"Validity End   :{end}",
        *fingerprint_lines(der), ""])
