"""trustledger's command side: CLI grammar, state machines, decide/evolve, the runtime and its
ports, PKI and SCEP, the keystore and the built-in CA.

Embedding: `from engine import Engine`; `Engine.open(data_dir)` then `engine.execute(line)`.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.engine import Engine, Result

__all__ = ["Engine", "Result"]


def __getattr__(name: str) -> Any:
    # Lazy, so `engine.scep` or `engine.ca` can be imported without the whole runtime.
    if name in __all__:
        from engine import engine as _engine

        return getattr(_engine, name)
    raise AttributeError(name)
