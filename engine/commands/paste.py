"""Cut-and-paste enrollment (`enrollment terminal`), for devices that cannot reach their CA:
`crypto ca enroll` prints the PKCS#10 request(s) for the operator to carry to the CA, and
`crypto ca import <tp> certificate` takes the issued certificate(s) back."""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from engine.certids import md5_words
from engine.commands import trustpoint as tp
from engine.effects import Effect, Outcome, ReadBlock, Say
from engine.grammar import GRAMMAR
from engine.keys import KeyPair
from engine.trustpoints import TrustpointConfig, TrustpointStatus, status_of

if TYPE_CHECKING:
    from engine.context import Ctx

USAGE_TEXT = {"general": "General Purpose", "signature": "Signature", "encryption": "Encryption"}
PASTE_CERT = ("Enter the base 64 encoded certificate.\n"
              "End with a blank line or the word \"quit\" on a line by itself\n")


def enroll_terminal(ctx: Ctx, cfg: TrustpointConfig, status: TrustpointStatus,
                    pairs: tuple[KeyPair, ...]) -> Generator[Effect, Any, Outcome]:
    from textwrap import wrap  # a request to paste is rare: a `show` does not load it

    from engine.scep_client import BuildRequest  # loaded when a request is built (see tp)
    from events.trustpoint import EnrollmentRequested

    yield Say(tp.START)
    challenge = yield from tp._password()
    who = tp.identity(ctx.state, cfg)
    lines: list[str] = []
    fingerprints = []
    for pair in pairs:
        der = yield BuildRequest(pair, who, challenge)
        fingerprints.append(md5_words(der))
        body = wrap(base64.b64encode(der).decode(), 64)
        lines += [f"% The {USAGE_TEXT[pair.usage.value]} certificate request follows:", "",
                  "-----BEGIN CERTIFICATE REQUEST-----", *body,
                  "-----END CERTIFICATE REQUEST-----", "",
                  f"  Fingerprint: {fingerprints[-1]}", ""]
    lines.append(f"% Take the request{'s' if len(pairs) > 1 else ''} to the CA, then enter "
                 f"'crypto ca import {cfg.name} certificate' for each certificate it issues.")
    ev = EnrollmentRequested(cfg.name, tuple(p.key_id for p in pairs),
                             tuple(p.usage.value for p in pairs), tuple("" for _ in pairs),
                             who.subject, tuple(fingerprints), "terminal", cfg.retry_period,
                             cfg.retry_count)
    return Outcome(events=[ev], output="\n".join(lines))


@GRAMMAR.action("crypto ca import <name> certificate",
                help="Import a certificate issued for a cut-and-paste request",
                args={"name": tp.NAME})
def import_certificate(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    from events.trustpoint import CertificateReceived

    name = ctx.args["name"]
    tp._configured(ctx.state, name)
    status = status_of(ctx.state, name)
    tp._legal(status, ("import",),
              f"Trustpoint {name} has no cut-and-paste request waiting for a "
              f"certificate. Use 'crypto ca enroll {name}' first.")
    from engine.pki import bad, check_router_certificate, decode_pasted, load_certificate, spki

    e = status.enrollment
    assert e is not None  # the machine's guard: a terminal request waits
    assert status.ca_certificate is not None
    der = decode_pasted((yield ReadBlock(PASTE_CERT)))
    cert = load_certificate(der, "pasted certificate")
    pairs = [p for k in e.key_ids if (p := ctx.state.keys.by_key_id(k)) is not None]
    pair = next((p for p in pairs if p.public_key == spki(cert)), None)
    if pair is None:
        raise bad(f"The certificate is not for a key pair of trustpoint {name}.")
    if pair.key_id in e.received:
        raise bad(f"The {USAGE_TEXT[pair.usage.value]} certificate is already imported.")
    check_router_certificate(der, pair.public_key, status.ca_certificate, ctx.now)
    left = [p for p in pairs if p.key_id not in e.received and p.key_id != pair.key_id]
    done = ("% Certificate successfully imported." if not left else
            f"% {USAGE_TEXT[pair.usage.value]} certificate imported; enter the command again "
            f"for the {USAGE_TEXT[left[0].usage.value]} certificate.")
    return Outcome(events=[CertificateReceived(name, pair.key_id, pair.usage.value, der, "")],
                   output=done)


