"""Nothing destroyed without a question: what a command is about to destroy, said before it
asks, and recorded when it happens.

Two commands destroy certificates as a side effect:

- `crypto key zeroize` destroys key pairs, and with them the router certificates issued for
  those keys (the `KeyPairZeroized` fold drops them). Both forms, labelled or not, name the
  trustpoints that lose certificates and ask `Do you really want to remove these keys?`.
- a commit or rollback that removes `crypto ca trustpoint NAME` destroys the trustpoint's CA,
  RA and router certificates. It names them and asks IOS XR's question (`REMOVE_QUESTION`);
  on yes, one `TrustpointCertificatesRemoved` per such trustpoint (serials and SHA-256
  fingerprints) goes into the same batch as the commit, before it.

Everything here is pure: it reads the folded state and returns text, events or questions.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from engine.certids import ios_serial, sha256_hex
from engine.config import Change
from engine.effects import Ask, Effect, Say
from engine.state import DeviceState
from engine.trustpoints import RouterCertificate, TrustpointStatus, trustpoint_key

if TYPE_CHECKING:
    from events.trustpoint import TrustpointCertificatesRemoved

REMOVE_QUESTION = ("% Removing an enrolled trustpoint will destroy all certificates received "
                   "from the related Certificate Authority. Are you sure you want to do this? "
                   "[yes/no]:")
ZEROIZE_QUESTION = "Do you really want to remove these keys? [yes/no]:"
_USAGE = {"general": "general purpose", "signature": "signature", "encryption": "encryption"}


def confirm(prompt: str) -> Generator[Effect, Any, bool]:
    """Ask until the operator says yes or no (IOS accepts y/n too)."""
    while True:
        reply = str((yield Ask(prompt))).strip().lower()
        if reply in ("yes", "y"):
            return True
        if reply in ("no", "n"):
            return False
        yield Say("% Please answer 'yes' or 'no'.\n")


# -- keys ------------------------------------------------------------------------------------------


def certificates_of_keys(state: DeviceState, key_ids: Sequence[str]
                         ) -> list[tuple[str, RouterCertificate]]:
    """(trustpoint, certificate) for every router certificate issued for one of the keys."""
    gone = set(key_ids)
    return [(name, cert) for name, st in sorted(state.trustpoints.items())
            for cert in st.certificates if cert.key_id in gone]


def zeroize_notice(state: DeviceState, key_ids: Sequence[str]) -> str:
    """The lines said before the zeroize question: which trustpoints lose which certificates."""
    lost = certificates_of_keys(state, key_ids)
    if not lost:
        return "% No trustpoint holds a router certificate issued for these keys.\n"
    return "".join(f"% Trustpoint {name} will lose its {_USAGE.get(c.usage, c.usage)} router "
                   f"certificate (serial {_serial(c.der)}).\n" for name, c in lost)


# -- trustpoints -----------------------------------------------------------------------------------


def removed_trustpoints(state: DeviceState, changes: Sequence[Change]) -> list[TrustpointStatus]:
    """The trustpoints holding certificates that `changes` remove from the configuration."""
    out = []
    for ch in changes:
        if len(ch.path) != 1 or ch.new is not None:
            continue
        for name, st in state.trustpoints.items():
            if ch.path[0] == trustpoint_key(name) and (st.ca_certificate or st.certificates):
                out.append(st)
    return out


def removal_events(statuses: Sequence[TrustpointStatus], reason: str, commit_id: int
                   ) -> list[TrustpointCertificatesRemoved]:
    from events.trustpoint import TrustpointCertificatesRemoved

    events = []
    for st in statuses:
        held = _held(st)
        events.append(TrustpointCertificatesRemoved(
            st.name, reason, commit_id, tuple(k for k, _ in held),
            tuple(_serial(d) for _, d in held), tuple(sha256_hex(d) for _, d in held)))
    return events


def confirm_removal(statuses: Sequence[TrustpointStatus]) -> Generator[Effect, Any, bool]:
    """Name what will be destroyed, then ask IOS XR's question."""
    lines = []
    for st in statuses:
        lines.append(f"% Trustpoint {st.name} holds certificates that will be destroyed:\n")
        for kind, der in _held(st):
            label = "CA" if kind == "ca" else "RA" if kind == "ra" else \
                f"router ({_USAGE.get(kind, kind)})"
            lines.append(f"%   {label} certificate serial {_serial(der)} "
                         f"SHA256 {sha256_hex(der)}\n")
    yield Say("".join(lines))
    return (yield from confirm(REMOVE_QUESTION))


def _held(st: TrustpointStatus) -> list[tuple[str, bytes]]:
    held = [("ca", st.ca_certificate)] if st.ca_certificate else []
    held += [("ra", der) for der in st.ra_certificates]
    held += [(c.usage, c.der) for c in st.certificates]
    return held


def _serial(der: bytes) -> str:
    from cryptography import x509  # only when a certificate is about to be destroyed

    try:
        return ios_serial(x509.load_der_x509_certificate(der))
    except ValueError:
        return "?"
