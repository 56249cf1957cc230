"""The CA's certificates over time: which one issues now, and which one comes next.

`ca init` makes generation 1; each `ca rollover` (a `CARolledOver` event) adds the next one:
a new key pair and a self-signed certificate with the same subject. The rule, one function
each, pure over the folded state and an explicit time:

- current (`generation_at`): the first generation whose certificate has not expired at `now`
  (the last one, once all have). So at the old certificate's expiry, on the CA's clock, the
  next one takes over issuance, CertReps, CRLs and GetCACert, with nothing recorded: the time
  is the whole decision, and replay needs nothing else.
- next (`next_generation`): the generation after the current one, if a rollover made it. While
  there is one, GetCACaps advertises GetNextCACert and GetNextCACert answers it (RFC 8894
  §3.5.2, §4.7); before, both are refused.
- issuing (`issuing_generation`): a request enveloped to the next certificate (a device's shadow
  enrollment) is issued under it; one enveloped to an older certificate than the current one,
  under the current one.

The new certificate's validity starts when `ca rollover` runs (minus the usual clock skew), so
it is valid during the whole overlap: a shadow router certificate issued under it is valid at
once, and so is the new CA certificate when the device makes both current at the old one's
expiry. It ends `--days` after the old one's expiry (default: the old one's lifetime), so the
days an operator asks for are days the new CA serves.

Link certificates (RFC 4210 §4.4: new-with-old and old-with-new) are not made: no client here
uses them. The device takes the next CA certificate from GetNextCACert, signed by the key it
already trusts, holds it as its shadow CA and swaps both trust anchor and router certificate at
the same instant (engine/rollover/); peers validate against the trustpoint's CA certificate,
never through a cross-certificate. A link certificate nobody builds a chain through would only
be one more signed artifact to keep valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from engine.ports import to_micros

CA_KEY_FILE = "ca.key"
NEVER = 2**63 - 1  # µs: the end of time, for a generation whose validity cannot be read


@dataclass(frozen=True, slots=True)
class CAGeneration:
    """One CA certificate and where its private key is (a file in the CA directory)."""

    number: int  # 1: the certificate of `ca init`; 2: the first rollover's, ...
    certificate: bytes  # DER
    key_file: str
    not_before: int  # µs
    not_after: int


def first_generation(ca_certificate: bytes) -> CAGeneration:
    """Generation 1 from the certificate `ca init` recorded (its key is DIR/ca.key). A fold
    trusts the log: bytes that are no certificate (hand-made test states) make a generation
    that never expires rather than an error."""
    try:
        cert = x509.load_der_x509_certificate(ca_certificate)
    except ValueError:
        return CAGeneration(1, ca_certificate, CA_KEY_FILE, 0, NEVER)
    return CAGeneration(1, ca_certificate, CA_KEY_FILE, to_micros(cert.not_valid_before_utc),
                        to_micros(cert.not_valid_after_utc))


def generation_at(generations: tuple[CAGeneration, ...], now: int) -> int:
    """The number of the generation that issues at `now` (µs): the first not yet expired."""
    for g in generations:
        if now < g.not_after:
            return g.number
    return generations[-1].number if generations else 1


def next_generation(generations: tuple[CAGeneration, ...], now: int) -> CAGeneration | None:
    """The generation after the current one at `now`, if a rollover made it."""
    current = generation_at(generations, now)
    return generations[current] if current < len(generations) else None


def issuing_generation(generations: tuple[CAGeneration, ...], addressed: int, now: int) -> int:
    """Who issues a request enveloped to generation `addressed`, at `now`."""
    return min(max(addressed, generation_at(generations, now)), max(len(generations), 1))
