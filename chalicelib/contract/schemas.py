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
#: Bidirectional embedding, override and isolate controls: they make a name read
#: otherwise than it is stored (a right-to-left override reverses what follows).
_BIDI_CONTROL = r"\u202a-\u202e\u2066-\u2069"
#: Characters that show nothing, or nothing of their own: zero-width spaces and
#: joiners, invisible operators and deprecated format characters, fillers, the
#: Braille blank, variation selectors, the byte-order mark, interlinear annotation
#: marks, noncharacters, private-use characters, and combining marks (they show only
#: on a base character). Allowed inside a name, but not as its only content. (Only
#: the BMP: ranges beyond it made the schema-driven test generators crawl.)
_INVISIBLE = (
    r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u2060-\u2065\u206a-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\ufffe\uffff"
    r"\ue000-\uf8ff\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
    r"\ufe20-\ufe2f"
)
_NOT_IN_NAME = _CONTROL + _BIDI_CONTROL
#: A name holds no control character and at least one visible character.
NAME_PATTERN = rf"^[^{_NOT_IN_NAME}]*[^\s{_NOT_IN_NAME}{_INVISIBLE}][^{_NOT_IN_NAME}]*$"
EVENT_ID_DIGITS = r"^[1-9][0-9]{0,17}$"
IDEMPOTENCY_KEY_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"
PAGE_SIZE_DIGITS = r"^[0-9]{1,3}$"
#: A webhook endpoint's URL as the API accepts its form: http(s), a host (DNS labels,
#: or an IPv6 literal in brackets), an optional port, a path and query of URL
#: characters; no credentials (no ``@`` before the path), no fragment, no spaces.
#: Whether the URL may be reached (https, a public address) is judged after the
#: form, with a 422 (``chalicelib.webhooks.addresses``).
MAX_WEBHOOK_URL_LENGTH = 2048
WEBHOOK_URL_PATTERN = (
    rf"^https?://(?:(?:{_LABEL}\.)*{_LABEL}|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?"
    r"(?:[/?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
)
WEBHOOK_ID_PATTERN = r"^wh_[0-9a-f]{32}$"
#: RFC 3339 date-time with an explicit offset (``Z`` or ``+hh:mm``), seconds
#: required, up to microseconds, years 2000-2099. Only real calendar dates match
#: (30 days have September; February 29 in leap years), so a client that follows
#: the pattern never meets a date the service refuses.
_DAY = (
    r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"|20[0-9]{2}-(0[13-9]|1[0-2])-(29|30)"
    r"|20[0-9]{2}-(0[13578]|1[02])-31"
    r"|20(0[48]|[2468][048]|[13579][26])-02-29"
)
RFC3339_PATTERN = (
    rf"^({_DAY})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,6}})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

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
SALES_TIME: Schema = {
    "type": "string",
    "maxLength": 32,
    "pattern": RFC3339_PATTERN,
    "description": "RFC 3339 with an offset, e.g. 2026-12-01T09:00:00Z",
}
_NO_BOUND: Schema = {"type": "null", "description": "null removes the bound"}
#: A bound of the sales window in a change: a time, or null to remove it.
SALES_BOUND: Schema = {
    "oneOf": [SALES_TIME, _NO_BOUND],
    "description": "an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z), or"
    " null to remove the bound",
}
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
#: Where the next page of an event's attendee or waiting list starts: a position in
#: that list (a booking key or a wait key), never an item's key, so it cannot name
#: another event or person: the list is always the one the path names. Any value the
#: pattern allows is a valid position, so a client that follows the schema never
#: gets a 400 (a position past the end gives an empty last page).
LIST_CURSOR_DIGITS = r"^[1-9][0-9]{0,37}$"
LIST_CURSOR: Schema = {
    "type": "string",
    "pattern": LIST_CURSOR_DIGITS,
    "description": "nextCursor of the previous page of the same list (or its X-Next-Cursor"
    " header): the next page lists the entries after that position",
}
#: The response header that carries the next page's cursor (CSV answers have no body field).
NEXT_CURSOR_HEADER = "X-Next-Cursor"


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
    {
        "name": NAME,
        "totalTickets": TOTAL_TICKETS,
        "waitingListCap": WAITING_LIST_CAP,
        "salesOpenAt": SALES_TIME,
        "salesCloseAt": SALES_TIME,
    },
)
#: ``PATCH /events/{id}``: any of these, at least one. Raising ``totalTickets``
#: hands the new tickets to the waiting list first; lowering stops at the number booked.
EVENT_CHANGE = {
    **_object(
        [],
        {
            "name": NAME,
            "totalTickets": TOTAL_TICKETS,
            "waitingListCap": WAITING_LIST_CAP,
            "salesOpenAt": SALES_BOUND,
            "salesCloseAt": SALES_BOUND,
        },
    ),
    "minProperties": 1,
}
#: ``userEmail`` may be left out (the caller's own, from the token); if given, it
#: must be the caller's own, unless the caller is the event's organiser.
PLACE_REQUEST = _object(["eventId"], {"eventId": EVENT_ID, "userEmail": EMAIL})
LOOKUP_REQUEST = _object(["userEmail"], {"userEmail": EMAIL})
WEBHOOK_URL: Schema = {
    "type": "string",
    "maxLength": MAX_WEBHOOK_URL_LENGTH,
    "pattern": WEBHOOK_URL_PATTERN,
    "description": "where deliveries are POSTed: https, to a public address (http and"
    " loopback only in the local stage)",
}
WEBHOOK_ID: Schema = {"type": "string", "pattern": WEBHOOK_ID_PATTERN}
#: ``POST /webhooks``: ``eventId`` for one of the caller's events; left out, all of them.
NEW_WEBHOOK = _object(["url"], {"url": WEBHOOK_URL, "eventId": EVENT_ID})


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
        "state",
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
        "state": {
            "type": "string",
            "enum": ["ON_SALE", "NOT_ON_SALE_YET", "SALES_CLOSED", "CANCELLED"],
            "description": "whether a booking would be accepted now",
        },
        "salesOpenAt": {"type": "string", "format": "date-time"},
        "salesCloseAt": {"type": "string", "format": "date-time"},
        "cancelledAt": {"type": "string", "format": "date-time"},
        "release": _object(
            ["placesReleased", "placesToRelease", "complete"],
            {
                "placesReleased": {"type": "integer", "minimum": 0},
                "placesToRelease": {"type": "integer", "minimum": 0},
                "complete": {"type": "boolean"},
            },
        ),
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
        "status": {
            "type": "string",
            "enum": ["BOOKED", "WAITLISTED", "NONE", "RELEASED"],
            "description": "RELEASED: the place was released because the organiser"
            " cancelled the event",
        },
        "position": {**_POSITION, "type": ["integer", "null"]},
    },
)
_TIME = {"type": "string", "format": "date-time"}


def _held_or_released(status: str) -> Schema:
    """A list entry's status: what the person holds, or RELEASED once the event is cancelled."""
    return {
        "type": "string",
        "enum": [status, "RELEASED"],
        "description": "RELEASED: the organiser cancelled the event",
    }


ATTENDEE = _object(
    ["userEmail", "status", "bookedAt", "promotedFromWaitingList"],
    {
        "userEmail": _NORMALISED_EMAIL,
        "status": _held_or_released("BOOKED"),
        "bookedAt": {**_TIME, "description": "when the ticket was taken: booked, or promoted"},
        "promotedFromWaitingList": {"type": "boolean"},
    },
)
WAITING_ENTRY = _object(
    ["position", "userEmail", "status", "joinedAt"],
    {
        "position": {**_POSITION, "type": ["integer", "null"], "description": "null once RELEASED"},
        "userEmail": _NORMALISED_EMAIL,
        "status": _held_or_released("WAITLISTED"),
        "joinedAt": {**_TIME, "description": "when they joined the waiting list"},
    },
)


def _event_list_page(name: str, row_component: str) -> Schema:
    """A page of an event's list: the event, up to a page of rows, the next page's cursor."""
    return _object(
        ["eventId", name, "nextCursor"],
        {
            "eventId": _ID,
            name: {
                "type": "array",
                "maxItems": MAX_PAGE_SIZE,
                "items": {"$ref": f"#/components/schemas/{row_component}"},
            },
            "nextCursor": {**LIST_CURSOR, "type": ["string", "null"]},
        },
    )


_WEBHOOK_FIELDS: dict[str, Schema] = {
    "webhookId": WEBHOOK_ID,
    "url": {"type": "string", "maxLength": MAX_WEBHOOK_URL_LENGTH},
    "eventId": {**_ID, "type": ["integer", "null"], "description": "null: all the caller's events"},
    "status": {
        "type": "string",
        "enum": ["ENABLED", "DISABLED"],
        "description": "DISABLED after failing for too long; POST .../enable turns it back on",
    },
    "createdAt": _TIME,
    "consecutiveFailures": {"type": "integer", "minimum": 0},
    "failingSince": {**_TIME, "type": ["string", "null"]},
    "lastFailureAt": {**_TIME, "type": ["string", "null"]},
    "disabledAt": {**_TIME, "type": ["string", "null"]},
}
WEBHOOK = _object(list(_WEBHOOK_FIELDS), _WEBHOOK_FIELDS)
REGISTERED_WEBHOOK = _object(
    [*_WEBHOOK_FIELDS, "secret"],
    {
        **_WEBHOOK_FIELDS,
        "secret": {
            "type": "string",
            "pattern": "^whsec_[A-Za-z0-9+/=]+$",
            "description": "signs every delivery (Standard Webhooks); shown only in this answer",
        },
    },
)
WEBHOOK_LIST = _object(
    ["webhooks"],
    {"webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}},
)
DELETED_WEBHOOK = _object(
    ["webhookId", "deleted"],
    {"webhookId": WEBHOOK_ID, "deleted": {"type": "boolean", "enum": [True]}},
)

ATTENDEE_PAGE = _event_list_page("attendees", "Attendee")
WAITING_PAGE = _event_list_page("waitingList", "WaitingEntry")

#: The named schemas of the description's ``components``.
COMPONENTS: dict[str, Schema] = {
    "Error": ERROR,
    "NewEvent": NEW_EVENT,
    "EventChange": EVENT_CHANGE,
    "PlaceRequest": PLACE_REQUEST,
    "LookupRequest": LOOKUP_REQUEST,
    "Event": EVENT,
    "EventPage": EVENT_PAGE,
    "Booking": BOOKING,
    "Cancellation": CANCELLATION,
    "Standing": STANDING,
    "Attendee": ATTENDEE,
    "AttendeePage": ATTENDEE_PAGE,
    "WaitingEntry": WAITING_ENTRY,
    "WaitingPage": WAITING_PAGE,
    "NewWebhook": NEW_WEBHOOK,
    "Webhook": WEBHOOK,
    "RegisteredWebhook": REGISTERED_WEBHOOK,
    "WebhookList": WEBHOOK_LIST,
    "DeletedWebhook": DELETED_WEBHOOK,
}
