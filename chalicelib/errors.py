"""Domain errors: what went wrong in the booking rules, independent of HTTP.

The HTTP layer (``chalicelib.http``) maps each of these to one status code; the
domain and storage modules never import Chalice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from chalicelib.models import Event, Place, Status


class BookingError(Exception):
    """Base class for every error the service reports to a caller on purpose."""


class InvalidRequest(BookingError):
    """The request itself is malformed: a field is missing, mistyped or out of range."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class BodyTooLarge(BookingError):
    """The request body is larger than the contract allows (HTTP 413)."""


class UnsupportedMediaType(BookingError):
    """The body is not JSON encoded as UTF-8 (HTTP 415)."""


class Unauthenticated(BookingError):
    """No token, or one that is not valid (HTTP 401 with ``WWW-Authenticate: Bearer``).

    ``invalid_token`` is False when no credentials were sent at all: RFC 6750 then
    asks for a bare challenge, without an error code.
    """

    def __init__(self, reason: str, invalid_token: bool = True) -> None:
        self.invalid_token = invalid_token
        super().__init__(reason)


class Forbidden(BookingError):
    """Signed in, but not allowed to do this (HTTP 403)."""


class WaitingListFull(BookingError):
    """The event is sold out and its waiting list has reached its cap (HTTP 409)."""

    def __init__(self, event_id: int, cap: int) -> None:
        self.event_id = event_id
        super().__init__(
            f"event {event_id} is sold out and its waiting list is full ({cap:,} people)"
        )


class DailyLimitReached(BookingError):
    """An organiser created the most events allowed in one day (HTTP 429)."""

    def __init__(self, cap: int, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"an organiser may create {cap} events a day; try again tomorrow (UTC)")


class EventCancelled(BookingError):
    """The organiser cancelled the event: its places no longer change (HTTP 409)."""

    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        super().__init__(
            f"event {event_id} was cancelled by its organiser; every place in it was released"
        )


class NotOnSale(BookingError):
    """A booking before the sales window opens (HTTP 409)."""

    def __init__(self, event_id: int, opens_at: str) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id} is not on sale yet: sales open at {opens_at}")


class SalesClosed(BookingError):
    """A booking after sales closed, by the window's end or by the organiser (HTTP 409)."""

    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        super().__init__(f"sales closed for event {event_id}; cancelling is still possible")


class InvalidWindow(BookingError):
    """A sales window that would close before it opens (HTTP 422): each bound is well
    formed, but together (or with the stored one) they describe no window."""

    def __init__(self, opens_at: str, closes_at: str) -> None:
        super().__init__(
            f"salesCloseAt: must be at least a millisecond later than salesOpenAt (times are"
            f" kept to the millisecond: the window would open at {opens_at} and close at"
            f" {closes_at})"
        )


class ChangeInterrupted(BookingError):
    """A change of several steps was refused after its first steps were applied (HTTP 409):
    a concurrent change or the event's cancellation overtook it. Every committed step
    kept every invariant; the message says how far it got and why it stopped."""

    def __init__(self, event_id: int, steps: int, total: int, reason: str) -> None:
        self.steps = steps
        #: The capacity this change's last applied step set.
        self.total = total
        super().__init__(
            f"event {event_id}: this change stopped after {steps} of its steps were applied"
            f" (its settings, and capacity raised to {total:,}), because {reason}"
        )


class CapacityBelowBooked(BookingError):
    """Capacity may not drop below the tickets already booked (HTTP 409)."""

    def __init__(self, event_id: int, booked: int) -> None:
        self.event_id = event_id
        self.booked = booked
        super().__init__(
            f"totalTickets: event {event_id} has {booked:,} tickets booked; capacity cannot"
            f" go below {booked:,}"
        )


class CapBelowWaiting(BookingError):
    """A waiting-list cap may not drop below the people already waiting (HTTP 409)."""

    def __init__(self, event_id: int, waiting: int) -> None:
        self.event_id = event_id
        super().__init__(
            f"waitingListCap: {waiting:,} people wait for event {event_id}; the cap cannot"
            f" go below {waiting:,}"
        )


class EventNotFound(BookingError):
    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id} does not exist")


class AlreadyHoldsPlace(BookingError):
    """The email already holds a ticket or a waiting place for the event (one place per person)."""

    def __init__(self, event_id: int, status: Status) -> None:
        self.event_id = event_id
        self.status = status
        what = "a ticket" if status == Status.BOOKED else "a place on the waiting list"
        super().__init__(f"this email already holds {what} for event {event_id}")


class NoPlaceHeld(BookingError):
    """A cancellation named an email that holds neither a ticket nor a waiting place."""

    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        super().__init__(f"this email holds no booking or waiting place for event {event_id}")


class ServiceBusy(BookingError):
    """DynamoDB kept refusing (conflicts, throttling, 5xx, timeouts) until retries ran out.

    Nothing is ever half-written: every write is a single conditional request or
    one transaction. Whether it was *wholly* written is unknown only if an attempt
    timed out or met a 5xx (``maybe_applied``): DynamoDB may have applied it.
    Either way the caller can safely retry after ``retry_after_seconds``.
    """

    def __init__(
        self, reason: str, retry_after_seconds: int = 1, maybe_applied: bool = False
    ) -> None:
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds
        self.maybe_applied = maybe_applied
        outcome = (
            "the request may have been applied; retrying it is safe"
            if maybe_applied
            else "nothing was changed"
        )
        super().__init__(f"the service is busy, retry shortly ({reason}; {outcome})")


class Role(StrEnum):
    """The part an item plays in a transaction, so a failure can say whose condition failed."""

    PERSON = "person"  # the place of the person the request acts for
    HEAD = "head"  # the waiting person a cancellation promotes
    EVENT = "event"  # the event item and its counters
    ORGANISER = "organiser"  # the organiser's count of events created today
    INDEX = "index"  # a node of the event's position index (never conditioned)
    RELEASED = "released"  # a place a cancelled event's sweep marks (never conditioned)
    LISTING = "listing"  # the organiser's listing of a new event (never conditioned)


@dataclass
class ConditionFailed(Exception):
    """A transaction was cancelled because conditions failed, carrying the items as they were.

    Like the idempotency layer of Powertools for AWS Lambda, the failure carries
    the old item (DynamoDB returns it with ``ReturnValuesOnConditionCheckFailure``),
    so the caller decides again without another read. ``failed`` names the roles
    whose condition failed; for those, ``old_event`` / ``old_places`` hold the
    item as it was, or nothing when it did not exist.
    """

    failed: frozenset[Role]
    old_event: Event | None = None
    old_places: Mapping[Role, Place] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"conditions failed: {sorted(self.failed)}")

    def failed_for(self, role: Role) -> bool:
        return role in self.failed

    def place(self, role: Role = Role.PERSON) -> Place | None:
        return self.old_places.get(role)


class WebhookNotFound(BookingError):
    """No such endpoint among the caller's own (HTTP 404): another organiser's endpoint
    reads as unknown, so no answer tells whether it exists."""

    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"webhook {webhook_id} does not exist")


class WebhookUrlRefused(BookingError):
    """A well-formed URL that webhooks may not reach (HTTP 422): private, loopback or
    link-local addresses, http, credentials (``chalicelib.webhooks.addresses``)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"url: {problem}")


class WebhookLimitReached(BookingError):
    """The organiser has as many endpoints as allowed (HTTP 409)."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"an organiser may register at most {cap} webhook endpoints")
