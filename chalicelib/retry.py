"""Bounded, jittered retries for DynamoDB's transient failures.

Real DynamoDB answers a busy item or table with ``TransactionConflictException``,
throttling errors and occasional 5xx; the network can time out after a write was
applied. moto and DynamoDB Local never do this, so the classification below is
tested by injecting those errors (``tests/test_retry.py``).

botocore's own retries are switched off on our client (``max_attempts=1``) so that
this module is the single place that decides how often and how long to retry, and
so every attempt is visible to tests and benchmarks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from chalicelib.errors import ServiceBusy

T = TypeVar("T")

#: Retries made so far in the current request (a metric: retries per request).
_retries: ContextVar[int] = ContextVar("retries", default=0)


def reset_retry_count() -> None:
    _retries.set(0)


def retry_count() -> int:
    return _retries.get()


#: Error codes that mean "not now", never "no": the request can be sent again unchanged.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "TransactionConflictException",
        "TransactionInProgressException",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

#: Per-item reasons inside ``TransactionCanceledException`` that are transient too.
TRANSIENT_CANCELLATION_CODES = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


def is_transient(error: Exception) -> bool:
    """True when sending the identical request again may succeed.

    Timeouts and dropped connections count: the write may or may not have been
    applied, which is why every transaction carries a ``ClientRequestToken`` and
    every single-item write a condition that makes a replay harmless.
    """
    if not isinstance(error, ClientError):
        return is_ambiguous(error)  # timeouts and dropped connections
    code = error.response.get("Error", {}).get("Code", "")
    if code in TRANSIENT_ERROR_CODES:
        return True
    if code == "TransactionCanceledException":
        reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
        # A failed condition is a definite answer about the data; only a
        # cancellation caused purely by contention or throttling is retried.
        return "ConditionalCheckFailed" not in reasons and any(
            r in TRANSIENT_CANCELLATION_CODES for r in reasons
        )
    return is_ambiguous(error)  # any other 5xx


def is_ambiguous(error: Exception) -> bool:
    """True when the failed request may nevertheless have been applied.

    A refusal (throttling, conflict: HTTP 400) is definite; a timeout, a dropped
    connection or a 5xx leaves the outcome unknown.
    """
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
    return False


@dataclass
class RetryPolicy:
    """Exponential back-off with full jitter, bounded in attempts and total sleep."""

    max_attempts: int = 6
    base_delay: float = 0.02
    max_delay: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def back_off(self, attempt: int) -> None:
        """Sleep the jittered delay that follows failed attempt number ``attempt``."""
        self.sleep(self.delay(attempt))

    def run(self, operation: str, call: Callable[[], T]) -> T:
        """Run ``call``; retry it while it fails transiently; raise ``ServiceBusy`` when spent."""
        maybe_applied = False
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except Exception as error:
                if not is_transient(error):
                    raise
                maybe_applied = maybe_applied or is_ambiguous(error)
                if attempt == self.max_attempts:
                    raise ServiceBusy(
                        f"{operation}: {_describe(error)}", maybe_applied=maybe_applied
                    ) from error
                _retries.set(_retries.get() + 1)
                self.back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "ClientError")
    return type(error).__name__
