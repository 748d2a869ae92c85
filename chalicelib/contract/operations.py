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
    #: Headers sent only sometimes (the description says when).
    optional_headers: dict[str, Schema] = field(default_factory=dict)
    #: With ``Accept: text/csv``, the same entries as CSV: the component of one row
    #: (its properties, in order, are the columns).
    csv_rows: str | None = None


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

WEBHOOK_ID_IN_PATH = Parameter(
    "webhookId", "path", schemas.WEBHOOK_ID, "the endpoint's id", required=True
)
UNKNOWN_WEBHOOK = Answer("No such endpoint among the caller's own", "Error")

LIMIT = Parameter("limit", "query", schemas.PAGE_SIZE, "entries per page")
LIST_CURSOR = Parameter("cursor", "query", schemas.LIST_CURSOR)
NEXT_CURSOR = {
    schemas.NEXT_CURSOR_HEADER: {
        **schemas.LIST_CURSOR,
        "description": "sent when there is a next page (the same value as nextCursor):"
        " pass it back as cursor. The way a CSV answer tells where to go on",
    }
}

#: What any operation may answer, whatever it does.
COMMON: dict[int, Answer] = {400: BAD_INPUT, 413: TOO_LARGE, 415: NOT_JSON, 503: BUSY}
#: What each access level adds.
ACCESS_ANSWERS: dict[Access, dict[int, Answer]] = {
    Access.PUBLIC: {},
    Access.SIGNED_IN: {401: UNAUTHENTICATED, 403: FORBIDDEN_TO_OTHERS},
    Access.ORGANISER: {401: UNAUTHENTICATED, 403: ORGANISERS_ONLY},
}

EVENT_CANCELLED = Answer("The event was cancelled; it no longer changes", "Error")
BAD_WINDOW = Answer(
    "The sales window would close before it opens (with the stored bound, for a change)",
    "Error",
)


def _organiser_control(path: str, operation_id: str, summary: str) -> Operation:
    """``POST /events/{eventId}/<control>``: no body, the event as it is after the control."""
    return Operation(
        "post",
        path,
        operation_id,
        summary,
        Access.ORGANISER,
        {
            200: Answer("The event after the change", "Event"),
            404: UNKNOWN_EVENT,
            409: EVENT_CANCELLED,
        },
        parameters=(EVENT_ID_IN_PATH,),
    )


def _event_list(
    name: str, operation_id: str, summary: str, description: str, page: str, row: str
) -> Operation:
    """``GET /events/{eventId}/<name>``: a page of an event's list for its organiser, as
    JSON (the ``page`` component) or, on request, CSV (one line per ``row``)."""
    return Operation(
        "get",
        f"/events/{{eventId}}/{name}",
        operation_id,
        summary,
        Access.ORGANISER,
        {
            200: Answer(description, page, optional_headers=NEXT_CURSOR, csv_rows=row),
            404: UNKNOWN_EVENT,
        },
        parameters=(EVENT_ID_IN_PATH, LIMIT, LIST_CURSOR),
    )


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
            422: BAD_WINDOW,
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
                "This person already holds a ticket or a waiting place, the waiting list"
                " is full, the event is not on sale (not yet open, or closed; the message"
                " gives the opening time), or it was cancelled",
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
            409: EVENT_CANCELLED,
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
        "patch",
        "/events/{eventId}",
        "change_event",
        "Change an event (its organiser): name, capacity, waiting-list cap, sales window."
        " Raising capacity promotes the waiting list first, in arrival order",
        Access.ORGANISER,
        {
            200: Answer("The event after the change", "Event"),
            202: Answer(
                "A raise promoted about 2,000 people and more wait for the new tickets:"
                " send the same change again to continue (totalTickets shows how far it got)",
                "Event",
            ),
            404: UNKNOWN_EVENT,
            409: Answer(
                "The event was cancelled, capacity would drop below the tickets booked, or"
                " the waiting-list cap below the people waiting; or a concurrent change"
                " overtook a raise of several steps after its first ones were applied. The"
                " message says which, and how far such a raise got",
                "Error",
            ),
            422: BAD_WINDOW,
        },
        parameters=(EVENT_ID_IN_PATH,),
        body="EventChange",
    ),
    _organiser_control(
        "/events/{eventId}/close",
        "close_sales",
        "Close sales now (its organiser): bookings answer 409, cancellations still promote",
    ),
    _organiser_control(
        "/events/{eventId}/reopen",
        "reopen_sales",
        "Sell again now (its organiser): lifts a close, and a window bound that keeps sales shut",
    ),
    Operation(
        "post",
        "/events/{eventId}/cancel",
        "cancel_event",
        "Cancel the event (its organiser): every place is released; the records stay",
        Access.ORGANISER,
        {
            200: Answer("Cancelled, and every place released", "Event"),
            202: Answer(
                "Cancelled; places are still being released (see release): call again to continue",
                "Event",
            ),
            404: UNKNOWN_EVENT,
        },
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
    _event_list(
        "attendees",
        "attendees",
        "The event's ticket holders in booking order, a page at a time (its organiser only)."
        " Accept: text/csv for CSV",
        "A page of ticket holders, oldest booking first. Read from an index that may lag a"
        " moment behind bookings; every entry is checked against its place",
        "AttendeePage",
        "Attendee",
    ),
    _event_list(
        "waiting-list",
        "waiting_list",
        "The event's waiting list in arrival order with positions, a page at a time (its"
        " organiser only). Accept: text/csv for CSV",
        "A page of the waiting list as it stood at one moment while the page was read: the"
        " people then waiting after the cursor, each with their exact position at that moment"
        " (1 = next in line). Anyone promoted meanwhile is left off, so a page may be shorter"
        " than limit; only nextCursor null ends the list",
        "WaitingPage",
        "WaitingEntry",
    ),
    Operation(
        "get",
        "/organisers/me/events",
        "my_events",
        "The caller's own events, newest first (organisers)",
        Access.ORGANISER,
        {200: Answer("A page of the caller's events", "EventPage")},
        parameters=(LIMIT, Parameter("cursor", "query", schemas.CURSOR)),
    ),
    Operation(
        "post",
        "/webhooks",
        "register_webhook",
        "Register a webhook endpoint (organisers) for one of the caller's events, or for all"
        " of them; the answer is the only one that shows its signing secret",
        Access.ORGANISER,
        {
            201: Answer(
                "Registered: deliveries start with the next domain event", "RegisteredWebhook"
            ),
            404: UNKNOWN_EVENT,
            409: Answer("The caller has as many webhook endpoints as allowed", "Error"),
            422: Answer(
                "The URL may not be used: http (outside the local stage), or a private,"
                " loopback, link-local or reserved address",
                "Error",
            ),
        },
        body="NewWebhook",
    ),
    Operation(
        "get",
        "/webhooks",
        "list_webhooks",
        "The caller's webhook endpoints (organisers), without their secrets",
        Access.ORGANISER,
        {200: Answer("The caller's endpoints", "WebhookList")},
    ),
    Operation(
        "delete",
        "/webhooks/{webhookId}",
        "delete_webhook",
        "Delete one of the caller's webhook endpoints: nothing more is delivered to it",
        Access.ORGANISER,
        {200: Answer("Deleted", "DeletedWebhook"), 404: UNKNOWN_WEBHOOK},
        parameters=(WEBHOOK_ID_IN_PATH,),
    ),
    Operation(
        "post",
        "/webhooks/{webhookId}/enable",
        "enable_webhook",
        "Enable one of the caller's webhook endpoints again (after it was disabled for"
        " failing); its failure record starts afresh",
        Access.ORGANISER,
        {200: Answer("The endpoint, enabled", "Webhook"), 404: UNKNOWN_WEBHOOK},
        parameters=(WEBHOOK_ID_IN_PATH,),
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
