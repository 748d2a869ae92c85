"""Logs and metrics the way Python Lambda services do it: Powertools for AWS Lambda.

* ``logger``: one JSON line per event on stdout (CloudWatch Logs in AWS), with
  the request's correlation id and the Lambda context; no email in clear.
* ``metrics``: CloudWatch embedded metric format, one document per request,
  dimensioned by ``service`` and ``stage``; CloudWatch turns them into metrics
  with no API call from the function.
* ``email_fingerprint``: a keyed pseudonym (HMAC-SHA256), so one person's
  requests can be followed in the logs, but nobody who guesses an email can
  confirm it without the key. The key comes from Secrets Manager in a deployed
  stack (``LOG_PSEUDONYM_SECRET_ARN``, created by the template), from
  ``LOG_PSEUDONYM_KEY`` under ``make dev`` (kept in ``.local/``) and in tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "ticket-booking"
METRICS_NAMESPACE = "TicketBooking"
STAGE_ENV = "STAGE"
KEY_ENV = "LOG_PSEUDONYM_KEY"
SECRET_ARN_ENV = "LOG_PSEUDONYM_SECRET_ARN"


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (test capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


logger = Logger(service=SERVICE, logger_handler=StdoutHandler(sys.stdout))
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

_LOG_BY_LEVEL = {
    logging.DEBUG: logger.debug,
    logging.INFO: logger.info,
    logging.WARNING: logger.warning,
    logging.ERROR: logger.error,
}


_cold = {"start": True}


def bind_request(correlation_id: str | None, lambda_context: Any) -> None:
    """Every line of this request carries its correlation id and the Lambda context.

    Thread-local keys: ``chalice local`` serves requests on threads, Lambda one at a time.
    """
    keys: dict[str, Any] = {"correlation_id": correlation_id, "cold_start": _cold["start"]}
    _cold["start"] = False
    if lambda_context is not None:
        keys["correlation_id"] = correlation_id or getattr(lambda_context, "aws_request_id", None)
        keys.update(
            function_name=getattr(lambda_context, "function_name", None),
            function_memory_size=getattr(lambda_context, "memory_limit_in_mb", None),
            function_request_id=getattr(lambda_context, "aws_request_id", None),
        )
    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def unbind_request() -> None:
    logger.thread_safe_clear_keys()


def log_event(level: int, message: str, exc_info: Any = None, **fields: Any) -> None:
    _LOG_BY_LEVEL[level](message, exc_info=exc_info, extra=fields)


def log_failure_safely(action: str, error: Exception) -> None:
    """Report that a log line could not be written, with nothing taken from the request."""
    with contextlib.suppress(Exception):  # nowhere left to report to
        logger.error(
            "request logging failed", extra={"action": action, "error": type(error).__name__}
        )


def count(metric: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=metric, unit=unit, value=value)


def flush_metrics() -> None:
    """Write this request's metrics (one EMF document), dimensioned by stage."""
    if not metrics.metric_set:
        return
    metrics.add_dimension(name="stage", value=os.environ.get(STAGE_ENV, "unknown"))
    metrics.flush_metrics()


def email_fingerprint(email: str) -> str:
    """A stable, keyed pseudonym for a (well-formed) email."""
    digest = hmac.new(_pseudonym_key(), email.strip().lower().encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def _pseudonym_key() -> bytes:
    """The key, fetched once per container; a per-container random key if it cannot be had
    (pseudonyms then differ between containers, but no request ever fails for it)."""
    source = os.environ.get(KEY_ENV) or os.environ.get(SECRET_ARN_ENV) or ""
    key = _keys.get(source)
    if key is None:
        with _keys_lock:
            key = _keys.get(source) or _load_key(source)
            _keys[source] = key
    return key


def _load_key(source: str) -> bytes:
    if os.environ.get(KEY_ENV):
        return source.encode()
    if source:
        try:
            import boto3

            secret = boto3.client("secretsmanager").get_secret_value(SecretId=source)
            return str(secret["SecretString"]).encode()
        except Exception as error:
            logger.warning("log pseudonym key unavailable", extra={"error": type(error).__name__})
    else:
        logger.warning(f"no {KEY_ENV} or {SECRET_ARN_ENV}: pseudonyms hold for this container only")
    return secrets.token_bytes(32)
