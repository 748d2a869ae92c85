"""The organiser's controls: change an event, close and reopen its sales, cancel it.

As in ``chalicelib.booking``, every decision is enforced by the conditions of
the transaction that carries it out (``chalicelib.storage.writes``); a read
only chooses which transaction to try, and a failed condition sends the loop
back to decide again from the event DynamoDB returned with the failure.

Only the event's own organiser may call any of these (``owned_event``).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace

from chalicelib.booking import get_event
from chalicelib.clock import now_ms
from chalicelib.errors import (
    BookingError,
    CapacityBelowBooked,
    CapBelowWaiting,
    ChangeInterrupted,
    ConditionFailed,
    EventCancelled,
    ServiceBusy,
)
from chalicelib.identity.access import Caller, require_owner
from chalicelib.models import Event, EventChange, Place
from chalicelib.storage import TicketStore
from chalicelib.validation import check_window

#: How many waiting people one transaction promotes when capacity rises: 100
#: items a transaction, one of them the event.
PROMOTIONS_PER_TRANSACTION = 99
#: How many places one transaction of a cancelled event's sweep marks released.
RELEASES_PER_TRANSACTION = 99
#: How many sweep transactions one ``POST /events/{id}/cancel`` runs before it
#: answers (about 2,000 places); a larger event is finished by calling it again.
RELEASE_STEPS_PER_REQUEST = 20
#: How many promotion transactions one ``PATCH /events/{id}`` runs before it answers
#: (about 2,000 people); a larger raise answers 202, and the same PATCH again continues.
RAISE_STEPS_PER_REQUEST = 20
#: How many races in a row a change may lose (deciding again after each) before
#: giving up with 503.
MAX_CHANGE_ROUNDS = 25


def owned_event(store: TicketStore, caller: Caller, event_id: int) -> Event:
    """The event, if ``caller`` organises it (404 if it does not exist, else 403)."""
    event = get_event(store, event_id)
    require_owner(caller, event.owner_id, event_id, "change it")
    return event


def change_event(
    store: TicketStore, caller: Caller, event_id: int, change: EventChange
) -> tuple[Event, bool]:
    """Apply ``change``: settings, and capacity; the event after it, and whether it is complete.

    A raise hands the new tickets to the front of the waiting list first, in
    arrival order, in the same transactions that add them; only what is left
    goes to the pool. Up to ``PROMOTIONS_PER_TRANSACTION`` people a transaction,
    each transaction adding just the tickets it hands out, so every committed
    step keeps every invariant. A lower total keeps every booked ticket.
    The settings commit with the first step.

    At most ``RAISE_STEPS_PER_REQUEST`` steps run per call, so that a raise for a
    very long list answers within the API's time limit; the target is absolute,
    so calling again with the same change continues where this one stopped.
    """
    event = owned_event(store, caller, event_id)
    steps = losses = 0
    applied = event.total_tickets  # the total this change's last committed step set
    while True:
        try:
            target = _check_change(event, change)
        except BookingError as refusal:
            if steps == 0:
                raise
            # A rival's change (or the event's cancellation) overtook this one midway.
            raise ChangeInterrupted(event_id, steps, applied, str(refusal)) from None
        heads: list[Place] = []
        by_count = 0
        new_total = target
        if target > event.total_tickets and event.waiting_list_count > 0:
            wanted = min(target - event.total_tickets, PROMOTIONS_PER_TRANSACTION)
            if event.pending_promotions:
                # Promotions by count are still to settle, so the first places stored as
                # waiting are not the first who wait: promote by count too.
                by_count = min(wanted, event.waiting_list_count)
            else:
                heads = store.waitlist_heads(event_id, wanted)
            if len(heads) + by_count == wanted:  # the list may go on: hand out exactly these
                new_total = event.total_tickets + wanted
        try:
            store.change_event(event, change, new_total, heads, by_count)
        except ConditionFailed as failure:
            # Someone booked, joined, left, was promoted, or changed the event meanwhile.
            losses += 1
            if losses == MAX_CHANGE_ROUNDS:
                raise ServiceBusy(
                    f"the capacity change kept losing races with bookings of the event"
                    f" after {steps} of its steps were applied",
                    maybe_applied=steps > 0,
                ) from None
            event = failure.old_event or get_event(store, event_id)
            store.back_off(losses)
            continue
        steps, losses, applied = steps + 1, 0, new_total
        event = get_event(store, event_id)
        if new_total == target:
            return event, True
        if steps == RAISE_STEPS_PER_REQUEST:
            return event, False
        change = EventChange(total_tickets=target)  # the settings are in; more promotions


def _check_change(event: Event, change: EventChange) -> int:
    """The total ``change`` asks for, after refusing what ``event`` does not allow."""
    if event.cancelled:
        raise EventCancelled(event.event_id)
    check_window(*change.window(event))
    if change.waiting_list_cap is not None and change.waiting_list_cap < event.waiting_list_count:
        raise CapBelowWaiting(event.event_id, event.waiting_list_count)
    target = change.total_tickets if change.total_tickets is not None else event.total_tickets
    if target < event.booked_tickets:
        raise CapacityBelowBooked(event.event_id, event.booked_tickets)
    return target


def close_sales(store: TicketStore, caller: Caller, event_id: int) -> Event:
    """Stop bookings and joins now; cancellations still work, and still promote."""
    owned_event(store, caller, event_id)
    try:
        store.close_sales(event_id)
    except ConditionFailed:
        raise EventCancelled(event_id) from None  # its only condition: not cancelled
    return get_event(store, event_id)


def reopen_sales(store: TicketStore, caller: Caller, event_id: int) -> Event:
    """Sell again now: lift a close, and any bound of the window that keeps sales shut now."""
    event = owned_event(store, caller, event_id)
    for decision_round in range(1, MAX_CHANGE_ROUNDS + 1):
        if event.cancelled:
            raise EventCancelled(event_id)
        try:
            store.reopen_sales(event, now_ms())
            return get_event(store, event_id)
        except ConditionFailed as failure:
            event = failure.old_event or get_event(store, event_id)
            store.back_off(decision_round)
    raise ServiceBusy("reopening kept losing races with changes of the event")


def cancel_event(store: TicketStore, caller: Caller, event_id: int) -> Event:
    """Cancel the event and release its places, or continue releasing them.

    The cancellation itself is one write: from then on no place of the event
    changes. Marking each place released (for the audit, and for the people's
    notifications) runs in batches of ``RELEASES_PER_TRANSACTION``, at most
    ``RELEASE_STEPS_PER_REQUEST`` a call; the answer's ``release`` says how far
    it got, and calling again continues from the event's ``releaseCursor``.
    """
    event = owned_event(store, caller, event_id)
    if not event.cancelled:
        # Cancelled by another request meanwhile: then help release its places.
        with suppress(ConditionFailed):
            store.cancel_event(event_id)
    return release_places(store, event_id, RELEASE_STEPS_PER_REQUEST)


def release_places(store: TicketStore, event_id: int, steps: int) -> Event:
    """Run up to ``steps`` transactions of a cancelled event's release; the event after them.

    Two callers at once both read the same cursor; one commits, the other's
    ``release_cursor_as_read`` fails and it reads the event again.
    """
    event = get_event(store, event_id)
    for _ in range(steps):
        if event.released_count >= event.places_to_release:
            return event
        cursor = event.release_cursor or ""
        places = store.places_after(event_id, cursor, RELEASES_PER_TRANSACTION)
        if not places:
            return event
        try:
            moved_to = store.release_places(event_id, places, cursor)
            event = replace(
                event, released_count=event.released_count + len(places), release_cursor=moved_to
            )
        except ConditionFailed as failure:
            event = failure.old_event or get_event(store, event_id)
    return event
