"""cryptography's key encoding enums (Encoding, PublicFormat, PrivateFormat, NoEncryption)
without its `serialization` package.

`from cryptography.hazmat.primitives import serialization` runs that package's __init__, which
loads the SSH and PKCS#12 machinery and their ciphers: ~7 ms of every start-up, for a `show`
that neither loads nor writes a key. The enums are defined in
`cryptography.hazmat.primitives._serialization`, which cryptography.x509 loads anyway, and
`serialization` re-exports the same objects (tests/core/test_core_startup.py checks that they
are). Loading a key (`serialization.load_der_private_key`, ...) still imports `serialization`,
in the function that loads it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives._serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

__all__ = ["Encoding", "NoEncryption", "PrivateFormat", "PublicFormat"]
