"""Turn untrusted request data into typed values, or raise ``InvalidRequest`` naming the field.

Nothing here touches DynamoDB: a request that fails validation has written nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from chalicelib.errors import InvalidRequest

MAX_NAME_LENGTH = 200
MIN_TICKETS = 1
MAX_TICKETS = 1_000_000
MAX_EVENT_ID_DIGITS = 18
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_IDEMPOTENCY_KEY_LENGTH = 100

_DIGITS = re.compile(r"[0-9]+")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class NewEvent:
    name: str
    total_tickets: int


@dataclass(frozen=True)
class PlaceRequest:
    """A request about one person's place in one event (book or cancel)."""

    event_id: int
    email: str


def parse_json_object(raw_body: str | bytes | None) -> dict[str, Any]:
    if not raw_body:
        raise InvalidRequest("body", "a JSON object is required")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return body


def parse_new_event(body: dict[str, Any]) -> NewEvent:
    name = body.get("name")
    if name is None:
        raise InvalidRequest("name", "is required")
    if not isinstance(name, str):
        raise InvalidRequest("name", "must be a string")
    name = name.strip()
    if not name:
        raise InvalidRequest("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest("name", f"must be at most {MAX_NAME_LENGTH} characters")
    total = body.get("totalTickets")
    if total is None:
        raise InvalidRequest("totalTickets", "is required")
    if isinstance(total, bool) or not isinstance(total, int):
        raise InvalidRequest("totalTickets", "must be a whole number (a JSON integer)")
    if not MIN_TICKETS <= total <= MAX_TICKETS:
        raise InvalidRequest("totalTickets", f"must be between {MIN_TICKETS} and {MAX_TICKETS:,}")
    return NewEvent(name=name, total_tickets=total)


def parse_place_request(body: dict[str, Any]) -> PlaceRequest:
    if "eventId" not in body:
        raise InvalidRequest("eventId", "is required")
    event_id = parse_event_id(body["eventId"])
    if "userEmail" not in body:
        raise InvalidRequest("userEmail", "is required")
    return PlaceRequest(event_id=event_id, email=parse_email(body["userEmail"]))


def parse_event_id(value: Any, field: str = "eventId") -> int:
    """Accept an id exactly as ``/initialize`` returned it: a JSON integer or its digits."""
    if isinstance(value, bool):
        raise InvalidRequest(field, "must be a positive integer")
    if isinstance(value, int):
        event_id = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value) and len(value) <= MAX_EVENT_ID_DIGITS:
        event_id = int(value)
    else:
        raise InvalidRequest(field, "must be a positive integer")
    if not 1 <= event_id < 10**MAX_EVENT_ID_DIGITS:
        raise InvalidRequest(field, "must be a positive integer")
    return event_id


def parse_email(value: Any, field: str = "userEmail") -> str:
    """Normalise an email: surrounding spaces and letter case do not make a new person."""
    if value is None:
        raise InvalidRequest(field, "is required")
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    candidate = value.strip()
    if not candidate:
        raise InvalidRequest(field, "is required")
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidRequest(field, f"is not a valid email address ({error})") from None
    return checked.normalized.lower()


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(
            "Idempotency-Key",
            f"must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} letters, digits or . _ : -",
        )
    return key


def parse_page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise InvalidRequest("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(value)


def encode_cursor(before_id: int) -> str:
    raw = json.dumps({"before": before_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(value: str | None) -> int | None:
    """Decode the opaque ``cursor`` that a previous page returned."""
    if value is None:
        return None
    try:
        padded = value + "=" * (-len(value) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        before = data["before"]
        if isinstance(before, bool) or not isinstance(before, int) or before < 1:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise InvalidRequest("cursor", "is not a cursor this API returned") from None
    return before
