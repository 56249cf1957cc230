"""Command modules: each registers its commands into `engine.grammar.GRAMMAR` on import.

To add a feature's commands, write a module here and list it below; the parser, `?` help,
Tab completion and `show running-config` pick it up with no other change.
"""

from engine.commands import (
    clock,
    configuration,
    crl,
    keys,
    logging,
    paste,
    system,
    trustpoint,
    trustpool,
    validation,
    witness,
)

__all__ = ["clock", "configuration", "crl", "keys", "logging", "paste", "system", "trustpoint",
           "trustpool", "validation", "witness"]
