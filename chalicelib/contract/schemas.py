"""The API's data, declared once as JSON Schema: validation reads these, and so does OpenAPI.

Every constraint the service enforces on a value is a keyword here
(``chalicelib.contract.check`` interprets them; ``chalicelib.contract.openapi``
publishes them), so the description a client generator reads and the checks a
request meets cannot drift. What cannot be said in JSON Schema is checked on the
raw body before it is parsed (``chalicelib.contract.body``) and documented in
the description's text: the size, encoding and nesting limits, duplicate keys,
and that integers are written without a fraction (``5``, not ``5.0``).

Patterns are anchored (``^...$``) and meant whole, as ECMA-262 reads them;
``check`` matches them in full, so a trailing newline never slips through.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

#: Limits of a request, before its JSON is parsed.
MAX_BODY_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8

MAX_NAME_LENGTH = 200
MIN_TICKETS = 1
MAX_TICKETS = 1_000_000
MAX_EVENT_ID = 10**18 - 1  # 18 digits: what an id sequence can reach, and what DynamoDB stores
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_EMAIL_LENGTH = 254
MAX_IDEMPOTENCY_KEY_LENGTH = 100

#: Characters no text field may hold: C0 and C1 controls and DEL.
_CONTROL = r"\u0000-\u001f\u007f-\u009f"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ATEXT_OR_DOT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"
#: An address as a person types it: a local part of 1 to 64 characters (dots
#: allowed inside, not at either end), a domain of DNS labels with an alphabetic
#: top level; surrounding spaces allowed (and ignored). ASCII only. Written
#: without lookaheads, so that schema-driven generators can produce it.
EMAIL_PATTERN = (
    rf"^ *{_ATEXT}(?:{_ATEXT_OR_DOT}{{0,62}}{_ATEXT})?@(?:{_LABEL}\.)+[A-Za-z]{{2,63}} *$"
)
#: A name holds no control character and at least one non-space character.
NAME_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
EVENT_ID_DIGITS = r"^[1-9][0-9]{0,17}$"
IDEMPOTENCY_KEY_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"
PAGE_SIZE_DIGITS = r"^[0-9]{1,3}$"

EVENT_ID_NUMBER: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID}
EVENT_ID_STRING: Schema = {"type": "string", "pattern": EVENT_ID_DIGITS}
EVENT_ID: Schema = {
    "oneOf": [EVENT_ID_NUMBER, EVENT_ID_STRING],
    "description": "a positive integer, as /initialize returned it: a JSON number, or its"
    " digits as a string",
}
EMAIL: Schema = {
    "type": "string",
    "maxLength": MAX_EMAIL_LENGTH,
    "pattern": EMAIL_PATTERN,
    "description": "compared case-insensitively; surrounding spaces are ignored",
}
NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": NAME_PATTERN,
    "description": "stored without surrounding spaces",
}
TOTAL_TICKETS: Schema = {"type": "integer", "minimum": MIN_TICKETS, "maximum": MAX_TICKETS}
MAX_WAITING_LIST_CAP = 1_000_000
WAITING_LIST_CAP: Schema = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_WAITING_LIST_CAP,
    "description": "how many people may wait once sold out (default 10,000)",
}
IDEMPOTENCY_KEY: Schema = {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}
PAGE_SIZE: Schema = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_PAGE_SIZE,
    "default": DEFAULT_PAGE_SIZE,
}
#: Where the next page starts: the events below this id. Every value the pattern
#: allows is a valid cursor, so a client that follows the schema never gets a 400.
CURSOR: Schema = {
    "type": "string",
    "pattern": EVENT_ID_DIGITS,
    "description": "nextCursor of the previous page: the next page lists the events below it",
}


def _object(required: list[str], properties: dict[str, Schema]) -> Schema:
    """Exactly these fields: a request's unknown fields are refused, not ignored, and
    an answer never carries one the description does not list."""
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }


NEW_EVENT = _object(
    ["name", "totalTickets"],
    {"name": NAME, "totalTickets": TOTAL_TICKETS, "waitingListCap": WAITING_LIST_CAP},
)
#: ``userEmail`` may be left out (the caller's own, from the token); if given, it
#: must be the caller's own, unless the caller is the event's organiser.
PLACE_REQUEST = _object(["eventId"], {"eventId": EVENT_ID, "userEmail": EMAIL})
LOOKUP_REQUEST = _object(["userEmail"], {"userEmail": EMAIL})


_ID = {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_TICKETS}
_NORMALISED_EMAIL = {"type": "string", "maxLength": MAX_EMAIL_LENGTH}
_PLACE_STATUS = {"type": "string", "enum": ["BOOKED", "WAITLISTED"]}
_POSITION = {"type": "integer", "minimum": 1, "description": "1 = next in line"}

ERROR = _object(["Code", "Message"], {"Code": {"type": "string"}, "Message": {"type": "string"}})
EVENT = _object(
    [
        "eventId",
        "name",
        "totalTickets",
        "availableTickets",
        "bookedTickets",
        "waitingListCount",
        "createdAt",
    ],
    {
        "eventId": _ID,
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "totalTickets": {**_COUNT, "minimum": MIN_TICKETS},
        "availableTickets": _COUNT,
        "bookedTickets": _COUNT,
        "waitingListCount": {"type": "integer", "minimum": 0},
        "waitingListCap": {"type": "integer", "minimum": 1, "maximum": MAX_WAITING_LIST_CAP},
        "createdAt": {"type": "string", "format": "date-time"},
    },
)
EVENT_PAGE = _object(
    ["events", "nextCursor"],
    {
        "events": {
            "type": "array",
            "maxItems": MAX_PAGE_SIZE,
            "items": {"$ref": "#/components/schemas/Event"},
        },
        "nextCursor": {**CURSOR, "type": ["string", "null"]},
    },
)
BOOKING = _object(
    ["message", "eventId", "userEmail", "status"],
    {
        "message": {"type": "string"},
        "eventId": _ID,
        "userEmail": _NORMALISED_EMAIL,
        "status": _PLACE_STATUS,
        "position": {**_POSITION, "description": "only when WAITLISTED; 1 = next in line"},
        "idempotentReplay": {"type": "boolean", "enum": [True]},
    },
)
CANCELLATION = _object(
    [
        "message",
        "eventId",
        "userEmail",
        "status",
        "previousStatus",
        "ticketPassedToWaitingList",
    ],
    {
        "message": {"type": "string"},
        "eventId": _ID,
        "userEmail": _NORMALISED_EMAIL,
        "status": {"type": "string", "enum": ["CANCELLED"]},
        "previousStatus": _PLACE_STATUS,
        "ticketPassedToWaitingList": {"type": "boolean"},
    },
)
STANDING = _object(
    ["eventId", "userEmail", "status", "position"],
    {
        "eventId": _ID,
        "userEmail": _NORMALISED_EMAIL,
        "status": {"type": "string", "enum": ["BOOKED", "WAITLISTED", "NONE"]},
        "position": {**_POSITION, "type": ["integer", "null"]},
    },
)

#: The named schemas of the description's ``components``.
COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "NewEvent": NEW_EVENT,
    "PlaceRequest": PLACE_REQUEST,
    "LookupRequest": LOOKUP_REQUEST,
    "Event": EVENT,
    "EventPage": EVENT_PAGE,
    "Booking": BOOKING,
    "Cancellation": CANCELLATION,
    "Standing": STANDING,
}
