"""GetNextCACert from the device: the `FetchNextCA` effect and how the runtime performs it
(through the SCEP transport port, engine/scep_client.py), over the sans-I/O core
(engine/scep/nextca.py).

The performer asks GetCACaps first: a CA that does not advertise GetNextCACert gets no
GetNextCACert request (`NextCAFetched(None)`). Otherwise the answer must be an
`application/x-x509-next-ca-cert` SignedData that verifies with `current` (the trustpoint's CA
certificate) and holds another CA certificate, valid when `current` expires (it takes over
then), with an RSA key (the shadow enrollment envelopes to it). Everything else
(unreachable, an HTTP error, another signer, a bad signature, garbage, a next certificate
not valid at the switch or with another key type) is one `PeerError` whose text is the `%`
line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from engine import scep
from engine.effects import Effect, performs
from engine.errors import PeerError, PeerReason
from engine.keyformats import Encoding
from engine.pki import load_certificate
from engine.runtime import Ports

if TYPE_CHECKING:
    from engine.scep_client import HttpReply


@dataclass(frozen=True)
class FetchNextCA(Effect):
    """GetCACaps, then GetNextCACert if advertised, verified with `current` (DER)."""

    url: str
    current: bytes


@dataclass(frozen=True)
class NextCAFetched:
    certificate: bytes | None  # DER of the next CA certificate; None: not offered


def _get(ports: Ports, url: str, operation: str) -> HttpReply:
    from engine.scep_client import TransportError, transport_of, unreachable  # on exchange only

    try:
        return transport_of(ports).get(url, {"operation": operation})
    except TransportError as e:
        raise unreachable(url, e) from e


@performs(FetchNextCA)
def _fetch_next_ca(ports: Ports, eff: FetchNextCA) -> NextCAFetched:
    from engine.scep_client import one_exchange

    current = load_certificate(eff.current, "CA certificate")
    with one_exchange(ports):
        caps_reply = _get(ports, eff.url, "GetCACaps")
        try:
            # RFC 8894 §3.5.2: a CA that does not answer GetCACaps supports nothing extra.
            caps = scep.parse_capabilities(caps_reply.body if caps_reply.status == 200 else b"")
        except scep.ScepError as e:
            raise PeerError(PeerReason.BAD_ANSWER, f"GetCACaps: {e.detail}") from e
        if not caps.supports(scep.Capability.GET_NEXT_CA_CERT):
            return NextCAFetched(None)
        reply = _get(ports, eff.url, "GetNextCACert")
    if reply.status != 200:
        raise PeerError(PeerReason.BAD_ANSWER, f"GetNextCACert failed: the CA at {eff.url} "
                                               f"answered HTTP {reply.status}.")
    try:
        found = scep.parse_next_ca_certificates(reply.content_type, reply.body, current)
    except scep.ScepError as e:
        raise PeerError(PeerReason.BAD_ANSWER, f"{e.detail} (nothing was accepted)") from e
    _check_takes_over(found.ca, current)
    if not isinstance(found.ca.public_key(), rsa.RSAPublicKey):
        # the shadow enrollment envelopes its request to this certificate's key (RSA key
        # transport): held, it would make every shadow enrollment fail
        raise PeerError(PeerReason.BAD_ANSWER, "GetNextCACert: the next CA certificate's key "
                        "is not RSA: no SCEP request can be enveloped to it (nothing was "
                        "accepted)")
    return NextCAFetched(found.ca.public_bytes(Encoding.DER))


def _check_takes_over(nxt: x509.Certificate, current: x509.Certificate) -> None:
    """The next CA certificate becomes the trustpoint's when the current one expires: it must
    be valid then (held otherwise, the trustpoint would switch to a certificate that is
    expired or not valid yet, and its shadow router certificate with it)."""
    start, end = nxt.not_valid_before_utc, nxt.not_valid_after_utc
    switch = current.not_valid_after_utc
    if not start <= switch < end:
        raise PeerError(PeerReason.BAD_ANSWER, (
            f"GetNextCACert: the next CA certificate (valid {start:%Y-%m-%d %H:%M:%S} to "
            f"{end:%Y-%m-%d %H:%M:%S} UTC) is not valid when the current one expires "
            f"({switch:%Y-%m-%d %H:%M:%S} UTC) and it is to take over (nothing was accepted)"))
