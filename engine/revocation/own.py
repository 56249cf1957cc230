"""The router's own certificates on a CRL (issue 16 item 3).

Rule: every CRL the device fetches and verifies becomes events in one place
(`engine.revocation.fetch.fetched_events`), which asks `own_certificates_revoked` what else
it means. A router certificate is revoked by a CRL when
- its trustpoint is enrolled (or already revoked, for a second certificate of a usage-keys
  trustpoint, or re-enrolling with the certificate installed) and the certificate is not
  already marked revoked;
- the CRL was issued by that trustpoint's CA: the CRL's issuer is the CA certificate's subject
  and the CA certificate's key verified it (RFC 5280 §6.3.3 (f): the CRL issuer is the
  certificate's issuer, its signature checked with that issuer's key);
- the CRL's scope covers the certificate (issuing distribution point, §6.3.3 (b)(2)) and it
  lists the certificate's serial (§6.3.3 (i)).
Each such certificate gives one `RouterCertificateRevoked`, which moves the trustpoint to
`revoked` through the lifecycle table's `revoke` edge (engine/machines/trustpoint.py), or, in
a re-enrollment, marks it (`revoke_installed`) while the re-enrollment goes on.

The serials are looked up in the index the fetch built while verifying the CRL (kept by
`engine.revocation.index.remember`, content-addressed by the CRL's SHA-256), so deciding
reads no blob and no network.
"""

from __future__ import annotations

from collections.abc import Iterator

from cryptography import x509

from engine.certids import ios_serial_number
from engine.machines.trustpoint import LIFECYCLE, Lifecycle
from engine.messages import certificate_revoked
from engine.revocation.cache import covers, spki_sha256
from engine.revocation.index import remembered
from engine.revocation.model import CachedCrl
from engine.state import DeviceState
from engine.trustpoints import TrustpointStatus, usable_certificates
from events.registry import Event
from events.trustpoint import RouterCertificateRevoked

# The lifecycles a CRL can revoke a router certificate in: where the trustpoint table's
# `revoke` and `revoke_installed` edges start (engine/machines/trustpoint.py).
REVOCABLE: frozenset[Lifecycle] = frozenset(
    s for e in LIFECYCLE.edges if e.trigger in ("revoke", "revoke_installed") for s in e.sources)


def own_certificates_revoked(state: DeviceState, cached: CachedCrl
                             ) -> list[RouterCertificateRevoked]:
    """One event per usable router certificate the verified CRL `cached` revokes."""
    found = []
    index = None
    for st in _issued_by(state, cached):
        for rc in usable_certificates(st):
            cert = x509.load_der_x509_certificate(rc.der)
            if cert.issuer.public_bytes() != cached.issuer or not covers(cached, cert):
                continue
            index = index or remembered(cached.sha256)
            entry = index.lookup(cert.serial_number)
            if entry is not None:
                found.append(RouterCertificateRevoked(
                    st.name, rc.key_id, ios_serial_number(cert.serial_number),
                    entry.revoked_at, entry.reason, cached.sha256))
    return found


def revoked_lines(events: list[Event]) -> list[str]:
    """The `%PKI-3-CERTIFICATE_REVOKED` lines of the events a fetch returned (what the
    logging fold keeps of them too)."""
    return [certificate_revoked(ev.trustpoint, ev.serial, ev.reason, ev.revoked_at)
            for ev in events if isinstance(ev, RouterCertificateRevoked)]


def _issued_by(state: DeviceState, cached: CachedCrl) -> Iterator[TrustpointStatus]:
    """The trustpoints that can be revoked whose CA issued and signed the CRL."""
    for st in state.trustpoints.values():
        if st.lifecycle not in REVOCABLE or st.ca_certificate is None:
            continue
        ca = x509.load_der_x509_certificate(st.ca_certificate)
        if ca.subject.public_bytes() == cached.issuer and \
                spki_sha256(ca) == cached.verified_with:
            yield st
