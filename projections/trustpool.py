"""`show crypto ca trustpool` and `show crypto ca trustpool policy`, from the folded state.

`show crypto ca trustpool` follows the reference's example, whose text is a flattened table
(all on one line). Read back the way `show crypto ca certificates` lays its blocks out: each
label starts a line, spelled and spaced as the reference spells it (`Serial Number :`,
`Subject:`, `Issued By :`, `Validity Start :`, `Validity End :`, `SHA1 Fingerprint:`); a name
goes on the line after its label, indented like the certificates' names; blocks are separated
by a blank line. Names are RFC 4514 with upper-case labels, as in the reference
(`CN=Cisco Root CA 2048,O=Cisco Systems`). What keeps a certificate from being used is one
more line, `Status :`, after `CA certificate` (only then: a usable certificate's block is the
reference's). The golden file tests/trustpool/golden/show_crypto_ca_trustpool.txt shows it.
"""

from __future__ import annotations

from engine.machines.trustpool import RETRYING
from engine.messages import plural, printable_text
from engine.state import DeviceState
from engine.trustpool.policy import policy_of, rsa_1024_disabled
from engine.trustpool.pool import Entry, TrustpoolState, active, entries, quiet
from engine.trustpool.schedule import next_attempt, next_warning
from projections.certfmt import colon_serial, sha1_hex
from projections.timefmt import ios_time

INDENT = " " * 19


def _status(entry: Entry, now: int) -> str | None:
    c = entry.cert
    if entry.inactive:
        return "Inactive (a downloaded certificate has the same subject)"
    if entry.weak:
        return f"Not used (RSA {c.rsa_bits} bits: crypto ca rsa 1024 disable)"
    if now > c.not_after:
        return "Expired (not used)"
    if now < c.not_before:
        return "Not yet valid (not used)"
    return None


def _block(entry: Entry, now: int) -> list[str]:
    cert = entry.cert.certificate()
    status = _status(entry, now)
    return [f"Trustpool: {entry.origin}", "=====", "CA certificate",
            *([f"Status : {status}"] if status else []),
            f"Serial Number : {colon_serial(cert)}",
            "Subject:", INDENT + printable_text(cert.subject.rfc4514_string()),
            "Issued By :", INDENT + printable_text(cert.issuer.rfc4514_string()),
            f"Validity Start : {ios_time(entry.cert.not_before)}",
            f"Validity End : {ios_time(entry.cert.not_after)}",
            f"SHA1 Fingerprint: {sha1_hex(entry.cert.der)}"]


def render_pool(state: DeviceState, now: int) -> str:
    out: list[str] = []
    with quiet():
        for entry in entries(state.trustpool, rsa_1024_disabled(state)):
            if out:
                out.append("")
            out += _block(entry, now)
    if not out:
        return "% The trustpool is empty.\n"
    return "\n".join(out) + "\n"


def _earliest(pool: TrustpoolState, now: int) -> str:
    """The first active certificate to expire from `now` on (the expired ones are counted
    under "Not usable now")."""
    certs = [c for c in active(pool) if c.not_after >= now]
    if not certs:
        return "none (no certificate of the trustpool expires after now)"
    first = min(certs, key=lambda c: c.not_after)
    with quiet():
        subject = printable_text(first.certificate().subject.rfc4514_string())
    return f"{ios_time(first.not_after)} ({subject})"


def _last_update(pool: TrustpoolState) -> str:
    u = pool.last_update
    if u is None:
        return "never"
    how = "automatic" if u.automatic else "manual"
    if not u.ok:
        return f"{ios_time(u.at)} from {u.url} ({how}): failed: {u.cause}"
    return f"{ios_time(u.at)} from {u.url} ({how}): {plural(u.count, 'certificate')}, {u.signature}"


def _next_update(state: DeviceState) -> str:
    pool = state.trustpool
    at = next_attempt(pool)
    if at is None:
        return "none (no certificate in the trustpool to watch)"
    if policy_of(state).cabundle_url is None:
        warn = next_warning(pool)
        return ("none: no cabundle url is configured (a warning is logged daily, next at "
                f"{ios_time(warn or at)})")
    timer = pool.timer.value
    if pool.failures:
        after = f"after {plural(pool.failures, 'failed attempt')}"
        timer = f"{timer} {after}" if pool.timer is RETRYING else f"{timer}, {after}"
    return f"{ios_time(at)} ({timer}; watching expiry {ios_time(pool.target)})"


def render_policy(state: DeviceState, now: int) -> str:
    pool = state.trustpool
    policy = policy_of(state)
    all_entries = list(entries(pool, rsa_1024_disabled(state)))
    inactive = sum(1 for e in all_entries if e.inactive)
    # An inactive built-in is replaced by its download, counted as inactive above, not here.
    unusable = sum(1 for e in all_entries if not e.inactive and not e.usable_at(now))
    source = (f" ({pool.builtin_source}, SHA-256 {pool.builtin_sha256})"
              if pool.builtin_sha256 else "")
    lines = [
        "Trustpool Policy",
        "",
        f"Built-In certificates   : {len(pool.builtin)}{source}"
        + (f", {inactive} inactive" if inactive else ""),
        f"Downloaded certificates : {len(pool.downloaded)}",
        f"Not usable now          : {unusable}",
        f"CA bundle url           : {policy.cabundle_url or 'not configured'}",
        f"Revocation check (CRL)  : {'optional' if policy.crl_optional else 'required'}",
        f"Description             : {policy.description or '(none)'}",
    ]
    if policy.vrf is not None:
        lines.append(f"VRF                     : {policy.vrf} (recorded; VRFs are not used: "
                     "bundles are fetched in the default routing context)")
    if rsa_1024_disabled(state):
        lines.append("RSA 1024                : disabled (keys of 1024 bits or less not used)")
    lines += [
        f"Last update             : {_last_update(pool)}",
        f"Next automatic update   : {_next_update(state)}",
        f"Earliest expiry         : {_earliest(pool, now)}",
    ]
    return "\n".join(lines) + "\n"
