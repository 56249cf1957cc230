"""`audit witness url URL key KEY` (configuration mode): a witness that co-signs this device's
audit checkpoints (engine/audit/witness_client.py). URL is the witness's submission prefix
(the device POSTs URL/add-checkpoint); KEY its cosignature/v1 verifier key, as `trustledger
audit witness key` prints it. One line per witness; `no audit witness url URL` removes one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from engine.grammar import GRAMMAR, URL, ArgKind, ArgSpec, no_userinfo, well_formed_authority

if TYPE_CHECKING:
    from engine.audit.witness_client import Witness
    from engine.config import ConfigTree

PREFIX = "audit witness url "


def _witness_url(s: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", s, re.IGNORECASE):
        raise ValueError(s)
    return well_formed_authority(s)


def _witness_key(s: str) -> str:
    from engine.audit.cosignature import parse_cosignature_key  # checked when one is typed

    parse_cosignature_key(s)  # NoteError is a ValueError: `% Invalid input`
    return s


GRAMMAR.describe({"audit": "Verifiable audit of the event log",
                  "witness": "A witness that co-signs the log's checkpoints"})
GRAMMAR.config("audit witness url <url> key <key>", key="audit witness url {url}", rank=90,
               help="Have a witness co-sign every audit checkpoint",
               args={"url": ArgSpec(ArgKind(URL.label, _witness_url, screen=no_userinfo),
                                    "http://host:port[/prefix] of the witness"),
                     "key": ArgSpec(ArgKind("WORD", _witness_key),
                                    "The witness's key (trustledger audit witness key)")},
               words={"url": "The witness's submission URL",
                      "key": "The witness's cosignature key"})


def configured_witnesses(config: ConfigTree) -> list[Witness]:
    """The witnesses the running configuration names, in its order. The witness client
    (HTTP, the Merkle proofs) loads here, with the first checkpoint, not with the grammar."""
    from engine.audit.cosignature import parse_cosignature_key
    from engine.audit.witness_client import Witness

    found = []
    for key, node in config.roots.items():
        if key.startswith(PREFIX) and node.line:
            words = node.line.split()
            found.append(Witness(words[3], parse_cosignature_key(words[5])))
    return found
