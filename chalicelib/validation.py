"""Turn untrusted request data into typed values, or raise ``InvalidRequest`` naming the field.

Each check is the declared schema of ``chalicelib.contract.schemas`` (the same
one the OpenAPI description publishes); what follows a passed check only
converts (digits to an int) or normalises (an email's case and spaces).
Nothing here touches DynamoDB: a request that fails validation has written nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.contract import schemas
from chalicelib.contract.check import check
from chalicelib.errors import InvalidRequest


@dataclass(frozen=True)
class NewEvent:
    name: str
    total_tickets: int
    waiting_list_cap: int | None


@dataclass(frozen=True)
class PlaceRequest:
    """A request about one person's place in one event (book or cancel).

    ``email`` is None when the body names nobody: the caller acts for themselves.
    """

    event_id: int
    email: str | None


def parse_new_event(body: dict[str, Any]) -> NewEvent:
    check(schemas.NEW_EVENT, body, "body")
    return NewEvent(
        name=body["name"].strip(),
        total_tickets=body["totalTickets"],
        waiting_list_cap=body.get("waitingListCap"),
    )


def parse_place_request(body: dict[str, Any]) -> PlaceRequest:
    check(schemas.PLACE_REQUEST, body, "body")
    email = body.get("userEmail")
    return PlaceRequest(int(body["eventId"]), normalise_email(email) if email else None)


def parse_lookup(body: dict[str, Any]) -> str:
    """The email an organiser looks up (in a body, so it never reaches a URL or access log)."""
    check(schemas.LOOKUP_REQUEST, body, "body")
    return normalise_email(body["userEmail"])


def parse_event_id(value: str | None, field: str = "eventId") -> int:
    """An id in a path: its digits."""
    if value is None:
        raise InvalidRequest(field, "is required")
    check(schemas.EVENT_ID_STRING, value, field)
    return int(value)


def normalise_email(email: str) -> str:
    """One person, one identity: surrounding spaces and letter case do not count."""
    return email.strip(" ").lower()


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    check(schemas.IDEMPOTENCY_KEY, value, "Idempotency-Key")
    return value


def parse_page_size(value: str | None) -> int:
    """``limit`` from the query string: the digits of an integer from 1 to 100."""
    if value is None:
        return schemas.DEFAULT_PAGE_SIZE
    if not value.isascii() or not value.isdigit() or len(value) > 3:
        raise InvalidRequest("limit", f"must be an integer from 1 to {schemas.MAX_PAGE_SIZE}")
    size = int(value)
    check(schemas.PAGE_SIZE, size, "limit")
    return size


def encode_cursor(before_id: int) -> str:
    return str(before_id)


def parse_cursor(value: str | None) -> int | None:
    """The ``cursor`` a previous page returned: list the events below this id."""
    if value is None:
        return None
    check(schemas.CURSOR, value, "cursor")
    return int(value)
