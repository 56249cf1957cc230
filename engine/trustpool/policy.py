"""The trustpool policy (`crypto ca trustpool policy` in the running configuration) and the
global `crypto ca rsa 1024 disable`, read from the configuration tree.

    crypto ca trustpool policy
     cabundle url http://www.cisco.com/security/pki/trs/ios.p7b
     crl optional
     description Trustpool for Test.
     vrf mgmt
    !
    crypto ca rsa 1024 disable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.state import DeviceState

POLICY_KEY = "crypto ca trustpool policy"
RSA_1024_KEY = "crypto ca rsa 1024 disable"


@dataclass(frozen=True)
class TrustpoolPolicy:
    """The `crypto ca trustpool policy` submode, typed."""

    configured: bool = False  # the submode exists in the running configuration
    cabundle_url: str | None = None
    crl_optional: bool = False
    description: str | None = None
    vrf: str | None = None


def policy_of(state: DeviceState) -> TrustpoolPolicy:
    node = state.config.node((POLICY_KEY,))
    if node is None:
        return TrustpoolPolicy()

    def value(key: str) -> str | None:
        child = node.children.get(key)
        return None if child is None else child.line[len(key):].strip()

    return TrustpoolPolicy(True, value("cabundle url"), "crl optional" in node.children,
                           value("description"), value("vrf"))


def rsa_1024_disabled(state: DeviceState) -> bool:
    return state.config.line((RSA_1024_KEY,)) is not None
