"""Plain data the domain works with; ``chalicelib.storage.items`` maps it to and from items."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from chalicelib.clock import iso_from_ms, now_ms


class Status(StrEnum):
    """Where a person stands in one event. A stored place is BOOKED or WAITLISTED; NONE
    only ever appears in a standing (no place held)."""

    BOOKED = "BOOKED"
    WAITLISTED = "WAITLISTED"
    NONE = "NONE"
    #: Only in a standing: the person held a place in an event its organiser cancelled.
    RELEASED = "RELEASED"


class SalesState(StrEnum):
    """Whether an event sells now, as its status reports it (``Event.state``)."""

    ON_SALE = "ON_SALE"
    NOT_ON_SALE_YET = "NOT_ON_SALE_YET"
    SALES_CLOSED = "SALES_CLOSED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Event:
    event_id: int
    name: str
    total_tickets: int
    available_tickets: int
    booked_tickets: int
    waiting_list_count: int
    #: Ordering key of the newest waiting-list entry (0 when none ever joined).
    #: New entries must sort after it, which makes the list strictly FIFO.
    last_wait_key: int
    created_at: str
    #: The organiser who created it (the token's ``sub``): its box office.
    owner_id: str | None = None
    #: At most this many people may wait (None: no cap, events made before caps).
    waiting_list_cap: int | None = None
    #: How many waiting people were ever promoted: always the front of the list, so
    #: a waiting person's position is the entries ahead in the position index
    #: minus this (see ``chalicelib.storage.ranks``).
    promoted_count: int = 0
    #: The sales window (Unix ms; None: no bound). Bookings succeed from
    #: ``sales_open_at`` (inclusive) until ``sales_close_at`` (exclusive).
    sales_open_at: int | None = None
    sales_close_at: int | None = None
    #: The organiser closed sales now (``POST /events/{id}/close``), whatever the window.
    sales_closed: bool = False
    #: When the organiser cancelled the event; from then on no place changes.
    cancelled_at: str | None = None
    #: Places marked released since the cancellation (the sweep's progress), and the
    #: sort key of the last one: where the sweep continues.
    released_count: int = 0
    release_cursor: str | None = None
    #: Bumped by every change of the organiser's settings (name, cap, window,
    #: close, reopen), so that a change validated against one version of them
    #: commits only if they are still that version.
    settings_version: int = 0
    #: How many people ever left the waiting list (not by promotion). With
    #: ``promoted_count`` and ``last_wait_key`` it tells a reader whether the list
    #: changed between two reads (``chalicelib.organiser_lists.waiting_list``).
    left_count: int = 0
    #: The wait key of the person promoted last (0: nobody yet). Promotions take the
    #: front, so every key up to it is gone from the list (the audit checks it against
    #: the position index). Promotions by count move it when they are settled.
    last_promoted_key: int = 0
    #: People promoted by count whose places are still stored as waiting: always
    #: the first this many entries of the waiting list. A cancellation that lost the
    #: race for the head passes its ticket this way (``promoted_count`` + 1, the head
    #: not touched), and ``booking.settle_promotions`` later writes them as tickets.
    #: Counted in ``booked_tickets``, not in ``waiting_list_count``.
    pending_promotions: int = 0

    @property
    def waiting_list_full(self) -> bool:
        cap = self.waiting_list_cap
        return cap is not None and self.waiting_list_count >= cap

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def places_to_release(self) -> int:
        """Places held when the event was cancelled (the counters freeze then)."""
        return self.booked_tickets + self.waiting_list_count

    def state(self, now: int) -> SalesState:
        """Whether the event sells at ``now`` (Unix ms); the booking conditions decide
        the same from the same fields (``conditions.on_sale``)."""
        if self.cancelled:
            return SalesState.CANCELLED
        if self.sales_closed or (self.sales_close_at is not None and now >= self.sales_close_at):
            return SalesState.SALES_CLOSED
        if self.sales_open_at is not None and now < self.sales_open_at:
            return SalesState.NOT_ON_SALE_YET
        return SalesState.ON_SALE

    def to_json(self, now: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventId": self.event_id,
            "name": self.name,
            "totalTickets": self.total_tickets,
            "availableTickets": self.available_tickets,
            "bookedTickets": self.booked_tickets,
            "waitingListCount": self.waiting_list_count,
            **({"waitingListCap": self.waiting_list_cap} if self.waiting_list_cap else {}),
            "createdAt": self.created_at,
            "state": self.state(now_ms() if now is None else now),
        }
        if self.sales_open_at is not None:
            body["salesOpenAt"] = iso_from_ms(self.sales_open_at)
        if self.sales_close_at is not None:
            body["salesCloseAt"] = iso_from_ms(self.sales_close_at)
        if self.cancelled_at is not None:
            body["cancelledAt"] = self.cancelled_at
            body["release"] = {
                "placesReleased": self.released_count,
                "placesToRelease": self.places_to_release,
                "complete": self.released_count >= self.places_to_release,
            }
        return body


@dataclass(frozen=True)
class EventChange:
    """What ``PATCH /events/{id}`` asks to change; None leaves a field as it is.

    A sales window bound is set with ``sales_open_at`` / ``sales_close_at`` (Unix
    ms) or removed with the matching ``clear_*`` flag.
    """

    name: str | None = None
    total_tickets: int | None = None
    waiting_list_cap: int | None = None
    sales_open_at: int | None = None
    sales_close_at: int | None = None
    clear_sales_open_at: bool = False
    clear_sales_close_at: bool = False

    @property
    def changes_settings(self) -> bool:
        """Anything but the capacity: what ``settingsVersion`` versions."""
        return (
            self.name is not None
            or self.waiting_list_cap is not None
            or self.sales_open_at is not None
            or self.sales_close_at is not None
            or self.clear_sales_open_at
            or self.clear_sales_close_at
        )

    def window(self, event: Event) -> tuple[int | None, int | None]:
        """The sales window after this change of ``event``'s."""
        return (
            _bound(self.sales_open_at, self.clear_sales_open_at, event.sales_open_at),
            _bound(self.sales_close_at, self.clear_sales_close_at, event.sales_close_at),
        )


def _bound(new: int | None, clear: bool, old: int | None) -> int | None:
    if clear:
        return None
    return new if new is not None else old


@dataclass(frozen=True)
class Place:
    """One person's place in one event: a ticket (BOOKED) or a waiting-list entry.

    There is at most one per (event, email), which is what stops a person from
    holding two places.
    """

    event_id: int
    email: str
    status: Status
    #: Set only while WAITLISTED: the FIFO ordering key.
    wait_key: int | None = None
    request_key: str | None = None
    #: Set when a cancellation promoted this person: the key they waited with,
    #: kept so an audit can prove promotions followed the list's order.
    promoted_from_wait_key: int | None = None
    #: Set when the event's cancellation reached this place (see ``Event.cancelled_at``).
    released_at: str | None = None
    #: Set only while BOOKED: the ticket's place in booking order
    #: (``chalicelib.clock.booking_key_now``), its key in the attendee list.
    booking_key: int | None = None
    #: When the place was taken (ISO 8601, UTC), and when it became a ticket.
    joined_at: str | None = None
    booked_at: str | None = None


@dataclass(frozen=True)
class BookingOutcome:
    status: Status  # BOOKED or WAITLISTED
    position: int | None = None
    replayed: bool = False


@dataclass(frozen=True)
class CancellationOutcome:
    previous_status: Status  # BOOKED or WAITLISTED
    promoted_waiting_person: bool
    #: What the answer to a cancellation says the place is now.
    status: Literal["CANCELLED"] = "CANCELLED"


@dataclass(frozen=True)
class Standing:
    event_id: int
    email: str
    status: Status
    position: int | None = None


@dataclass(frozen=True)
class Attendee:
    """One ticket holder, as the organiser's attendee list shows them."""

    email: str
    booked_at: str
    #: True when the ticket came from the waiting list (a cancellation promoted them).
    promoted: bool
    #: The organiser cancelled the event: the ticket was released (the record stays).
    released: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "userEmail": self.email,
            "status": (Status.RELEASED if self.released else Status.BOOKED).value,
            "bookedAt": self.booked_at,
            "promotedFromWaitingList": self.promoted,
        }


@dataclass(frozen=True)
class WaitingEntry:
    """One person on the waiting list, with their position (1 = next in line); in a
    cancelled event, released, with no position."""

    email: str
    joined_at: str
    position: int | None

    def to_json(self) -> dict[str, Any]:
        status = Status.WAITLISTED if self.position is not None else Status.RELEASED
        return {
            "position": self.position,
            "userEmail": self.email,
            "status": status.value,
            "joinedAt": self.joined_at,
        }


Entry = TypeVar("Entry")


@dataclass(frozen=True)
class Page(Generic[Entry]):
    """A page of a list, and where the next one starts (None: this is the last)."""

    entries: list[Entry]
    next_cursor: int | None


class EndpointStatus(StrEnum):
    """Whether an organiser's webhook endpoint receives deliveries."""

    ENABLED = "ENABLED"
    #: Disabled after failing too long (``chalicelib.webhooks.delivery``); the organiser
    #: re-enables it with ``POST /webhooks/{id}/enable``.
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class WebhookEndpoint:
    """An organiser's HTTPS endpoint for one of their events (``event_id``) or all of them.

    ``secret`` signs deliveries: stored, shown once at registration, never in
    ``to_json`` or a log (``repr`` leaves it out).
    """

    owner_id: str
    webhook_id: str
    url: str
    event_id: int | None
    secret: str = field(repr=False)
    created_at: str
    status: EndpointStatus = EndpointStatus.ENABLED
    #: Failed attempts since the last success, and when the first of them was (Unix ms).
    consecutive_failures: int = 0
    failing_since_ms: int | None = None
    last_failure_ms: int | None = None
    disabled_at: str | None = None

    def receives(self, event_id: int) -> bool:
        """Whether a domain event of ``event_id`` goes to this endpoint."""
        return self.status == EndpointStatus.ENABLED and self.event_id in (None, event_id)

    def to_json(self) -> dict[str, Any]:
        """The endpoint as the API shows it: never the secret."""
        return {
            "webhookId": self.webhook_id,
            "url": self.url,
            "eventId": self.event_id,
            "status": self.status.value,
            "createdAt": self.created_at,
            "consecutiveFailures": self.consecutive_failures,
            "failingSince": _iso_or_none(self.failing_since_ms),
            "lastFailureAt": _iso_or_none(self.last_failure_ms),
            "disabledAt": self.disabled_at,
        }


def _iso_or_none(ms: int | None) -> str | None:
    return iso_from_ms(ms) if ms is not None else None
