"""Command modules: each registers its commands into `engine.grammar.GRAMMAR` on import.

To add a feature's commands, write a module here and list it below; the parser, `?` help,
Tab completion and `show running-config` pick it up with no other change.

Start-up: every command line imports every module listed here (the grammar is the whole
list), so a module here holds what *declaring* its commands needs (patterns, argument
checks, configuration keys, help) and imports at its top only that, plus what folding its
events needs. What a command *does* lives elsewhere and loads when the command first runs:
a `show` must not pay for a CA exchange, a CRL fetch or a witness it does not make (issue 12:
`trustledger exec` of a `show` within 2x the import of `cryptography.x509`). The pattern, as
engine/commands/crl.py does it:

    # engine/commands/crl.py: the declarations, cheap to import
    G.declare("crypto ca crl request <uri>", runs="engine.commands.run.crl:request",
              help="Fetch a CRL now and cache it", args={"uri": CRL_URI})

    # engine/commands/run/crl.py: the handler, with whatever it imports at its top
    def request(ctx: Ctx) -> Generator[Effect, Any, Outcome]: ...

`GRAMMAR.declare(..., runs="package.module:function")` is `GRAMMAR.action` with the handler
named, not imported (engine.grammar.Handler imports it at the first call); the declaration
and its `?` help read exactly as with `@GRAMMAR.action`. A test resolves every name, so a
misspelt one fails the suite, not an operator. For a feature (renewal, CA rollover, revoked
router certificates, ...):

- its commands' declarations go in engine/commands/<feature>.py, its handlers in
  engine/commands/run/<feature>.py (or the feature's own package) named with `runs=`;
- a timer's due function (engine/device_timers.py) runs at every open: it and the module
  it is in import only what deciding *whether* a job is due needs; the job's work is a
  `Handler("package.module:function")` too (engine/commands/trustpool.py due_update);
- a network client, a protocol stack (engine.scep_client, httpx, asn1crypto and the CMS
  layer, an LDAP or HTTP fetcher), the built-in CA (engine.ca), structlog, `logging`,
  cryptography's `serialization` package (engine.keyformats has its enums): never at the top
  of a module a `show` imports;
- a package whose names many handlers use resolves them on first use with a module
  `__getattr__` (PEP 562), as engine/scep/__init__.py does;
- a type used only in annotations: under `if TYPE_CHECKING:` (every module has
  `from __future__ import annotations`, so annotations are never evaluated);
- an event class: imported in the handler, job or message function that builds or matches
  it (events.registry imports an event module at the first decode of one of its types, so a
  `show` opened from a snapshot defines no event class); a table keyed by event type uses
  the stored name (`ev.type_name`), as the fold tables do;
- then add the modules it keeps out of a `show` to NOT_FOR_A_SHOW in
  tests/core/test_core_startup.py, which runs a `show` in a fresh interpreter and fails if
  one was loaded.

Older modules here (trustpoint, keys, configuration, clock, ...) still define their
handlers with `@GRAMMAR.action`, so what only a handler uses is imported inside it.

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
