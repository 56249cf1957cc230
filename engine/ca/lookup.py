"""Finding a request or a certificate from what the operator typed: a transaction ID or a
serial number, whole or a unique prefix, in any case; a serial also as the router prints it
(`0A1B`, leading zero kept), with colons, or with `0x`.

Rules: an exact match wins; otherwise the one entry the text is a prefix of; several is an
ambiguity, refused with the candidates listed (`%` error), none is NOT_FOUND. `ca revoke`
cannot be undone, so it takes no prefix: `find_whole_serial` names the certificate a prefix
would have picked and refuses it. Pure functions over the CA's state.
"""

from __future__ import annotations

from engine.ca.console import router_serial
from engine.ca.errors import CAError
from engine.ca.state import CAState
from engine.errors import Reason

MAX_LISTED = 10


def _serial_key(text: str) -> str:
    return text.strip().upper().removeprefix("0X").replace(":", "")


def serial_matches(serial: str, typed: str) -> bool:
    """Whether `typed` names (or starts) CA serial `serial` (lower-case hex, no leading 0)."""
    key = _serial_key(typed)
    return bool(key) and (router_serial(serial).startswith(key)
                          or serial.upper().startswith(key))


def _pick(typed: str, exact: list[str], candidates: list[str], shown: dict[str, str], *,
          one: str, field: str, many: str) -> str:
    """`one`: "request with transaction ID"; `field`: "transaction IDs"; `many`: "requests"."""
    if exact:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    typed = typed.strip()
    if not candidates:
        raise CAError(Reason.NOT_FOUND, f"no {one} {typed}")
    listed = ", ".join(shown[c] for c in sorted(candidates)[:MAX_LISTED])
    more = f" and {len(candidates) - MAX_LISTED} more" if len(candidates) > MAX_LISTED else ""
    raise CAError(Reason.AMBIGUOUS, f"{typed} is ambiguous: it starts the {field} of "
                                    f"{len(candidates)} {many}: {listed}{more}")


def find_serial(state: CAState, typed: str) -> str:
    """The serial (as the state keys it) of the certificate `typed` names."""
    key = _serial_key(typed)
    serials = list(state.certificates)
    exact = [s for s in serials if key in (router_serial(s), s.upper())]
    candidates = [s for s in serials if serial_matches(s, typed)]
    return _pick(typed, exact, candidates, {s: router_serial(s) for s in serials},
                 one="certificate with serial", field="serials", many="certificates")


def find_whole_serial(state: CAState, typed: str) -> str:
    """Like `find_serial`, but `typed` must be the whole serial (in any case, with colons,
    `0x` or the router's leading zero): a unique prefix is refused, naming what it matches."""
    serial = find_serial(state, typed)
    if _serial_key(typed) not in (router_serial(serial), serial.upper()):
        cert = state.certificates[serial]
        raise CAError(Reason.INVALID_VALUE, f"Revoking needs the whole serial number: "
                                            f"{typed.strip()} matches {router_serial(serial)} "
                                            f"({cert.subject_text}).")
    return serial


def find_transaction(state: CAState, typed: str) -> str:
    """The transaction ID of the request `typed` names."""
    key = typed.strip().upper()
    txids = list(state.requests)
    exact = [t for t in txids if t.upper() == key]
    candidates = [t for t in txids if key and t.upper().startswith(key)]
    return _pick(typed, exact, candidates, {t: t for t in txids},
                 one="request with transaction ID", field="transaction IDs", many="requests")


def find_any(state: CAState, typed: str) -> tuple[str, str]:
    """("certificate", serial) or ("request", transaction ID) for `ca show`; a text that
    names both kinds is ambiguous unless it is one of them exactly."""
    found: list[tuple[str, str]] = []
    errors: list[CAError] = []
    for kind, find in (("certificate", find_serial), ("request", find_transaction)):
        try:
            found.append((kind, find(state, typed)))
        except CAError as e:
            errors.append(e)
    if len(found) == 1:
        return found[0]
    if not found:
        ambiguous = [e for e in errors if e.reason is Reason.AMBIGUOUS]
        if ambiguous:
            raise ambiguous[0]
        raise CAError(Reason.NOT_FOUND, f"no certificate or request {typed.strip()}")
    key = typed.strip().upper()
    exact = [(k, v) for k, v in found
             if key in (v.upper(), router_serial(v) if k == "certificate" else "")]
    if len(exact) == 1:
        return exact[0]
    raise CAError(Reason.AMBIGUOUS, f"{typed.strip()} is ambiguous: it starts the serial of "
                                    f"certificate {router_serial(found[0][1])} and the "
                                    f"transaction ID of request {found[1][1]}")
