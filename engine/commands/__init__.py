"""Command modules: each registers its commands into `engine.grammar.GRAMMAR` on import.

To add a feature's commands, write a module here and list it below; the parser, `?` help,
Tab completion and `show running-config` pick it up with no other change.

Start-up: every command line imports every module listed here (the grammar is the whole
list), so a module imports at its top only what *declaring* its commands and folding its
events needs. What only a handler uses is imported when that handler runs; a `show` must not
pay for a CA exchange it does not make (issue 12: `trustledger exec` of a `show` within 2x
the import of `cryptography.x509`). The pattern, as engine/commands/trustpoint.py does it:

    if TYPE_CHECKING:                            # names used in annotations only
        from engine.scep_client import ScepReply

    def _enroll(ctx: Ctx) -> Generator[...]:
        from engine.scep_client import ScepEnroll  # the SCEP client (httpx) loads here
        ...

- a network client, a protocol stack (engine.scep_client, httpx, asn1crypto and the CMS
  layer, an LDAP or HTTP fetcher), the built-in CA (engine.ca), structlog: inside the
  function that uses it, never at a module's top;
- a package whose names many handlers use resolves them on first use with a module
  `__getattr__` (PEP 562), as engine/scep/__init__.py does;
- a type used only in annotations: under `if TYPE_CHECKING:` (every module has
  `from __future__ import annotations`, so annotations are never evaluated);
- then add the module's name to NOT_FOR_A_SHOW in tests/core/test_core_startup.py, which
  runs a `show` in a fresh interpreter and fails if it was loaded.

`python -X importtime -m engine.cli exec --data DIR -f SHOW_SCRIPT 2>&1 | sort -t'|' -k2 -n`
shows what a `show` imports and what each costs; tools/bench/startup_bench.py times it.
"""

from engine.commands import (
    clock,
    configuration,
    crl,
    keys,
    logging,
    paste,
    renewal,
    system,
    trustpoint,
    trustpool,
    validation,
    witness,
)

__all__ = ["clock", "configuration", "crl", "keys", "logging", "paste", "renewal", "system",
           "trustpoint", "trustpool", "validation", "witness"]
