"""What the benchmark and the tests share: a Lambda instance to invoke, and one request meter.

``LambdaInstance`` runs the real Chalice app with the events API Gateway sends,
with no HTTP server in between, as each Lambda instance of a deployment would.
``RequestMeter`` counts every DynamoDB request a client sends and the capacity
it consumed, through botocore's event hooks, so the service code is unchanged.
``threads_share_the_app`` lets several threads of one process invoke the app
at once, the way ``chalice local`` serves it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: DynamoDB operations that write (their consumed capacity counts as write units).
WRITE_OPERATIONS = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
READ_OPERATIONS = ("GetItem", "Query", "BatchGetItem")


@dataclass
class RequestMeter:
    """Counts the DynamoDB requests (by operation) and the capacity units of a client.

    ``attach`` also asks every request for ``ReturnConsumedCapacity=TOTAL``.
    Thread-safe: one meter may watch the clients of several threads.
    """

    requests: Counter[str] = field(default_factory=Counter)
    write_units: float = 0.0
    read_units: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, client: Any) -> RequestMeter:
        events = client.meta.events
        events.register("provide-client-params.dynamodb.*", self._ask_for_capacity)
        # Counted before the request is built, not in before-call: a fault
        # injector answering in before-call would hide the request from us.
        events.register("before-parameter-build.dynamodb.*", self._count)
        events.register("after-call.dynamodb.*", self._add_capacity)
        return self

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.write_units = self.read_units = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.requests)

    @staticmethod
    def _ask_for_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.requests[model.name] += 1

    def _add_capacity(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity") or []
        units = sum(
            float(entry.get("CapacityUnits", 0.0))
            for entry in (consumed if isinstance(consumed, list) else [consumed])
        )
        with self._lock:
            if model.name in WRITE_OPERATIONS:
                self.write_units += units
            else:
                self.read_units += units


class _LambdaContext:
    aws_request_id = "harness"
    function_name = "harness"
    memory_limit_in_mb = 512

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


class LambdaInstance:
    """One "Lambda instance": the real app, invoked with the events API Gateway sends.

    Import it after the environment (table, endpoint) is set: the app reads it lazily,
    but a meter attaches to the instance's own store client here.
    """

    def __init__(self, meter: RequestMeter | None = None) -> None:
        from app import app
        from chalicelib.storage import ticket_store

        self.app = app
        if meter is not None:
            meter.attach(ticket_store().client)

    def invoke(
        self,
        method: str,
        path: str,
        body: Any = None,
        idempotency_key: str | None = None,
        resource: str | None = None,
        path_parameters: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        request_id: str | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One API Gateway proxy event through the app; ``resource`` is the route template."""
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        event = {
            "resource": resource or path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()}
            if query
            else None,
            "pathParameters": path_parameters,
            "stageVariables": None,
            "body": None if body is None else json.dumps(body),
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": resource or path,
                "httpMethod": method,
                "requestId": request_id or str(uuid.uuid4()),
                "apiId": "harness",
                "stage": "api",
            },
        }
        response = self.app(event, _LambdaContext())
        return response["statusCode"], json.loads(response["body"])


@contextmanager
def threads_share_the_app() -> Iterator[None]:
    """While inside, any number of threads may invoke the one app object at once.

    Chalice keeps the request being served in an attribute of the app, so two
    threads invoking it together would each read the other's request. ``chalice
    local`` serves on threads by giving the app a class that keeps the request
    per thread (``chalice.local.LocalChalice``); this does the same, and puts the
    app's own class back on the way out. Everything else a request touches is
    per request already (context variables) or shared on purpose (the store's
    boto3 client, which is thread-safe, and the sold-out hints, which are only hints).
    """
    from chalice.local import LocalChalice

    from app import app

    original = app.__class__
    app.__class__ = type("ThreadedChalice", (LocalChalice, original), {})
    try:
        yield
    finally:
        app.__class__ = original
