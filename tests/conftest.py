"""Shared fixtures.

Two backends run the same scenarios: moto (fast, single-threaded only: it is not
thread-safe) and a real DynamoDB Local started once per session on a free port,
in memory. Every test gets its own table, so tests never see each other's data.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.audit.fanout import AUDIT_QUEUE_URL_ENV, forget_sqs_clients
from chalicelib.booking import DAILY_EVENT_CAP_ENV
from chalicelib.identity.tokens import forget_keys
from chalicelib.notifications.mail import forget_mailers
from chalicelib.notifications.settings import (
    MAIL_OUTBOX_ENV,
    WEBHOOK_DEAD_LETTER_URL_ENV,
    WEBHOOK_QUEUE_URL_ENV,
)
from chalicelib.observability import KEY_ENV
from chalicelib.storage import TicketStore, forget_stores, make_client
from chalicelib.storage.schema import ENDPOINT_URL_ENV, TABLE_NAME_ENV
from chalicelib.webhooks.queue import forget_queues
from devtools.dynamodb_local import LOCAL_CREDENTIALS, DynamoDBLocal
from devtools.issuer import LocalIssuer
from devtools.tables import create_table_if_missing

ROOT = Path(__file__).resolve().parent.parent
_table_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    """make dev's token issuer, with its own key for this test session."""
    return LocalIssuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, issuer: LocalIssuer) -> Iterator[None]:
    """Throwaway credentials, and no endpoint override that would bypass moto."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", ENDPOINT_URL_ENV):
            monkeypatch.delenv(name)
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv(KEY_ENV, "test-pseudonym-key")
    for name, value in issuer.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(DAILY_EVENT_CAP_ENV, "1000000")
    monkeypatch.delenv(AUDIT_QUEUE_URL_ENV, raising=False)
    for name in (MAIL_OUTBOX_ENV, WEBHOOK_QUEUE_URL_ENV, WEBHOOK_DEAD_LETTER_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    forget_keys()
    forget_stores()
    forget_sqs_clients()
    forget_mailers()
    forget_queues()
    yield
    forget_stores()
    forget_sqs_clients()
    forget_mailers()
    forget_queues()


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as server:
        yield server


def unique_table_name() -> str:
    return f"tickets-{os.getpid()}-{next(_table_numbers)}"


@pytest.fixture
def moto_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[TicketStore]:
    with mock_aws():
        table = unique_table_name()
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_if_missing(client, table)
        monkeypatch.setenv(TABLE_NAME_ENV, table)
        yield TicketStore(make_client(), table)


@pytest.fixture
def audit_queue(moto_store: TicketStore, monkeypatch: pytest.MonkeyPatch) -> str:
    """An SQS queue (moto, next to ``moto_store``'s table) for the audit: its URL, also set
    in the environment, so the scheduled audit fans out to it instead of auditing in-process."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url: str = sqs.create_queue(QueueName=f"audit-{unique_table_name()}")["QueueUrl"]
    monkeypatch.setenv(AUDIT_QUEUE_URL_ENV, url)
    return url


def drain(queue_url: str) -> list[str]:
    """Every message body waiting on the queue, in no particular order; the queue is left empty."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def local_store(
    dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TicketStore]:
    """A table of its own on the session's DynamoDB Local, without a stream (see
    ``create_table_if_missing``: streams of deleted tables slow the whole session)."""
    yield from _local_table(dynamodb_local, monkeypatch, stream=False)


@pytest.fixture
def streamed_store(
    dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TicketStore]:
    """A table with the stream, as ``make dev`` and AWS have it: for notification tests."""
    yield from _local_table(dynamodb_local, monkeypatch, stream=True)


def _local_table(
    dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> Iterator[TicketStore]:
    table = unique_table_name()
    client = make_client(dynamodb_local.endpoint_url)
    create_table_if_missing(client, table, stream=stream)
    monkeypatch.setenv(TABLE_NAME_ENV, table)
    monkeypatch.setenv(ENDPOINT_URL_ENV, dynamodb_local.endpoint_url)
    yield TicketStore(client, table)
    client.delete_table(TableName=table)


@pytest.fixture(params=["moto", "dynamodb_local"])
def store(request: pytest.FixtureRequest) -> TicketStore:
    """The same scenario on moto and on DynamoDB Local."""
    fixture = "moto_store" if request.param == "moto" else "local_store"
    return request.getfixturevalue(fixture)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


#: The organiser the tests' raw requests sign in as: it owns every event it creates,
#: so it may act for any email there (box office), as the service allows.
ORGANISER = "organiser@example.com"
#: The owner of the events tests create straight through ``chalicelib.booking``.
ORGANISER_ID = "test-organiser"
_DEFAULT = object()


class Api:
    """A JSON wrapper over Chalice's (single-threaded) test client that signs in.

    ``book``, ``cancel`` and ``standing`` sign in as the person they name, the
    way that person's own client would. ``post`` and ``get`` sign in as
    ``ORGANISER`` unless given another ``token`` (``None``: no token at all).
    """

    def __init__(self, client: Client, issuer: LocalIssuer) -> None:
        self.client = client
        self.issuer = issuer
        self._tokens: dict[tuple[str, bool], str] = {}

    def token(self, email: str, organiser: bool = False) -> str:
        key = (email.strip().lower(), organiser)
        if key not in self._tokens:
            self._tokens[key] = self.issuer.token(key[0], organiser=organiser)
        return self._tokens[key]

    def _headers(self, token: Any, headers: dict[str, str] | None) -> dict[str, str]:
        if token is _DEFAULT:
            token = self.token(ORGANISER, organiser=True)
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return {**auth, **(headers or {})}

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, token: Any = _DEFAULT
    ) -> Reply:
        return self.send("post", path, body, headers, token)

    def patch(
        self, path: str, body: Any, headers: dict[str, str] | None = None, token: Any = _DEFAULT
    ) -> Reply:
        return self.send("patch", path, body, headers, token)

    def send(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str] | None = None,
        token: Any = _DEFAULT,
    ) -> Reply:
        """``body`` as JSON (bytes and str as they are), with ``method``."""
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        response = getattr(self.client.http, method)(
            path,
            headers={"Content-Type": "application/json", **self._headers(token, headers)},
            body=raw,
        )
        return _reply(response)

    def get(self, path: str, headers: dict[str, str] | None = None, token: Any = _DEFAULT) -> Reply:
        return _reply(self.client.http.get(path, headers=self._headers(token, headers)))

    def create_event(
        self, total: int, name: str = "Tech Conference 2025", organiser: str = ORGANISER
    ) -> int:
        reply = self.post(
            "/initialize",
            {"name": name, "totalTickets": total},
            token=self.token(organiser, organiser=True),
        )
        assert reply.status == 201, reply
        return int(reply.body["eventId"])

    def book(self, event_id: Any, email: str, **headers: str) -> Reply:
        body = {"eventId": event_id, "userEmail": email}
        return self.post("/book", body, headers, token=self.token(email))

    def cancel(self, event_id: Any, email: str) -> Reply:
        return self.post(
            "/cancel", {"eventId": event_id, "userEmail": email}, token=self.token(email)
        )

    def status_of(self, event_id: Any) -> dict[str, Any]:
        reply = self.get(f"/status/{event_id}", token=None)
        assert reply.status == 200, reply
        return dict(reply.body)

    def standing(self, event_id: Any, email: str) -> Reply:
        """``email``'s own standing: the token says who is asking."""
        return self.get(f"/events/{event_id}/standing", token=self.token(email))


def _reply(response: Any) -> Reply:
    body = json.loads(response.body) if response.body else None
    return Reply(response.status_code, body, dict(response.headers))


@pytest.fixture
def api(store: TicketStore, issuer: LocalIssuer) -> Iterator[Api]:
    """The app through Chalice's test client, on the backend ``store`` chose."""
    from app import app

    with Client(app, stage_name="test", project_dir=str(ROOT)) as client:
        yield Api(client, issuer)


#: Run a test that takes ``store`` or ``api`` on one backend only.
moto_only = pytest.mark.parametrize("store", ["moto"], indirect=True)
local_only = pytest.mark.parametrize("store", ["dynamodb_local"], indirect=True)


def log_and_metric_lines(output: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Log lines, and the metric values of the embedded-metric-format documents (summed
    over documents: one per invocation), apart."""
    documents = [json.loads(line) for line in output.splitlines()]
    logs = [d for d in documents if "_aws" not in d]
    metrics: dict[str, float] = {}
    for document in (d for d in documents if "_aws" in d):
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "TicketBooking"
        assert [set(d) for d in directive["Dimensions"]] == [{"service", "stage"}]
        assert document["stage"] == "test"
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]  # Powertools writes a list of values
            total = sum(value) if isinstance(value, list) else value
            metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + total
    return logs, metrics
