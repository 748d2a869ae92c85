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
from chalicelib.identity.access import Access


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
    """One route. ``operation_id`` is the view function's name in ``app.py``."""

    method: str
    path: str
    operation_id: str
    summary: str
    access: Access
    answers: dict[int, Answer]
    parameters: tuple[Parameter, ...] = ()
    body: str | None = None  # the request body's component name

    @property
    def all_answers(self) -> dict[int, Answer]:
        """Its own answers, those of any request, and those of its access level."""
        return {**self.answers, **COMMON, **ACCESS_ANSWERS[self.access]}


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
UNAUTHENTICATED = Answer(
    "No valid token: sign in and send Authorization: Bearer <ID token>",
    "Error",
    {"WWW-Authenticate": {"type": "string", "pattern": "^Bearer "}},
)
FORBIDDEN_TO_OTHERS = Answer(
    "Signed in, but not allowed: acting for another email is for the event's organiser",
    "Error",
)
ORGANISERS_ONLY = Answer(
    "Signed in, but not in the organisers group, or not this event's organiser", "Error"
)

#: What any operation may answer, whatever it does.
COMMON: dict[int, Answer] = {400: BAD_INPUT, 413: TOO_LARGE, 415: NOT_JSON, 503: BUSY}
#: What each access level adds.
ACCESS_ANSWERS: dict[Access, dict[int, Answer]] = {
    Access.PUBLIC: {},
    Access.SIGNED_IN: {401: UNAUTHENTICATED, 403: FORBIDDEN_TO_OTHERS},
    Access.ORGANISER: {401: UNAUTHENTICATED, 403: ORGANISERS_ONLY},
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/initialize",
        "initialize",
        "Create an event (organisers); the caller becomes its organiser",
        Access.ORGANISER,
        {
            201: Answer("Created", "Event"),
            429: Answer(
                "The organiser created the most events allowed today (UTC)",
                "Error",
                RETRY_AFTER,
            ),
        },
        body="NewEvent",
    ),
    Operation(
        "post",
        "/book",
        "book",
        "Book a ticket, or join the waiting list when sold out",
        Access.SIGNED_IN,
        {
            201: Answer("Booked", "Booking"),
            202: Answer("Sold out: on the waiting list", "Booking"),
            404: UNKNOWN_EVENT,
            409: Answer(
                "This person already holds a ticket or a waiting place, or the waiting list"
                " is full",
                "Error",
            ),
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
        Access.SIGNED_IN,
        {
            200: Answer("Cancelled", "Cancellation"),
            404: Answer("Unknown event, or no place held", "Error"),
        },
        body="PlaceRequest",
    ),
    Operation(
        "get",
        "/status/{eventId}",
        "status",
        "An event's counters (the original API's name for GET /events/{eventId})",
        Access.PUBLIC,
        {200: Answer("The event", "Event"), 404: UNKNOWN_EVENT},
        parameters=(EVENT_ID_IN_PATH,),
    ),
    Operation(
        "get",
        "/events",
        "list_events",
        "Events, newest first",
        Access.PUBLIC,
        {200: Answer("A page of events", "EventPage")},
        parameters=(
            Parameter("limit", "query", schemas.PAGE_SIZE, "events per page"),
            Parameter("cursor", "query", schemas.CURSOR),
        ),
    ),
    Operation(
        "get",
        "/events/{eventId}",
        "get_event",
        "One event",
        Access.PUBLIC,
        {200: Answer("The event", "Event"), 404: UNKNOWN_EVENT},
        parameters=(EVENT_ID_IN_PATH,),
    ),
    Operation(
        "get",
        "/events/{eventId}/standing",
        "standing",
        "My standing: booked, waiting (with position) or neither",
        Access.SIGNED_IN,
        {200: Answer("The caller's standing", "Standing"), 404: UNKNOWN_EVENT},
        parameters=(EVENT_ID_IN_PATH,),
    ),
    Operation(
        "post",
        "/events/{eventId}/lookup",
        "lookup",
        "Anyone's standing in the caller's own event (organisers: the email stays out of URLs)",
        Access.ORGANISER,
        {
            200: Answer("The person's standing", "Standing"),
            404: UNKNOWN_EVENT,
        },
        parameters=(EVENT_ID_IN_PATH,),
        body="LookupRequest",
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi",
        "This description",
        Access.PUBLIC,
        {200: Answer("The OpenAPI document", "OpenApiDocument")},
    ),
)

#: Operations by their id, which is the view function's name.
BY_ID: dict[str, Operation] = {operation.operation_id: operation for operation in OPERATIONS}
