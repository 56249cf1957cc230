"""Which events are trust decisions: after a command that appends one, the log signs a
checkpoint (issue 18 item 2: every configuration commit and every trust decision).

ONE table, by event type name (names, not classes, so a feature adds its line without an
import here; a test checks every name is a registered event type). Add a line for a new
trust decision.
"""

from __future__ import annotations

CHECKPOINT_AFTER: frozenset[str] = frozenset({
    "ConfigurationCommitted",  # a configuration commit or rollback
    "AuditKeyCreated",  # the first checkpoint: the audit key itself
    "CACertificateAccepted",  # a trustpoint's CA certificate accepted (authenticate)
    "CACertificateRefused",  # ... or refused
    "CertificateReceived",  # a router certificate received (enrollment, paste)
    "TrustpointCertificatesRemoved",  # certificates dropped (zeroize, no trustpoint, revoked)
    "KeyPairGenerated",  # a key pair made
    "KeyPairZeroized",  # a key pair destroyed
    "PublicKeyImported",  # a peer's public key trusted
    "PublicKeyRemoved",
    "TrustpoolImported",  # the trustpool replaced or added to
    "TrustpoolCleaned",  # the trustpool emptied
    "TrustpoolBuiltinsRecorded",  # the shipped CA bundle recorded
    "CrlFetched",  # a CRL verified and applied to the cache (issue 16)
    "CrlCacheCleared",  # ... or the cache emptied
    "PeerValidated",  # a peer's certificate chain trusted or refused (issue 16)
    # The built-in CA's log (stream "ca"):
    "CertificateIssued",
    "CertificateRevoked",
    "CRLIssued",
})


def is_trust_decision(type_name: str) -> bool:
    return type_name in CHECKPOINT_AFTER
