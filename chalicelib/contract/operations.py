"""Every operation of the API: its parameters, body, and each answer it can give.

``chalicelib.contract.openapi`` publishes this table; ``tests/test_contract.py``
holds the routes of ``app.py`` to it (the same set, no more, no less), and sends
generated requests to check that every answer is one documented here, in the
documented shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.contract import schemas
from chalicelib.contract.schemas import Schema


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path", "query" or "header"
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Answer:
    description: str
    schema: str  # a component name
    headers: dict[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    answers: dict[int, Answer]
    parameters: tuple[Parameter, ...] = ()
    body: str | None = None  # the request body's component name


EVENT_ID_IN_PATH = Parameter(
    "eventId", "path", schemas.EVENT_ID_STRING, "the event's id", required=True
)
RETRY_AFTER = {"Retry-After": {"type": "integer", "minimum": 1, "description": "seconds"}}

BAD_INPUT = Answer("Invalid input; the message names the field", "Error")
TOO_LARGE = Answer(f"The body is larger than {schemas.MAX_BODY_BYTES:,} bytes", "Error")
NOT_JSON = Answer("The body is not JSON encoded as UTF-8 (Content-Type application/json)", "Error")
BUSY = Answer(
    "DynamoDB kept refusing; the message says whether the request may have been applied."
    " Retrying is safe.",
    "Error",
    RETRY_AFTER,
)
UNKNOWN_EVENT = Answer("Unknown event", "Error")

#: What any operation may answer, whatever it does.
COMMON: dict[int, Answer] = {400: BAD_INPUT, 413: TOO_LARGE, 415: NOT_JSON, 503: BUSY}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/initialize",
        "initialize",
        "Create an event",
        {201: Answer("Created", "Event"), **COMMON},
        body="NewEvent",
    ),
    Operation(
        "post",
        "/book",
        "book",
        "Book a ticket, or join the waiting list when sold out",
        {
            201: Answer("Booked", "Booking"),
            202: Answer("Sold out: on the waiting list", "Booking"),
            404: UNKNOWN_EVENT,
            409: Answer("This email already holds a ticket or a waiting place", "Error"),
            **COMMON,
        },
        parameters=(
            Parameter(
                "Idempotency-Key",
                "header",
                schemas.IDEMPOTENCY_KEY,
                "Send the same key when retrying a booking whose answer was lost",
            ),
        ),
        body="PlaceRequest",
    ),
    Operation(
        "post",
        "/cancel",
        "cancel",
        "Give up a ticket (it goes to the next person waiting) or a waiting place",
        {
            200: Answer("Cancelled", "Cancellation"),
            404: Answer("Unknown event, or no place held", "Error"),
            **COMMON,
        },
        body="PlaceRequest",
    ),
    Operation(
        "get",
        "/status/{eventId}",
        "status",
        "An event's counters (the original API's name for GET /events/{eventId})",
        {200: Answer("The event", "Event"), 404: UNKNOWN_EVENT, **COMMON},
        parameters=(EVENT_ID_IN_PATH,),
    ),
    Operation(
        "get",
        "/events",
        "listEvents",
        "Events, newest first",
        {200: Answer("A page of events", "EventPage"), **COMMON},
        parameters=(
            Parameter("limit", "query", schemas.PAGE_SIZE, "events per page"),
            Parameter("cursor", "query", schemas.CURSOR),
        ),
    ),
    Operation(
        "get",
        "/events/{eventId}",
        "getEvent",
        "One event",
        {200: Answer("The event", "Event"), 404: UNKNOWN_EVENT, **COMMON},
        parameters=(EVENT_ID_IN_PATH,),
    ),
    Operation(
        "get",
        "/events/{eventId}/standing",
        "standing",
        "A person's standing: booked, waiting (with position) or neither",
        {200: Answer("The standing", "Standing"), 404: UNKNOWN_EVENT, **COMMON},
        parameters=(
            EVENT_ID_IN_PATH,
            Parameter("userEmail", "query", schemas.EMAIL, required=True),
        ),
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi",
        "This description",
        {200: Answer("The OpenAPI document", "OpenApiDocument"), **COMMON},
    ),
)
