"""One structured JSON line per request outcome (Powertools Logger), no email in clear, keyed
pseudonyms, metrics per request, and a logger that can never fail a request."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from chalicelib import http
from chalicelib.observability import KEY_ENV, email_fingerprint
from chalicelib.storage import TicketStore
from devtools.faults import FaultInjector
from tests.conftest import Api, log_and_metric_lines, moto_only


def outcome_lines(captured: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "request outcome"]


@moto_only
def test_each_request_logs_one_json_line_with_its_outcome(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "Alice@Example.com")
    api.book(event_id, "bob@example.com")
    api.book(event_id, "bob@example.com")
    api.cancel(event_id, "nobody@example.com")
    api.get(f"/status/{event_id}")
    api.post("/book", "{not json")

    captured = capsys.readouterr().out
    lines = outcome_lines(captured)
    assert [(line["action"], line["outcome"], line["statusCode"]) for line in lines] == [
        ("initialize", "OK", 201),
        ("book", "BOOKED", 201),
        ("book", "WAITLISTED", 202),
        ("book", "AlreadyHoldsPlace", 409),
        ("cancel", "NoPlaceHeld", 404),
        ("status", "OK", 200),
        ("book", "InvalidRequest", 400),
    ]
    for line in lines[:-1]:
        assert line["eventId"] == event_id
        assert line["level"] == "INFO"
        assert isinstance(line["durationMs"], float | int) and line["durationMs"] >= 0
    assert lines[1]["user"] == email_fingerprint("alice@example.com")
    assert "example.com" not in captured.lower()


@moto_only
def test_user_input_in_the_wrong_field_is_not_logged(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("/book", {"eventId": "dave@example.com", "userEmail": 7})
    api.get("/status/eve@example.com")

    captured = capsys.readouterr().out
    # An id that is not well-formed is left out (a key Powertools would show as absent).
    assert ["eventId" in line for line in outcome_lines(captured)] == [False, False]
    assert "example.com" not in captured


@moto_only
def test_unexpected_failure_is_logged_with_context_and_answers_a_generic_500(
    api: Api, store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = api.create_event(5)
    capsys.readouterr()
    store.client.delete_table(TableName=store.table_name)  # the table vanishes

    reply = api.book(event_id, "carol@example.com")

    assert reply.status == 500
    assert reply.body == {
        "Code": "InternalServerError",
        "Message": "An internal server error occurred",
    }
    [line] = outcome_lines(capsys.readouterr().out)
    assert line["level"] == "ERROR"
    assert line["action"] == "book"
    assert line["eventId"] == event_id
    assert line["statusCode"] == 500
    assert "ResourceNotFoundException" in line["exception"]
    assert "carol@example.com" not in json.dumps(line)


@moto_only
@pytest.mark.parametrize("broken", ["log_event", "email_fingerprint", "flush_metrics"])
def test_a_failing_logger_never_changes_the_answer(
    api: Api,
    store: TicketStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    broken: str,
) -> None:
    event_id = api.create_event(1)
    capsys.readouterr()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(http, broken, fail)
    reply = api.book(event_id, "ann@example.com")

    assert reply.status == 201 and reply.body["status"] == "BOOKED"
    logs, _ = log_and_metric_lines(capsys.readouterr().out)
    failures = [line for line in logs if line["message"] == "request logging failed"]
    assert [(f["level"], f["action"], f["error"]) for f in failures] == [
        ("ERROR", "book", "UnicodeEncodeError")
    ]
    assert "ann@example.com" not in json.dumps(logs)


def test_pseudonyms_are_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    email = "ann@example.com"
    first = email_fingerprint(email)
    assert first == email_fingerprint(" ANN@Example.com ")
    assert first != hashlib.sha256(email.encode()).hexdigest()[:16]  # not guessable unkeyed
    monkeypatch.setenv(KEY_ENV, "another-key")
    assert email_fingerprint(email) != first


@moto_only
def test_each_request_writes_its_metrics(
    api: Api, store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = api.create_event(1)
    capsys.readouterr()
    steps = [
        (lambda: api.book(event_id, "a@example.com"), {"Bookings": 1}),
        (lambda: api.book(event_id, "b@example.com"), {"WaitlistJoins": 1}),
        (lambda: api.book(event_id, "b@example.com"), {"Conflicts": 1}),
        (lambda: api.cancel(event_id, "a@example.com"), {"Cancellations": 1, "Promotions": 1}),
        (lambda: api.cancel(event_id, "b@example.com"), {"Cancellations": 1}),
    ]
    for send, expected in steps:
        send()
        _, metrics = log_and_metric_lines(capsys.readouterr().out)
        assert metrics == {**expected, "DynamoDBRetries": 0}


@moto_only
def test_a_503_counts_as_service_busy_with_its_retries(
    api: Api, store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = api.create_event(1)
    from chalicelib.storage import ticket_store

    FaultInjector.always("TransactWriteItems", "throttling").attach(ticket_store().client)
    capsys.readouterr()
    assert api.book(event_id, "a@example.com").status == 503
    _, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"ServiceBusy": 1, "DynamoDBRetries": 5}


@moto_only
def test_lines_carry_api_gateways_request_id_and_the_lambda_context(
    store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from devtools.harness import LambdaInstance

    status, _ = LambdaInstance().invoke("GET", "/events", request_id="req-123")
    assert status == 200
    [line] = outcome_lines(capsys.readouterr().out)
    assert line["correlation_id"] == "req-123"
    assert line["function_request_id"] == "harness"  # the Lambda context's own id
    assert line["function_name"] == "harness"
    assert isinstance(line["cold_start"], bool)
