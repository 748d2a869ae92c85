"""Turn untrusted request data into typed values, or raise ``InvalidRequest`` naming the field.

Each check is the declared schema of ``chalicelib.contract.schemas`` (the same
one the OpenAPI description publishes); what follows a passed check only
converts (digits to an int) or normalises (an email's case and spaces).
Nothing here touches DynamoDB: a request that fails validation has written nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.clock import iso_from_ms, ms_from_datetime
from chalicelib.contract import schemas
from chalicelib.contract.check import check
from chalicelib.errors import InvalidRequest, InvalidWindow
from chalicelib.models import EventChange


@dataclass(frozen=True)
class NewEvent:
    name: str
    total_tickets: int
    waiting_list_cap: int | None
    #: The sales window's bounds, Unix ms (None: unbounded).
    sales_window: tuple[int | None, int | None] = (None, None)


@dataclass(frozen=True)
class PlaceRequest:
    """A request about one person's place in one event (book or cancel).

    ``email`` is None when the body names nobody: the caller acts for themselves.
    """

    event_id: int
    email: str | None


def parse_new_event(body: dict[str, Any]) -> NewEvent:
    check(schemas.NEW_EVENT, body, "body")
    opens, closes = (_time_or_none(body, name) for name in ("salesOpenAt", "salesCloseAt"))
    check_window(opens, closes)
    return NewEvent(
        name=body["name"].strip(),
        total_tickets=body["totalTickets"],
        waiting_list_cap=body.get("waitingListCap"),
        sales_window=(opens, closes),
    )


def parse_event_change(body: dict[str, Any]) -> EventChange:
    """``PATCH /events/{id}``: the fields to change (a window bound set to null is removed).

    Whether the resulting window is valid depends on the stored bounds, so
    ``chalicelib.organiser`` checks it with ``check_window`` once it has read them.
    """
    check(schemas.EVENT_CHANGE, body, "body")
    name = body.get("name")
    return EventChange(
        name=name.strip() if name is not None else None,
        total_tickets=body.get("totalTickets"),
        waiting_list_cap=body.get("waitingListCap"),
        sales_open_at=_time_or_none(body, "salesOpenAt"),
        sales_close_at=_time_or_none(body, "salesCloseAt"),
        clear_sales_open_at="salesOpenAt" in body and body["salesOpenAt"] is None,
        clear_sales_close_at="salesCloseAt" in body and body["salesCloseAt"] is None,
    )


def check_window(opens: int | None, closes: int | None) -> None:
    """A sales window must open before it closes."""
    if opens is not None and closes is not None and closes <= opens:
        raise InvalidWindow(iso_from_ms(opens), iso_from_ms(closes))


def _time_or_none(body: dict[str, Any], field: str) -> int | None:
    """A checked RFC 3339 time of ``body`` as Unix ms; None when absent or null."""
    value = body.get(field)
    if value is None:
        return None
    return ms_from_datetime(datetime.fromisoformat(value))  # the pattern admits only real dates


def parse_place_request(body: dict[str, Any]) -> PlaceRequest:
    check(schemas.PLACE_REQUEST, body, "body")
    email = body.get("userEmail")
    return PlaceRequest(int(body["eventId"]), normalise_email(email) if email else None)


def parse_lookup(body: dict[str, Any]) -> str:
    """The email an organiser looks up (in a body, so it never reaches a URL or access log)."""
    check(schemas.LOOKUP_REQUEST, body, "body")
    return normalise_email(body["userEmail"])


@dataclass(frozen=True)
class NewWebhook:
    """``POST /webhooks``: the URL, and the event it is for (None: all the caller's events)."""

    url: str
    event_id: int | None


def parse_new_webhook(body: dict[str, Any]) -> NewWebhook:
    """The URL's form is checked here; whether it may be reached, by the webhooks' guard."""
    check(schemas.NEW_WEBHOOK, body, "body")
    event_id = body.get("eventId")
    return NewWebhook(body["url"], int(event_id) if event_id is not None else None)


def parse_webhook_id(value: str | None) -> str:
    """A webhook id in a path."""
    if value is None:
        raise InvalidRequest("webhookId", "is required")
    check(schemas.WEBHOOK_ID, value, "webhookId")
    return value


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


def parse_list_cursor(value: str | None) -> int | None:
    """The ``cursor`` of an event's attendee or waiting list: a position in that list.

    Only its form is checked: a position is not a key, and the list is the one
    the path names, so no value can reach another event's (or person's) data.
    """
    if value is None:
        return None
    check(schemas.LIST_CURSOR, value, "cursor")
    return int(value)
