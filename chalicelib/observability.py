"""Structured JSON logs: one line per request outcome, no email address in clear.

The logger writes straight to stdout with its own handler (Lambda ships stdout
to CloudWatch Logs line by line), so each line is a complete JSON document that
a metric filter such as ``{ $.outcome = "ServiceBusy" }`` can match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "ticket_booking"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (test capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def get_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = StdoutHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    if logging.getLevelName(logger.level) != level:  # setLevel clears logging's caches
        logger.setLevel(level)
    return logger


def email_fingerprint(email: str) -> str:
    """A stable pseudonym for an email so one person's requests can be traced in logs."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


def log_event(level: int, message: str, exc_info: Any = None, **fields: Any) -> None:
    get_logger().log(level, message, exc_info=exc_info, extra={"fields": fields})


def log_failure_safely(action: str, error: Exception) -> None:
    """Report that a log line could not be written, with nothing taken from the request."""
    with contextlib.suppress(Exception):  # nowhere left to report to
        get_logger().error(
            "request logging failed",
            extra={"fields": {"action": action, "error": type(error).__name__}},
        )
