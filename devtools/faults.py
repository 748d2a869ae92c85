"""Inject the failures real DynamoDB produces and moto / DynamoDB Local never do.

Attached to a boto3 client through botocore's event hooks, so the production
code path is unchanged:

* ``before-call`` answers instead of DynamoDB with an error (nothing applied):
  ``TransactionConflictException``, a transaction cancelled for a
  ``TransactionConflict``, throughput / throttling errors, ``InternalServerError``.
* ``after-call`` lets the request reach DynamoDB and be applied, then replaces
  the answer with a read timeout: the ambiguous failure where the caller cannot
  tell whether its write happened.
* ``delay_before`` / ``delay_after`` let the request through unharmed but slow:
  it waits before it is sent, or it is applied at once and its answer arrives
  late. Nothing fails; the window between a read and what is done with it
  widens, as it does when real DynamoDB has a slow moment, so races that need
  luck to show up on a fast local table show up.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from devtools.harness import WRITE_OPERATIONS

#: Faults that refuse the request before it is applied: kind -> (HTTP status, error code).
REFUSALS: dict[str, tuple[int, str]] = {
    "conflict": (400, "TransactionConflictException"),
    "transaction_conflict": (400, "TransactionCanceledException"),
    "throughput": (400, "ProvisionedThroughputExceededException"),
    "throttling": (400, "ThrottlingException"),
    "internal": (500, "InternalServerError"),
}
#: The request is applied, then the caller sees a timeout instead of the answer.
APPLIED_THEN_LOST = "applied_then_lost"
#: The request succeeds, slowly: it waits before it is sent / its answer waits.
DELAY_BEFORE = "delay_before"
DELAY_AFTER = "delay_after"
DELAYS = (DELAY_BEFORE, DELAY_AFTER)
#: How long a delayed call waits, in seconds, unless the injector is told otherwise.
DEFAULT_DELAY = 0.05
KINDS = (*REFUSALS, APPLIED_THEN_LOST, *DELAYS)


Chooser = Callable[[str, dict[str, Any]], str | None]


class FaultInjector:
    """Decides per call whether to fail it, and how; counts what it injected.

    ``choose(operation, params)`` returns a fault kind or None. Use
    ``FaultInjector.scripted`` for exact sequences and ``FaultInjector.random``
    for rates. A delayed call waits ``delay`` seconds.
    """

    def __init__(self, choose: Chooser, delay: float = DEFAULT_DELAY) -> None:
        self.choose = choose
        self.delay = delay
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def scripted(cls, operation: str, kinds: Iterable[str | None]) -> FaultInjector:
        """Fail the next calls of ``operation`` with ``kinds`` in order (None = let it pass)."""
        pending = list(kinds)

        def choose(op: str, params: dict[str, Any]) -> str | None:
            if op != operation or not pending:
                return None
            return pending.pop(0)

        return cls(choose)

    @classmethod
    def always(cls, operation: str, kind: str) -> FaultInjector:
        return cls(lambda op, params: kind if op == operation else None)

    @classmethod
    def random(
        cls,
        rates: dict[str, float],
        seed: int,
        operations: Iterable[str] = WRITE_OPERATIONS,
        delay: float = DEFAULT_DELAY,
    ) -> FaultInjector:
        """Fail (or delay) each call of ``operations`` with probability ``rates[kind]`` per kind."""
        rng = random.Random(seed)
        targets = frozenset(operations)
        lock = threading.Lock()

        def choose(op: str, params: dict[str, Any]) -> str | None:
            if op not in targets:
                return None
            with lock:
                draw = rng.random()
            for kind, rate in rates.items():
                if draw < rate:
                    return kind
                draw -= rate
            return None

        return cls(choose, delay)

    def attach(self, client: Any) -> FaultInjector:
        events = client.meta.events
        events.register("before-parameter-build.dynamodb.*", self._remember)
        events.register("before-call.dynamodb.*", self._before_call)
        events.register("after-call.dynamodb.*", self._after_call)
        return self

    def total(self) -> int:
        return sum(self.injected.values())

    # -- hooks ------------------------------------------------------------------------

    def _remember(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any):
        context["fault"] = self.choose(model.name, params)
        context["fault_items"] = len(params.get("TransactItems", []))

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any):
        kind = context.get("fault")
        if kind == DELAY_BEFORE:
            self._count(kind)
            time.sleep(self.delay)
            return None  # then sent as usual
        if kind not in REFUSALS:
            return None
        self._count(kind)
        status, code = REFUSALS[kind]
        parsed: dict[str, Any] = {
            "Error": {"Code": code, "Message": f"injected {kind}"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
        }
        if code == "TransactionCanceledException":
            count = context.get("fault_items") or 1
            parsed["CancellationReasons"] = [{"Code": "TransactionConflict"}] + [
                {"Code": "None"}
            ] * (count - 1)
        response = AWSResponse(url="http://injected", status_code=status, headers={}, raw=None)
        return response, parsed

    def _after_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.get("fault") == DELAY_AFTER:
            self._count(DELAY_AFTER)
            time.sleep(self.delay)
            return
        if context.get("fault") != APPLIED_THEN_LOST:
            return
        self._count(APPLIED_THEN_LOST)
        raise ReadTimeoutError(endpoint_url="http://injected (response lost after apply)")

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1
