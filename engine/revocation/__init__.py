"""Revocation: CRLs fetched (HTTP, LDAP, SCEP GetCRL), verified (RFC 5280), cached, stored.

The modules, each doing one thing:
- model.py: `CachedCrl` (what the device knows of a verified CRL) and `Revoked` (an entry);
- cache.py: the folded cache (`DeviceState.crls`), `crl_for`, `crl_timeout`, the folds;
- store.py: the `CrlBlobs` port, the CRL bytes content-addressed under `<data>/crls/`;
- index.py: `revocation_of`, a serial looked up in a per-CRL index built once (a DER walk);
- verify.py: the RFC 5280 §5.2/§6.3 checks a fetched CRL must pass before it is cached;
- ldap.py: RFC 4516 LDAP URLs (and a bare DN against `query url`), ldap3 reads;
- transport.py: the `FetchCRL` effect, the `CrlFetcher` port and its http/ldap/SCEP adapter;
- fetch.py: `fetch_crl` (the one generator every path that fetches uses) and
  `fetched_events` (the one function that turns a verified CRL into events);
- messages.py: the `%PKI-...` lines of CRL retrieval.

Import each name from its module (this package imports nothing itself: engine.state folds
the cache, and the fetch needs engine.state):

    from engine.revocation.model import CachedCrl, Revoked
    from engine.revocation.cache import CrlCache, crl_for, crl_timeout
    from engine.revocation.store import CrlBlobs, FileCrlBlobs, MemoryCrlBlobs
    from engine.revocation.index import revocation_of
    from engine.revocation.transport import FetchCRL
    from engine.revocation.fetch import fetch_crl, fetched_events
"""
