"""Peer validation: `Engine.validate_peer(chain, purpose, at, peer_name=None) -> Verdict`.

The modules, each doing one thing (import each name from its module: engine.state imports
`folded`, so this package imports nothing itself):
- verdict.py: the `Verdict`, its reason codes, revocation statuses, and the event form;
- chain.py: the chain as given (PEM or DER, one blob or a list) parsed, with fingerprints;
- anchors.py: the trust anchors of a state indexed by subject (find_anchor's rule, fast);
- path.py: the RFC 5280 path (cryptography's x509.verification) and the purpose, key usage
  and name checks a router adds; the reason codes of a refused path;
- decide.py: `decide_validation`, the pure decision from logged facts (revocation included);
- validate.py: the engine's loop: decide, fetch missing CRLs, decide again, events;
- folded.py: what validations leave in the state: the counters of `show crypto ca
  counters`, and when a CRL fetch last failed per issuer (the fetch back-off).
"""
