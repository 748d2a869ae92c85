"""One structured JSON line per request outcome, with no email in clear."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.observability import email_fingerprint
from chalicelib.storage import TicketStore
from tests.conftest import Api, moto_only


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
    assert [line["eventId"] for line in outcome_lines(captured)] == [None, None]
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
