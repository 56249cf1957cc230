"""`show crypto ca counters` and the report of `trustledger validate`.

The reference has neither; both are laid out as the other `show crypto ca` outputs are: a
title line, then `Label : value` lines indented two spaces, labels padded to one column.

    PKI validation counters:
      Peer validations passed          : 12
      Peer validations failed          : 3
      Passed by crl optional           : 1
      CRL fetch attempts               : 5
      CRL fetch failures               : 2
    Failed validations by reason:
      REVOKED                          : 2
      CRL_UNAVAILABLE                  : 1

(`Passed by crl optional` are among the passed; a failure with several reasons counts once
per reason below; that block is left out while nothing failed.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.messages import printable_text
from projections.timefmt import ios_time

if TYPE_CHECKING:  # a verdict's types load with the first verdict, not with every `show`
    from engine.state import DeviceState
    from engine.validation.verdict import Revocation, Verdict

WIDTH = 33


def _line(label: str, value: object) -> str:
    return f"  {label:<{WIDTH}}: {value}"


def render_counters(state: DeviceState) -> str:
    v, crls = state.validations, state.crls
    lines = ["PKI validation counters:",
             _line("Peer validations passed", v.passed),
             _line("Peer validations failed", v.failed),
             _line("Passed by crl optional", v.bypassed),
             _line("CRL fetch attempts", crls.fetches + crls.failures),
             _line("CRL fetch failures", crls.failures)]
    if v.by_reason:
        lines.append("Failed validations by reason:")
        lines += [_line(code, n) for code, n in v.by_reason]
    return "\n".join(lines) + "\n"


def render_verdict(verdict: Verdict, subjects: Mapping[str, str]) -> str:
    """The human report of one validation (the JSON form is `Verdict.as_dict`)."""
    v = verdict
    result = "VALID" if v.ok else "INVALID"
    lines = [f"Peer validation : {result}",
             f"  Purpose       : {v.purpose.value}",
             f"  At            : {ios_time(v.at)}"]
    if v.peer_name is not None:
        lines.append(f"  Peer name     : {printable_text(v.peer_name)}")
    if v.anchor is None:
        lines.append("  Anchor        : none")
    else:
        where = v.anchor.source if v.anchor.source == "trustpool" else (
            f"{v.anchor.source} {v.anchor.name}")  # the pool has no name of its own
        lines.append(f"  Anchor        : {where}")
        lines.append(f"                  {_subject(subjects, v.anchor.fingerprint, '')}".rstrip())
    if v.path:
        lines.append("  Path          :")
        for i, r in enumerate(v.revocation):
            lines += _cert_lines(i, r, subjects)
    else:
        lines.append("  Path          : not built")
    if v.codes:
        lines.append(f"  Reasons       : {' '.join(v.reasons)}")
    if v.detail:
        lines.append(f"  Detail        : {printable_text(v.detail)}")
    return "\n".join(lines) + "\n"


def _cert_lines(i: int, r: Revocation, subjects: Mapping[str, str]) -> list[str]:
    out = [f"    [{i}] {_subject(subjects, r.fingerprint, '(subject unknown)')}",
           f"        SHA-256     : {r.fingerprint}",
           f"        Revocation  : {_status(r)}"]
    if r.crl_sha256:
        number = "none" if r.crl_number is None else str(r.crl_number)
        this_update = "" if r.crl_this_update is None else ios_time(r.crl_this_update)
        out.append(f"        CRL         : number {number}, thisUpdate {this_update}")
        out.append(f"                      SHA-256 {r.crl_sha256}")
    return out


def _subject(subjects: Mapping[str, str], fingerprint: str, unknown: str) -> str:
    """A certificate's subject as the report prints it: a peer chose it, and a newline or an
    escape sequence in it must not forge a line of the report or drive the terminal."""
    return printable_text(subjects.get(fingerprint, unknown))


def _status(r: Revocation) -> str:
    from engine.validation.verdict import Status

    if r.status is Status.REVOKED and r.revoked_at is not None:
        return f"revoked {ios_time(r.revoked_at)} ({r.revocation_reason})"
    return r.status.value
