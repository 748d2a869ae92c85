"""The booking rules: create events, book, wait, cancel, promote, report standing.

Every decision is enforced by the conditions of the single transaction that
carries it out (see ``chalicelib.storage``), never by what was read before. A
read here only chooses *which* conditional write to try; if the world changed in
between, the condition fails, the transaction is cancelled whole, and the loop
decides again from the item values DynamoDB returned with the failure.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from chalicelib.clock import iso_from_ms, now_iso, now_ms, wait_key_now
from chalicelib.errors import (
    AlreadyHoldsPlace,
    ConditionFailed,
    DailyLimitReached,
    EventCancelled,
    EventNotFound,
    Forbidden,
    NoPlaceHeld,
    NotOnSale,
    Role,
    SalesClosed,
    ServiceBusy,
    WaitingListFull,
)
from chalicelib.hints import ContendedEvents, SoldOutHints
from chalicelib.identity.access import Caller, require_owner, speaks_for_self
from chalicelib.models import (
    BookingOutcome,
    CancellationOutcome,
    Event,
    Place,
    SalesState,
    Standing,
    Status,
)
from chalicelib.storage import TicketStore

#: How many times one request may lose a race and decide again before giving up
#: with 503. Each round is one transaction; losing means another request changed
#: the same event in between, so this bounds work under extreme contention.
MAX_DECISION_ROUNDS = 25

#: How many people from the front of the waiting list a cancellation reads at
#: once: the head to promote, and whether the canceller itself waits near the
#: front (then it leaves without first trying to cancel a ticket it lacks).
HEAD_WINDOW = 10

#: How many people promoted by count one transaction writes as tickets (with the
#: event item, within DynamoDB's 100 items a transaction).
SETTLE_BATCH = 98

#: Events one organiser may create per UTC day (an abuse limit; the environment may
#: change it for a stage).
DAILY_EVENT_CAP_ENV = "EVENTS_PER_ORGANISER_PER_DAY"
DEFAULT_DAILY_EVENT_CAP = 50
#: Waiting list length when the organiser sets none.
DEFAULT_WAITING_LIST_CAP = 10_000

#: How many times creating an event may find its new id taken before giving up.
#: Ids only clash when the id sequence lags behind the table (say, after a
#: restore); one clash moves the sequence past the newest event.
MAX_ID_CLASHES = 3


sold_out_hints = SoldOutHints()
contended_events = ContendedEvents()


def create_event(
    store: TicketStore,
    name: str,
    total_tickets: int,
    owner_id: str,
    waiting_list_cap: int = DEFAULT_WAITING_LIST_CAP,
    sales_window: tuple[int | None, int | None] = (None, None),
) -> Event:
    """Create an event owned by ``owner_id``, within the organiser's daily cap.

    An id already taken is skipped, never overwritten.
    """
    now = datetime.now(UTC)
    cap = int(os.environ.get(DAILY_EVENT_CAP_ENV) or DEFAULT_DAILY_EVENT_CAP)
    for _ in range(MAX_ID_CLASHES):
        event = Event(
            event_id=store.next_event_id(),
            name=name,
            total_tickets=total_tickets,
            available_tickets=total_tickets,
            booked_tickets=0,
            waiting_list_count=0,
            last_wait_key=0,
            created_at=now_iso(),
            owner_id=owner_id,
            waiting_list_cap=waiting_list_cap,
            sales_open_at=sales_window[0],
            sales_close_at=sales_window[1],
        )
        try:
            store.create_event(event, now.date().isoformat(), cap)
            return event
        except ConditionFailed as failure:
            if failure.failed_for(Role.ORGANISER):
                raise DailyLimitReached(cap, _seconds_to_midnight(now)) from None
        # The id was taken: the sequence lags behind the table. Move it past the
        # newest event; ADD commutes, so two creators doing this at once only skip ids.
        store.next_event_id(step=max(1, store.newest_event_id() - event.event_id))
    raise ServiceBusy("new event ids kept clashing with existing events")


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


def acting_for(store: TicketStore, caller: Caller, event_id: int, email: str | None) -> str:
    """Whom a request acts for: the caller, or (box office) anyone for the event's organiser.

    Naming another email costs one read of the event, to see who owns it; a
    request for oneself costs nothing extra.
    """
    if speaks_for_self(caller, email):
        return caller.email
    assert email is not None
    if not caller.is_organiser:
        raise Forbidden("you may act for your own email only (the one your token carries)")
    require_owner(caller, get_event(store, event_id).owner_id, event_id)
    return email


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
    # The event as last seen: from this instance's hint, then from each failed
    # condition (DynamoDB returns the item). None means "try to book".
    known = sold_out_hints.get(store.table_name, event_id)
    for _ in range(MAX_DECISION_ROUNDS):
        now = now_ms()
        try:
            if known is None or known.available_tickets > 0:
                store.book(event_id, email, request_key, now)
                return BookingOutcome(status=Status.BOOKED)
            wait_key = _next_wait_key(known)
            store.join_waitlist(event_id, email, wait_key, request_key, now)
            return _waitlisted_outcome(store, event_id, email, wait_key, replayed=False)
        except ConditionFailed as failure:
            _refuse_if_cancelled(event_id, failure)
            existing = failure.place(Role.PERSON)
            if existing is not None:
                if request_key and existing.request_key == request_key:
                    return _replay(store, existing)
                # A place stored as waiting may hold a ticket by count: say what it holds now.
                status = existing.status
                if status == Status.WAITLISTED:
                    status = get_standing(store, event_id, email).status
                if status == Status.RELEASED:
                    raise EventCancelled(event_id) from None
                if status != Status.NONE:
                    raise AlreadyHoldsPlace(event_id, status) from None
                known = failure.old_event  # gone since it refused this booking: try again
                continue
            known = failure.old_event
            if known is None:
                raise EventNotFound(event_id) from None
            _refuse_off_sale(known, now)
            if known.available_tickets == 0 and known.waiting_list_full:
                raise WaitingListFull(event_id, known.waiting_list_cap or 0) from None
            sold_out_hints.remember(store.table_name, known)
    raise ServiceBusy("booking kept losing races for the same event")


def holds_ticket_by_count(position: int) -> bool:
    """A place stored as waiting whose position (``Snapshot.position``, taken with the
    event's ``promotedCount``) is 0 or less was promoted by count: it holds a ticket,
    not yet settled (see ``cancel_booking``)."""
    return position <= 0


def _refuse_off_sale(event: Event, now: int) -> None:
    """Say why a booking at ``now`` failed if the event was not on sale then (the
    condition ``writes.on_sale`` refused it for the same reason)."""
    state = event.state(now)
    if state == SalesState.SALES_CLOSED:
        raise SalesClosed(event.event_id)
    if state == SalesState.NOT_ON_SALE_YET:
        assert event.sales_open_at is not None
        raise NotOnSale(event.event_id, iso_from_ms(event.sales_open_at))


def _refuse_if_cancelled(event_id: int, failure: ConditionFailed) -> None:
    if failure.old_event is not None and failure.old_event.cancelled:
        raise EventCancelled(event_id) from None


def cancel_booking(store: TicketStore, event_id: int, email: str) -> CancellationOutcome:
    """Give up a ticket (it goes to the head of the waiting list, else back to the pool)
    or a waiting place (everyone behind moves up).

    A ticket goes to the head in the cancellation's own transaction, in one of two
    ways. Uncontended, by name: read the front of the list, and promote the head
    (its place becomes a ticket). But concurrent cancellations of one event all
    race for the same head, and each success turns every other attempt into a
    loss. So a cancellation that lost, or that this instance knows to be in such
    a race (``contended_events``), passes the ticket *by count*: the event's
    ``promotedCount`` grows by one, which drops the head's position to 0, and no
    waiting place is touched, so there is nothing to race for but the event item.
    The head holds the ticket from that moment (standings read it as BOOKED);
    ``settle_promotions`` writes it as a ticket later.
    """
    passing = contended_events.recent(store.table_name, event_id)
    heads: list[Place] | None = None  # the front of the list, as far as it is known
    for decision_round in range(1, MAX_DECISION_ROUNDS + 1):
        if heads is None and not passing:
            heads = store.waitlist_heads(event_id, HEAD_WINDOW)
            own = next((head for head in heads if head.email == email), None)
            if own is not None:
                outcome = _leave_waitlist(store, event_id, own)
                if outcome is not None:
                    return outcome
                heads = None  # promoted meanwhile, or promotions to settle: decide again
                continue
        try:
            if passing:
                store.cancel_and_pass(event_id, email)
                return CancellationOutcome(Status.BOOKED, promoted_waiting_person=True)
            if not heads:
                store.cancel_and_release(event_id, email)
                return CancellationOutcome(Status.BOOKED, promoted_waiting_person=False)
            store.cancel_and_promote(event_id, email, heads[0])
            return CancellationOutcome(Status.BOOKED, promoted_waiting_person=True)
        except ConditionFailed as failure:
            _refuse_if_cancelled(event_id, failure)
            if failure.failed_for(Role.PERSON):
                outcome = _not_a_ticket(store, event_id, failure)
                if outcome is not None:
                    return outcome
                heads, passing = None, False  # the place changed: decide again
            elif passing:
                passing, heads = False, []  # nobody waits: the ticket goes back to the pool
            else:
                if heads:  # lost the head to a rival, or promotions by count are pending
                    contended_events.remember(store.table_name, event_id)
                passing = True  # (or someone joined before a release): pass it by count
        if decision_round > 2:
            store.back_off(decision_round)
    raise ServiceBusy("cancellation kept losing races for the same event")


def _not_a_ticket(
    store: TicketStore, event_id: int, failure: ConditionFailed
) -> CancellationOutcome | None:
    """The canceller holds no ticket (the failure returned their place): leave the list
    if they wait; None when the place changed and the cancellation must decide again."""
    place = failure.place(Role.PERSON)
    if place is None:
        if store.get_event(event_id) is None:
            raise EventNotFound(event_id) from None
        raise NoPlaceHeld(event_id) from None
    if place.status == Status.WAITLISTED:
        return _leave_waitlist(store, event_id, place)
    return None


def settle_promotions(store: TicketStore, event_id: int) -> int:
    """Write the people promoted by count as tickets; how many this call wrote.

    They are the first ``pendingPromotions`` entries of the waiting list. Each
    transaction writes up to ``SETTLE_BATCH`` of them, guarded by
    ``pending_at_least``, so two settlements at once write each person once (the
    loser's ``waits_with_key`` fails). Costs 1 GetItem, 1 Query and 1 transaction
    per batch: it grows with the promotions pending, never with the list.
    """
    settled = 0
    for attempt in range(1, MAX_DECISION_ROUNDS + 1):
        event = store.get_event(event_id)
        if event is None or event.cancelled or event.pending_promotions <= 0:
            return settled
        pending = store.waitlist_heads(event_id, min(event.pending_promotions, SETTLE_BATCH))
        if not pending:
            return settled
        try:
            store.settle_promotions(event_id, pending)
            settled += len(pending)
        except ConditionFailed:
            store.back_off(attempt)  # a rival settled them first
    return settled


def get_standing(store: TicketStore, event_id: int, email: str) -> Standing:
    """Whether ``email`` holds a ticket, waits (with its current position), or neither.

    A waiting place's status and position come from one snapshot (``store.snapshot``),
    so they describe the same moment even if a promotion races the read. The
    place is read with its event, so a place in a cancelled event reads RELEASED.
    """
    place, event = store.place_and_event(event_id, email)
    for _ in range(MAX_DECISION_ROUNDS):
        if event is None:
            raise EventNotFound(event_id)
        if place is None:
            return Standing(event_id, email, Status.NONE)
        if event.cancelled:
            return Standing(event_id, email, Status.RELEASED)
        if place.status == Status.BOOKED or place.wait_key is None:
            return Standing(event_id, email, Status.BOOKED)
        snapshot = store.snapshot(event_id, email, place.wait_key)
        if snapshot.place == place and snapshot.event is not None and not snapshot.event.cancelled:
            position = snapshot.position()
            if holds_ticket_by_count(position):
                return Standing(event_id, email, Status.BOOKED)
            return Standing(event_id, email, Status.WAITLISTED, position)
        # Promoted, left (and perhaps joined again), or cancelled with its event since the
        # first read: judge the new state (a new wait key needs the nodes on its own path).
        place, event = snapshot.place, snapshot.event
    raise ServiceBusy("the place kept changing while its standing was read")


def _leave_waitlist(store: TicketStore, event_id: int, place: Place) -> CancellationOutcome | None:
    """Leave the list; None when the place changed or promotions by count were
    pending (then settled first: the person may be one of them), to decide again."""
    assert place.wait_key is not None
    try:
        store.leave_waitlist(event_id, place.email, place.wait_key)
    except ConditionFailed as failure:
        _refuse_if_cancelled(event_id, failure)
        event = failure.old_event
        if not failure.failed_for(Role.PERSON) and event and event.pending_promotions:
            settle_promotions(store, event_id)
        return None
    return CancellationOutcome(Status.WAITLISTED, promoted_waiting_person=False)


def _next_wait_key(event: Event) -> int:
    """A FIFO key that sorts after every existing entry.

    Wall-clock milliseconds (``clock.wait_key_now``) keep keys meaningful across
    concurrent Lambda instances; ``last_wait_key + 1`` wins whenever a clock lags
    or two joins share a millisecond. The join's condition ``lastWaitKey < :k``
    makes the order of keys the order of commits.
    """
    return max(wait_key_now(), event.last_wait_key + 1)


def _waitlisted_outcome(
    store: TicketStore, event_id: int, email: str, wait_key: int, replayed: bool
) -> BookingOutcome:
    """The answer to a join: the place as it stands at one moment after the join.

    Promoted meanwhile, it reads BOOKED. Gone meanwhile (the same person cancelled
    in a concurrent request), no moment between the join and now can be told
    exactly, so the client is asked to look again instead of being told a guess.
    """
    snapshot = store.snapshot(event_id, email, wait_key)
    if snapshot.event is not None:
        # The event as it stood after this join: its lastWaitKey is this key or a later
        # one. The next join from this instance starts after it, so a rush whose keys
        # run ahead of the clock (more than one join a millisecond) does not make every
        # join of a stale instance lose its first attempt. Free: the snapshot read it.
        sold_out_hints.remember(store.table_name, snapshot.event)
    place = snapshot.place
    if place is not None and place.wait_key == wait_key:
        position = snapshot.position()
        if holds_ticket_by_count(position):
            return BookingOutcome(status=Status.BOOKED, replayed=replayed)
        return BookingOutcome(Status.WAITLISTED, position, replayed=replayed)
    if place is not None and place.status == Status.BOOKED:
        return BookingOutcome(status=Status.BOOKED, replayed=replayed)
    raise ServiceBusy("the place changed before its position could be read")


def _replay(store: TicketStore, place: Place) -> BookingOutcome:
    if place.status == Status.BOOKED or place.wait_key is None:
        return BookingOutcome(status=Status.BOOKED, replayed=True)
    return _waitlisted_outcome(store, place.event_id, place.email, place.wait_key, replayed=True)
