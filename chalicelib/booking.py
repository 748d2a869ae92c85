"""The booking rules: create events, book, wait, cancel, promote, report standing.

Every decision is enforced by the conditions of the single transaction that
carries it out (see ``chalicelib.storage``), never by what was read before. A
read here only chooses *which* conditional write to try; if the world changed in
between, the condition fails, the transaction is cancelled whole, and the loop
decides again from the item values DynamoDB returned with the failure.
"""

from __future__ import annotations

import time

from chalicelib.errors import AlreadyHoldsPlace, EventNotFound, NoPlaceHeld, ServiceBusy
from chalicelib.models import (
    BOOKED,
    NONE,
    WAITLISTED,
    BookingOutcome,
    CancellationOutcome,
    Event,
    Place,
    Standing,
)
from chalicelib.storage import ConditionFailed, TicketStore, now_iso

#: How many times one request may lose a race and decide again before giving up
#: with 503. Each round is one transaction; losing means another request changed
#: the same event in between, so this bounds work under extreme contention.
MAX_DECISION_ROUNDS = 25


def create_event(store: TicketStore, name: str, total_tickets: int) -> Event:
    event = Event(
        event_id=store.next_event_id(),
        name=name,
        total_tickets=total_tickets,
        available_tickets=total_tickets,
        booked_tickets=0,
        waiting_list_count=0,
        last_wait_key=0,
        created_at=now_iso(),
    )
    store.put_event(event)
    return event


def get_event(store: TicketStore, event_id: int) -> Event:
    event = store.get_event(event_id)
    if event is None:
        raise EventNotFound(event_id)
    return event


def list_events(
    store: TicketStore, limit: int, before_id: int | None
) -> tuple[list[Event], int | None]:
    """A page of events, newest first, and the id to continue below (None on the last page)."""
    events, has_more = store.list_events(limit, before_id)
    return events, (events[-1].event_id if has_more and events else None)


def book_ticket(
    store: TicketStore, event_id: int, email: str, request_key: str | None = None
) -> BookingOutcome:
    """Book a ticket, or join the waiting list when the event is sold out.

    ``request_key`` (the client's ``Idempotency-Key``) makes a client's retry
    safe: if the first attempt was applied but its answer was lost, the retry
    finds the place it created and reports it instead of a 409.
    """
    known: Event | None = None  # the event as the last failed condition saw it
    for _ in range(MAX_DECISION_ROUNDS):
        try:
            if known is None or known.available_tickets > 0:
                store.book(event_id, email, request_key)
                return BookingOutcome(status=BOOKED)
            wait_key = _next_wait_key(known)
            store.join_waitlist(event_id, email, wait_key, request_key)
            return _waitlisted_outcome(store, event_id, email, wait_key, replayed=False)
        except ConditionFailed as failure:
            existing = failure.place()
            if existing is not None:
                if request_key and existing.request_key == request_key:
                    return _replay(store, existing)
                raise AlreadyHoldsPlace(event_id, existing.status) from None
            known = failure.event()
            if known is None:
                raise EventNotFound(event_id) from None
    raise ServiceBusy("booking kept losing races for the same event")


def cancel_booking(store: TicketStore, event_id: int, email: str) -> CancellationOutcome:
    """Give up a ticket (it goes to the head of the waiting list, else back to the pool)
    or a waiting place (everyone behind moves up)."""
    for _ in range(MAX_DECISION_ROUNDS):
        head = store.waitlist_head(event_id)
        try:
            if head is not None and head.email == email:
                return _leave_waitlist(store, event_id, head)
            if head is None:
                store.cancel_and_release(event_id, email)
            else:
                store.cancel_and_promote(event_id, email, head)
            return CancellationOutcome(BOOKED, promoted_waiting_person=head is not None)
        except ConditionFailed as failure:
            if failure.failed("person"):
                place = failure.place()
                if place is None:
                    if store.get_event(event_id) is None:
                        raise EventNotFound(event_id) from None
                    raise NoPlaceHeld(event_id) from None
                if place.status == WAITLISTED:
                    try:
                        return _leave_waitlist(store, event_id, place)
                    except ConditionFailed:
                        continue  # promoted meanwhile: decide again
            # Otherwise the head moved or someone joined the list: decide again.
    raise ServiceBusy("cancellation kept losing races for the same event")


def get_standing(store: TicketStore, event_id: int, email: str) -> Standing:
    """Whether ``email`` holds a ticket, waits (with its current position), or neither."""
    place = store.get_place(event_id, email)
    if place is None:
        if store.get_event(event_id) is None:
            raise EventNotFound(event_id)
        return Standing(event_id, email, NONE)
    if place.status == BOOKED or place.wait_key is None:
        return Standing(event_id, email, BOOKED)
    return Standing(
        event_id, email, WAITLISTED, store.count_waiting_up_to(event_id, place.wait_key)
    )


def _leave_waitlist(store: TicketStore, event_id: int, place: Place) -> CancellationOutcome:
    assert place.wait_key is not None
    store.leave_waitlist(event_id, place.email, place.wait_key)
    return CancellationOutcome(WAITLISTED, promoted_waiting_person=False)


def _next_wait_key(event: Event) -> int:
    """A FIFO key that sorts after every existing entry.

    Wall-clock nanoseconds keep keys meaningful across concurrent Lambda
    instances; ``last_wait_key + 1`` wins whenever a clock lags. The join's
    condition ``lastWaitKey < :k`` makes the order of keys the order of commits.
    """
    return max(time.time_ns(), event.last_wait_key + 1)


def _waitlisted_outcome(
    store: TicketStore, event_id: int, email: str, wait_key: int, replayed: bool
) -> BookingOutcome:
    position = store.count_waiting_up_to(event_id, wait_key)
    if position == 0:  # promoted between our join and the count
        return BookingOutcome(status=BOOKED, replayed=replayed)
    return BookingOutcome(status=WAITLISTED, position=position, replayed=replayed)


def _replay(store: TicketStore, place: Place) -> BookingOutcome:
    if place.status == BOOKED or place.wait_key is None:
        return BookingOutcome(status=BOOKED, replayed=True)
    return _waitlisted_outcome(store, place.event_id, place.email, place.wait_key, replayed=True)
