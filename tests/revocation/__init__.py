"""Revocation: CRL retrieval, verification, cache, store (issue 16 item 1)."""
