"""structlog set-up for the command line: key=value lines on stderr, secrets redacted first.

The level comes from $TRUSTLEDGER_LOG_LEVEL (debug, info, warning, error; default warning, so
transcripts on stdout stay exactly what the operator typed and read)."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from engine.keystore import redact_secrets


def configure(default: str = "warning") -> None:
    name = os.environ.get("TRUSTLEDGER_LOG_LEVEL", default).upper()
    level = logging.getLevelNamesMapping().get(name, logging.WARNING)
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
