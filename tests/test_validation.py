"""Bad input: a 400 naming the field, never a 500, never a write (moto; single-threaded)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import validation
from chalicelib.errors import InvalidRequest
from chalicelib.storage import TicketStore
from tests.conftest import Api, moto_only


def table_snapshot(store: TicketStore) -> list[dict[str, Any]]:
    items = store.client.scan(TableName=store.table_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"totalTickets": 10}, "name"),
        ({"name": "", "totalTickets": 10}, "name"),
        ({"name": "   ", "totalTickets": 10}, "name"),
        ({"name": 42, "totalTickets": 10}, "name"),
        ({"name": "x" * 201, "totalTickets": 10}, "name"),
        ({"name": "\u200b\u200d\ufeff", "totalTickets": 10}, "name"),  # nothing visible
        ({"name": "Gig \u202egnol", "totalTickets": 10}, "name"),  # reads as "Gig long"
        ({"name": "\u2800\u2800", "totalTickets": 10}, "name"),  # Braille blanks
        ({"name": "\u0300\u20dd", "totalTickets": 10}, "name"),  # marks with nothing to mark
        ({"name": "\ue000\ufff9", "totalTickets": 10}, "name"),  # private use, annotation
        ({"name": "Gig"}, "totalTickets"),
        ({"name": "Gig", "totalTickets": "5"}, "totalTickets"),
        ({"name": "Gig", "totalTickets": 5.5}, "totalTickets"),
        ({"name": "Gig", "totalTickets": 5.0}, "totalTickets"),
        ({"name": "Gig", "totalTickets": True}, "totalTickets"),
        ({"name": "Gig", "totalTickets": 0}, "totalTickets"),
        ({"name": "Gig", "totalTickets": -3}, "totalTickets"),
        ({"name": "Gig", "totalTickets": 1_000_001}, "totalTickets"),
        ({"name": "Gig", "totalTickets": None}, "totalTickets"),
        ("{not json", "body"),
        ("[1, 2]", "body"),
        ("", "body"),
        ("null", "body"),
    ],
)
@moto_only
def test_initialize_rejects_bad_input(api: Api, store: TicketStore, body: Any, field: str) -> None:
    before = table_snapshot(store)
    reply = api.post("/initialize", body)
    assert reply.status == 400
    assert reply.body["Code"] == "BadRequestError"
    assert reply.body["Message"].startswith(f"{field}:")
    assert table_snapshot(store) == before


@moto_only
def test_initialize_accepts_the_boundaries(api: Api) -> None:
    assert api.post("/initialize", {"name": "x" * 200, "totalTickets": 1}).status == 201
    assert api.post("/initialize", {"name": "Big", "totalTickets": 1_000_000}).status == 201


@pytest.mark.parametrize("path", ["/book", "/cancel"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userEmail": "a@example.com"}, "eventId"),
        ({"eventId": None, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": "one", "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": 1.5, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": True, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": 0, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": -1, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": "1 OR 1=1", "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": "9" * 40, "userEmail": "a@example.com"}, "eventId"),
        ({"eventId": 1, "userEmail": ""}, "userEmail"),
        ({"eventId": 1, "userEmail": "   "}, "userEmail"),
        ({"eventId": 1, "userEmail": 7}, "userEmail"),
        ({"eventId": 1, "userEmail": "not-an-email"}, "userEmail"),
        ({"eventId": 1, "userEmail": "a@b"}, "userEmail"),
        ({"eventId": 1, "userEmail": "two@@example.com"}, "userEmail"),
        ({"eventId": 1, "userEmail": "x" * 300 + "@example.com"}, "userEmail"),
        ("{", "body"),
        ('"just a string"', "body"),
    ],
)
@moto_only
def test_book_and_cancel_reject_bad_input(
    api: Api, store: TicketStore, path: str, body: Any, field: str
) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    before = table_snapshot(store)
    reply = api.post(path, body)
    assert reply.status == 400, reply
    assert reply.body["Message"].startswith(f"{field}:")
    assert table_snapshot(store) == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/status/abc", "eventId"),
        ("/status/0", "eventId"),
        ("/events/-4", "eventId"),
        ("/events/1/standing?userEmail=nope", "userEmail"),
        ("/events?limit=0", "limit"),
        ("/events?limit=101", "limit"),
        ("/events?limit=ten", "limit"),
        ("/events?cursor=garbage!", "cursor"),
        ("/events?cursor=eyJiZWZvcmUiOiAieCJ9", "cursor"),
    ],
)
@moto_only
def test_reads_reject_bad_input(api: Api, path: str, field: str) -> None:
    api.create_event(1)
    reply = api.get(path)
    assert reply.status == 400, reply
    assert reply.body["Message"].startswith(f"{field}:")


@moto_only
def test_bad_idempotency_key_is_rejected(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(1)
    before = table_snapshot(store)
    reply = api.book(event_id, "a@example.com", **{"Idempotency-Key": "spaces are bad"})
    assert reply.status == 400
    assert reply.body["Message"].startswith("Idempotency-Key:")
    assert table_snapshot(store) == before


def test_emails_are_normalised_to_one_identity() -> None:
    assert validation.normalise_email("  User1@Gmail.COM ") == "user1@gmail.com"


def test_cursor_round_trips_and_every_cursor_the_schema_allows_is_accepted() -> None:
    """A cursor is the id the next page starts below. It used to be opaque base64 JSON,
    which let a schema-valid cursor answer 400 and a crafted one reach DynamoDB with a
    39-digit number; now every value its pattern allows is a valid cursor."""
    assert validation.parse_cursor(validation.encode_cursor(42)) == 42
    assert validation.parse_cursor("999999999999999999") == 10**18 - 1
    for bad in ("42!!", "0", "01", "1" * 19, str(10**38 + 1), "", " 1", "1\n"):
        with pytest.raises(InvalidRequest, match=r"^cursor: "):
            validation.parse_cursor(bad)
