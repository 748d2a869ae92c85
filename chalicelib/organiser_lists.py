"""Organiser controls: an event's attendee list and waiting list, and an organiser's own events.

The two lists are for the event's own organiser only (``owned_event``: 404 for
an unknown event, as every route answers, then 403 for anyone else). Both are
read a page at a time, and each page costs a fixed number of requests however
long the list (docs/data-model.md gives the figures). A cursor is a *position*
in the list the path names (a booking key, a wait key), never an item's key: the
partition read always comes from the path, so no cursor reaches another event.

**Attendee list** (``attendees``): ticket holders in booking order, the order in
which they took their ticket (booked, or promoted from the waiting list), from
the ``EventsByNewest`` index's ``ATTENDEES#<id>`` entries. A GSI is eventually
consistent, so every entry of a page is checked against its place, read
strongly consistently: a ticket cancelled, or cancelled and taken again, is
never listed under its old key; a ticket taken in the last moment (typically
well under a second) may be missing until the index catches up. Booking keys
are the millisecond the ticket was taken, by the clock of the Lambda instance
that wrote it (instances agree to within milliseconds).

**Waiting list** (``waiting_list``): see its docstring for the guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.booking import get_event
from chalicelib.errors import EventNotFound, ServiceBusy
from chalicelib.identity.access import Caller, require_owner
from chalicelib.models import Attendee, Event, Page, Status, WaitingEntry
from chalicelib.storage import TicketStore

#: What reads a page of an event's list: (store, caller, event id, limit, cursor).
ListReader = Callable[[TicketStore, Caller, int, int, int | None], Page[Any]]

#: How many times one waiting-list page may be read again because someone left the list
#: while it was read (each read is three requests) before the answer is 503.
MAX_READ_ROUNDS = 5


def owned_event(store: TicketStore, caller: Caller, event_id: int, to: str) -> Event:
    """The event, if ``caller`` is its organiser: 404 if unknown, 403 (saying ``to`` what)
    otherwise. Events are public (``GET /events/{id}``), so the 404 tells nothing new."""
    event = get_event(store, event_id)
    require_owner(caller, event.owner_id, event_id, to)
    return event


def attendees(
    store: TicketStore, caller: Caller, event_id: int, limit: int, after: int | None
) -> Page[Attendee]:
    """A page of the event's ticket holders in booking order, after booking key ``after``.

    Requests: the event (authorisation), one ``Query`` of the index, one
    ``BatchGetItem`` of the page's places. Entries the index still shows but
    whose place no longer holds that ticket are left out, so a page may be
    shorter than ``limit``; only a null cursor ends the list.
    """
    event = owned_event(store, caller, event_id, "see its attendees")
    found = store.attendee_keys(event_id, after, limit + 1)
    more = len(found) > limit
    page = _without_split_tie(found, limit)
    places = store.places(event_id, [email for email, _ in page]) if page else {}
    listed: list[Attendee] = []
    for email, key in page:
        place = places.get(email)
        if place is None or place.status != Status.BOOKED or place.booking_key != key:
            continue  # the index lags behind the place: that ticket is gone, or re-taken
        taken_at = place.booked_at or place.joined_at or ""
        promoted = place.promoted_from_wait_key is not None
        listed.append(Attendee(email, taken_at, promoted, released=event.cancelled))
    return Page(listed, page[-1][1] if more and page else None)


def _without_split_tie(found: list[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """The first ``limit`` entries, ending before a booking key that the next page shares.

    Keys of one event collide with a chance of 10^-12 per pair taken in the same
    millisecond; the next page starts after the last key of this one, so a key
    shared across the boundary would skip an entry. Unless the whole page is
    that one key, the shared key is left for the next page.
    """
    page = found[:limit]
    if len(found) <= limit:
        return page
    boundary = found[limit][1]
    trimmed = [entry for entry in page if entry[1] != boundary]
    return trimmed or page


def waiting_list(
    store: TicketStore, caller: Caller, event_id: int, limit: int, after: int | None
) -> Page[WaitingEntry]:
    """A page of the waiting list in arrival order, after wait key ``after``, with positions.

    **The guarantee.** A page describes one moment: the ``TransactGetItems`` that
    ends its read (the event and the position-index nodes, serialisable with
    every transaction). At that moment, the page's entries are exactly the
    people waiting with wait keys after ``after`` and up to the page's last key,
    in arrival order, and each position is exact: 1 + how many people were
    waiting ahead of them in the whole list at that moment. People promoted
    while the page was read are left off (so a page may be shorter than
    ``limit``); if anyone left the list while the page was read, the page is
    read again (``MAX_READ_ROUNDS`` times at most, then 503). Different pages
    describe different moments: while promotions go on, a page's first position
    need not follow the previous page's last; nobody appears on two pages, and
    everyone who waits throughout a walk through the pages appears once.

    **Why it holds** (``_read_waiting_page``): the page is a consistent ``Query``
    of ``WaitingList`` bounded above by the event's ``lastWaitKey`` as read
    before it, so no one can join inside the range read (a join's key is above
    ``lastWaitKey``, ``joins_after_last``); only leaves (counted by the event's
    ``leftCount``) and promotions (``promotedCount``) can take people out of it.
    If ``leftCount`` did not move, the set of keys the position index counts in
    the range did not change either, and promotions take the front of the whole
    list, so at the final moment the people still waiting on the page are its
    last ``min(n, counted(k_last) - promotedCount)`` entries, with consecutive
    positions ending at ``counted(k_last) - promotedCount``.

    Requests: the event (authorisation), then per read one ``Query``, one
    ``BatchGetItem`` (when the joined times are read) and one ``TransactGetItems``
    of at most 7 items.
    """
    known = owned_event(store, caller, event_id, "see its waiting list")
    start = after or 0
    for read_round in range(1, MAX_READ_ROUNDS + 1):
        page, known = _read_waiting_page(store, event_id, known, start, limit)
        if page is None:
            store.back_off(read_round)  # someone left meanwhile: read the page again
            continue
        if page.entries or page.next_cursor is None or read_round == MAX_READ_ROUNDS:
            return page
        start = page.next_cursor  # everyone read was promoted meanwhile: read on
    raise ServiceBusy("the waiting list kept changing while a page of it was read")


def _read_waiting_page(
    store: TicketStore, event_id: int, known: Event, after: int, limit: int
) -> tuple[Page[WaitingEntry] | None, Event]:
    """One read of a page (see ``waiting_list``), and the event as it stood at its end.

    None for the page when someone left the list since ``known`` was read: the
    people on the page can no longer be told apart from those who left.
    """
    read_to = max(after, known.last_wait_key)
    found = store.waiting_range(event_id, after, read_to, limit + 1) if after < read_to else []
    page, more = found[:limit], len(found) > limit
    places = store.places(event_id, [entry.email for entry in page]) if page else {}
    last_key = page[-1].wait_key if page else None
    moment = store.index_snapshot(event_id, last_key)
    now = moment.event
    if now is None:
        raise EventNotFound(event_id)
    if now.left_count != known.left_count:
        return None, now
    waiting = 0 if last_key is None else moment.counted_up_to(last_key) - now.promoted_count
    still_waiting = page[len(page) - min(len(page), max(0, waiting)) :]
    first_position = waiting - len(still_waiting) + 1
    entries: list[WaitingEntry] = []
    for offset, entry in enumerate(still_waiting):
        place = places.get(entry.email)
        if place is None or place.wait_key != entry.wait_key or place.joined_at is None:
            return None, now  # cannot happen while nobody leaves; read again rather than guess
        position = None if now.cancelled else first_position + offset
        entries.append(WaitingEntry(entry.email, place.joined_at, position))
    if more:
        assert last_key is not None
        next_cursor: int | None = last_key
    else:
        next_cursor = read_to if now.last_wait_key > read_to else None
    return Page(entries, next_cursor), now


def my_events(
    store: TicketStore, caller: Caller, limit: int, before_id: int | None
) -> tuple[list[Event], int | None]:
    """A page of the caller's own events, newest first, and the id to continue below.

    Requests: one ``Query`` of the organiser's partition, one ``BatchGetItem``.
    """
    events, more = store.owned_events(caller.subject, limit, before_id)
    return events, (events[-1].event_id if more and events else None)
