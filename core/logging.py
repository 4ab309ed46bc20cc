"""structlog setup: JSON lines in production, pretty output on a terminal.

Request-scoped fields (request id, user id) live in structlog's contextvars so that
every line logged while serving a request carries them without being passed around.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.types import EventDict

SENSITIVE_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|credential", re.IGNORECASE
)
REDACTED = "[redacted]"


def redact_sensitive(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Last line of defence: never emit a value whose key looks like a secret."""
    for key in list(event_dict):
        if key != "event" and SENSITIVE_KEYS.search(key):
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; keep them quiet and on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    logging.getLogger("uvicorn.access").disabled = True


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """Resolve sys.stderr at use, so a redirected stream (tests, daemons) is honoured."""
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
