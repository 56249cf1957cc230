"""structlog set-up for the command line: key=value lines on stderr, secrets redacted first;
Python's warnings silenced (see `configure`).

The level comes from $TRUSTLEDGER_LOG_LEVEL (debug, info, warning, error; default warning, so
transcripts on stdout stay exactly what the operator typed and read).

Start-up: importing structlog costs 30-50 ms (it loads rich and asyncio), more than a whole
`show` should. So a command whose modules log only through `get_logger` below (the device's
`shell`, `exec`, `log` and `replay`) calls `configure(defer=True)`: structlog is then loaded
and configured by the first log line, if there is one. Every other entry point configures at
once (the CA's modules call `structlog.get_logger` themselves and must find it set up).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping
from typing import Any

# The standard library's levels (logging.getLevelNamesMapping()), without importing `logging`
# (3 ms) for a lookup: structlog loads it with the first log line.
LEVELS = {"CRITICAL": 50, "FATAL": 50, "ERROR": 40, "WARN": 30, "WARNING": 30, "INFO": 20,
          "DEBUG": 10, "NOTSET": 0}
_deferred: list[int] = []  # the level `configure(defer=True)` left for the first log line


def redact_secrets(logger: Any, method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """engine.keystore.redact_secrets, loaded with the first log line rather than at start-up:
    the keystore (keys, cryptography's serialization) is 35-40 ms that a `show` never needs."""
    from engine.keystore import redact_secrets as redact

    return redact(logger, method, event_dict)


def configure(default: str = "warning", *, defer: bool = False) -> None:
    """Set structlog up (now, or with the first log line if `defer` and structlog is not
    loaded yet)."""
    if not sys.warnoptions:
        # A library's Python warning is not for the operator: cryptography warns on every
        # read of a name attribute a peer made too short or long, ldap3 about its own
        # deprecations. Whoever asks with -W or PYTHONWARNINGS still sees them.
        warnings.simplefilter("ignore")
    name = os.environ.get("TRUSTLEDGER_LOG_LEVEL", default).upper()
    level = LEVELS.get(name, LEVELS["WARNING"])
    _deferred.clear()
    if defer and "structlog" not in sys.modules:
        _deferred.append(level)
    else:
        _apply(level)


def _apply(level: int) -> None:
    import structlog

    structlog.configure(
        processors=[
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


class Logger:
    """`structlog.get_logger(name)`, loaded (and configured, if that was deferred) by its first
    log call: `log.warning("event", key=value)`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, method: str) -> Any:
        import structlog

        if _deferred:
            _apply(_deferred.pop())
        return getattr(structlog.get_logger(self.name), method)


def get_logger(name: str) -> Logger:
    return Logger(name)
