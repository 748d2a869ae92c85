"""The transactions, built from named condition parts: pure functions, no I/O.

Each returns the ``TransactItems`` of one ``TransactWriteItems`` call, each item
tagged with its ``Role`` so that a cancellation can say whose condition failed.
Every transaction updates the event item (the counters) together with the
places it changes, so the counters and the places can never disagree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from chalicelib.errors import Role
from chalicelib.models import Event, EventChange, Place, Status
from chalicelib.storage import items, ranks, schema
from chalicelib.storage.conditions import (
    Condition,
    cap_holds_waiting,
    event_is_new,
    holds_ticket,
    joins_after_last,
    keeps_booked,
    no_pending_promotions,
    nobody_waiting,
    not_cancelled,
    not_closed_now,
    pending_at_least,
    place_is_new,
    release_cursor_as_read,
    sales_not_ended,
    sales_started,
    settings_as_read,
    sold_out,
    someone_waits,
    tickets_left,
    total_as_read,
    under_daily_cap,
    waiting_at_least,
    waiting_count_is,
    waitlist_has_room,
    waits_with_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

Operation = tuple[Role, "TransactWriteItemTypeDef"]

_PLACEHOLDER = re.compile(r"[:#][A-Za-z0-9_]+")
_ONE = Condition(values={":one": {"N": "1"}})
_ZERO = Condition(values={":zero": {"N": "0"}})
_MINUS_ONE = Condition(values={":minusOne": {"N": "-1"}})

#: The updates of the event item's counters.
TAKE_TICKET = "SET availableTickets = availableTickets - :one, bookedTickets = bookedTickets + :one"
RETURN_TICKET = (
    "SET availableTickets = availableTickets + :one, bookedTickets = bookedTickets - :one"
)
JOIN_QUEUE = "SET waitingCount = waitingCount + :one, lastWaitKey = :newWaitKey"
#: Leaving also counts the leave (events made before ``leftCount`` existed start at 0).
LEAVE_QUEUE = (
    "SET waitingCount = waitingCount - :one, leftCount = if_not_exists(leftCount, :zero) + :one"
)
#: A promotion takes the head: the list shrinks, the promoted prefix grows and ends at
#: the head's key.
PROMOTED_FROM_QUEUE = (
    "SET waitingCount = waitingCount - :one, promotedCount = promotedCount + :one,"
    " lastPromotedKey = :promotedWaitKey"
)
#: A promotion by count: the head is not touched, its position drops to 0 and it holds
#: the ticket from this moment; ``SETTLE`` later writes it as a ticket.
PASS_BY_COUNT = (
    "SET waitingCount = waitingCount - :one, promotedCount = promotedCount + :one,"
    " pendingPromotions = if_not_exists(pendingPromotions, :zero) + :one"
)
#: Settling: the first ``:settled`` people promoted by count are now stored as tickets.
SETTLE = "SET pendingPromotions = pendingPromotions - :settled, lastPromotedKey = :promotedWaitKey"
#: Promotion: the waiting place becomes a ticket, keeps the key it waited with, and
#: joins the attendee list (``EventsByNewest``) at the moment it took the ticket.
PROMOTE = (
    "SET #status = :booked, bookedAt = :now, promotedAt = :now,"
    " promotedFromWaitKey = :heldWaitKey, GSI1PK = :attendees, GSI1SK = :bookingKey"
    " REMOVE waitKey"
)


def create_event(table: str, event: Event, day: str, daily_cap: int) -> list[Operation]:
    """A new event, counted against its organiser's day: ``event_is_new``, ``under_daily_cap``;
    and listed among the organiser's events (no condition: the event's own decides)."""
    assert event.owner_id is not None, "every new event has an organiser"
    count = Condition("ADD eventsCreated :one") & _ONE
    return [
        (Role.EVENT, _put(table, items.event_to_item(event), event_is_new())),
        (
            Role.ORGANISER,
            _update(
                table,
                schema.organiser_day_key(event.owner_id, day),
                count,
                under_daily_cap(daily_cap),
            ),
        ),
        (Role.LISTING, _put(table, items.owned_event_to_item(event), Condition())),
    ]


def on_sale(now_ms: int) -> Condition:
    """The event sells at ``now_ms``: not cancelled, not closed by its organiser, and
    inside its sales window. ``Event.state`` tells the same from the same fields."""
    return not_cancelled() & not_closed_now() & sales_started(now_ms) & sales_not_ended(now_ms)


def book(
    table: str,
    event_id: int,
    email: str,
    request_key: str | None,
    now: str,
    now_ms: int,
    booking_key: int,
) -> list[Operation]:
    """Take one free ticket: guarded by ``place_is_new``, ``tickets_left`` and ``on_sale``.

    The place is put with its attendee-list keys, so the list costs the booking
    no request, only the index entry's write.
    """
    place = Place(event_id, email, Status.BOOKED, request_key=request_key, booking_key=booking_key)
    return [
        (Role.PERSON, _put(table, items.place_to_item(place, now), place_is_new())),
        (Role.EVENT, _update_event(table, event_id, TAKE_TICKET, tickets_left() & on_sale(now_ms))),
    ]


def join_waitlist(
    table: str,
    event_id: int,
    email: str,
    wait_key: int,
    request_key: str | None,
    now: str,
    now_ms: int,
) -> list[Operation]:
    """Queue at the back: ``place_is_new``; for the event ``sold_out``,
    ``joins_after_last``, ``waitlist_has_room`` and ``on_sale``."""
    place = Place(event_id, email, Status.WAITLISTED, wait_key=wait_key, request_key=request_key)
    condition = sold_out() & joins_after_last(wait_key) & waitlist_has_room() & on_sale(now_ms)
    return [
        (Role.PERSON, _put(table, items.place_to_item(place, now), place_is_new())),
        (Role.EVENT, _update_event(table, event_id, JOIN_QUEUE, condition)),
        *_count_in_index(table, event_id, wait_key, _ONE),
    ]


def cancel_and_release(table: str, event_id: int, email: str) -> list[Operation]:
    """Give a ticket back to the pool: ``holds_ticket``, ``nobody_waiting``, ``not_cancelled``."""
    condition = nobody_waiting() & not_cancelled()
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), holds_ticket())),
        (Role.EVENT, _update_event(table, event_id, RETURN_TICKET, condition)),
    ]


def cancel_and_promote(
    table: str, event_id: int, email: str, head: Place, now: str, booking_key: int
) -> list[Operation]:
    """Hand a ticket to ``head``: ``holds_ticket``, and ``waits_with_key`` for the head.

    The event's counters need no condition: ``booked`` and ``available`` do not
    move, and the head's condition proves someone waits. The event carries
    ``not_cancelled`` and ``no_pending_promotions``: with nobody promoted by count
    and unsettled, the first place stored as waiting (the head read, consistently)
    is the first person who waits. If a rival promoted the head first, the head's
    condition fails and the canceller passes its ticket by count instead.
    The cancelled ticket leaves the attendee list with its place; the head joins
    it with ``booking_key``, taken now.
    """
    head_key = _wait_key(head)
    condition = not_cancelled() & no_pending_promotions()
    update = Condition(PROMOTED_FROM_QUEUE, values={":promotedWaitKey": items.number(head_key)})
    event = _update(table, schema.event_key(event_id), update & _ONE, condition)
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), holds_ticket())),
        _promotion(table, event_id, head, now, booking_key),
        (Role.EVENT, event),
    ]


def cancel_and_pass(table: str, event_id: int, email: str) -> list[Operation]:
    """Hand a ticket to whoever is at the front, by count: ``holds_ticket``;
    ``someone_waits`` and ``not_cancelled`` on the event.

    No waiting place is touched, so concurrent cancellations of one event race
    for nothing but the event item: the head's position drops to 0 in this
    transaction (it holds the ticket from now on), and ``settle_promotions``
    writes it as a ticket later.
    """
    condition = someone_waits() & not_cancelled()
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), holds_ticket())),
        (Role.EVENT, _update_event(table, event_id, PASS_BY_COUNT, condition)),
    ]


def settle_promotions(
    table: str, event_id: int, pending: list[Place], now: str, booking_key: int
) -> list[Operation]:
    """Write the first people promoted by count as tickets: ``waits_with_key`` each,
    ``pending_at_least`` (they are among the first ``pendingPromotions`` entries:
    entries only join at the back, so the first read are still the first) and
    ``not_cancelled`` on the event. ``lastPromotedKey`` moves to the last of them."""
    values = {
        ":settled": items.number(len(pending)),
        ":promotedWaitKey": items.number(_wait_key(pending[-1])),
    }
    condition = pending_at_least(len(pending))
    update = Condition(SETTLE, values=values)
    event = _update(table, schema.event_key(event_id), update, condition & not_cancelled())
    return [
        *(
            _promotion(table, event_id, place, now, booking_key + n)
            for n, place in enumerate(pending)
        ),
        (Role.EVENT, event),
    ]


def _promotion(table: str, event_id: int, head: Place, now: str, booking_key: int) -> Operation:
    """``head``'s waiting place becomes a ticket, if it still waits with the key read, and
    joins the attendee list at ``booking_key``."""
    promote = Condition(
        PROMOTE,
        {"#status": "status"},
        {
            ":booked": {"S": Status.BOOKED},
            ":now": {"S": now},
            ":attendees": items.string(schema.attendee_partition(event_id)),
            ":bookingKey": items.number(booking_key),
        },
    )
    key = schema.person_key(event_id, head.email)
    return (Role.HEAD, _update(table, key, promote, waits_with_key(_wait_key(head))))


def leave_waitlist(table: str, event_id: int, email: str, wait_key: int) -> list[Operation]:
    """Leave the queue (everyone behind moves up): ``waits_with_key``; ``not_cancelled``
    and ``no_pending_promotions`` on the event.

    With nobody promoted by count and unsettled, a place stored as waiting really
    waits, so the event's counter needs no condition of its own: the person's
    proves the count is at least one.
    """
    condition = not_cancelled() & no_pending_promotions()
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), waits_with_key(wait_key))),
        (Role.EVENT, _update_event(table, event_id, LEAVE_QUEUE, condition)),
        *_count_in_index(table, event_id, wait_key, _MINUS_ONE),
    ]


# -- the organiser's controls -----------------------------------------------------------------


def change_event(
    table: str,
    read: Event,
    change: EventChange,
    new_total: int,
    heads: list[Place],
    now: str,
    booking_key: int,
    by_count: int = 0,
) -> list[Operation]:
    """One step of ``PATCH /events/{id}``: settings, and capacity from ``read``'s total to
    ``new_total``, handing new tickets to ``heads`` (the front of the list, in order) first,
    or to the first ``by_count`` people waiting, by count (``promotedCount`` and
    ``pendingPromotions``, as a cancellation that lost a race does: used while other
    promotions by count are still to settle, so no head can be named).

    Conditions: ``not_cancelled``; ``total_as_read`` and ``settings_as_read`` (the
    change was computed from ``read``); ``waits_with_key`` for each head;
    ``keeps_booked`` when lowering; ``waiting_count_is`` when tickets go to the
    pool (the heads were the whole list); ``cap_holds_waiting`` for a new cap.

    Each transaction adds only the tickets it hands out: a raise that promotes
    more people than one transaction carries is several calls, each a valid state.
    The promoted join the attendee list in their order in the queue, from ``booking_key``.
    """
    assert not (heads and by_count), "by name or by count, not both"
    promoted = len(heads) + by_count
    freed = new_total - read.total_tickets - promoted  # negative: withdrawn from the pool
    assert promoted == 0 or new_total > read.total_tickets, "only a raise promotes"
    values: dict[str, Any] = {":newTotal": items.number(new_total)}
    sets = ["totalTickets = :newTotal"]
    condition = not_cancelled() & total_as_read(read.total_tickets)
    condition &= settings_as_read(read.settings_version)
    if freed:
        sets.append("availableTickets = availableTickets + :freed")
        values[":freed"] = items.number(freed)
    if freed < 0:
        condition &= keeps_booked(-freed)
    if freed > 0:
        condition &= waiting_count_is(promoted)
    if promoted:
        sets += [
            "bookedTickets = bookedTickets + :promoted",
            "waitingCount = waitingCount - :promoted",
            "promotedCount = promotedCount + :promoted",
        ]
        values[":promoted"] = items.number(promoted)
    if heads:
        sets.append("lastPromotedKey = :promotedWaitKey")
        values[":promotedWaitKey"] = items.number(_wait_key(heads[-1]))
        condition &= no_pending_promotions()
    if by_count:
        sets.append("pendingPromotions = if_not_exists(pendingPromotions, :zero) + :promoted")
        values[":zero"] = items.number(0)
        condition &= waiting_at_least(by_count)
    removes: list[str] = []
    if change.changes_settings:
        _settings_update(change, read.settings_version + 1, sets, removes, values)
        if change.waiting_list_cap is not None:
            condition &= cap_holds_waiting(change.waiting_list_cap)
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    update = Condition(expression, {"#name": "name"} if change.name else {}, values)
    return [
        *(
            _promotion(table, read.event_id, head, now, booking_key + n)
            for n, head in enumerate(heads)
        ),
        (Role.EVENT, _update(table, schema.event_key(read.event_id), update, condition)),
    ]


def _wait_key(place: Place) -> int:
    assert place.wait_key is not None, "only a waiting place can be promoted"
    return place.wait_key


def _settings_update(
    change: EventChange, version: int, sets: list[str], removes: list[str], values: dict[str, Any]
) -> None:
    """The SET and REMOVE clauses of ``change``'s settings, and the new settings version."""
    if change.name is not None:
        sets.append("#name = :name")
        values[":name"] = items.string(change.name)
    if change.waiting_list_cap is not None:
        sets.append("waitingListCap = :cap")
        values[":cap"] = items.number(change.waiting_list_cap)
    for attribute, value, clear in (
        ("salesOpenAt", change.sales_open_at, change.clear_sales_open_at),
        ("salesCloseAt", change.sales_close_at, change.clear_sales_close_at),
    ):
        if value is not None:
            sets.append(f"{attribute} = :{attribute}")
            values[f":{attribute}"] = items.number(value)
        elif clear:
            removes.append(attribute)
    sets.append("settingsVersion = :newVersion")
    values[":newVersion"] = items.number(version)


def close_sales(table: str, event_id: int) -> list[Operation]:
    """Stop bookings and joins now (``not_closed_now`` then refuses them): ``not_cancelled``."""
    update = Condition("SET salesClosed = :true", values={":true": {"BOOL": True}})
    return [(Role.EVENT, _update(table, schema.event_key(event_id), update, not_cancelled()))]


def reopen_sales(table: str, read: Event, now_ms: int) -> list[Operation]:
    """Sell again now: lift the close, and any window bound that keeps the event off sale
    at ``now_ms`` (an end already passed, a start still ahead). ``not_cancelled``, and
    ``settings_as_read`` (the bounds judged are the ones removed)."""
    removes = ["salesClosed"]
    if read.sales_close_at is not None and read.sales_close_at <= now_ms:
        removes.append("salesCloseAt")
    if read.sales_open_at is not None and read.sales_open_at > now_ms:
        removes.append("salesOpenAt")
    update = Condition(
        "SET settingsVersion = :newVersion REMOVE " + ", ".join(removes),
        values={":newVersion": items.number(read.settings_version + 1)},
    )
    condition = not_cancelled() & settings_as_read(read.settings_version)
    return [(Role.EVENT, _update(table, schema.event_key(read.event_id), update, condition))]


def cancel_event(table: str, event_id: int, now: str) -> list[Operation]:
    """Cancel the event: from now on ``not_cancelled`` refuses every change of a place.

    The counters freeze; the release sweep (``release_places``) starts at the
    first place (an empty cursor).
    """
    update = Condition(
        "SET cancelledAt = :now, releasedCount = :zero, releaseCursor = :start",
        values={":now": items.string(now), ":zero": items.number(0), ":start": items.string("")},
    )
    return [(Role.EVENT, _update(table, schema.event_key(event_id), update, not_cancelled()))]


def release_places(
    table: str, event_id: int, places: list[Place], read_cursor: str, now: str
) -> list[Operation]:
    """Mark one page of a cancelled event's places released, and move the sweep's cursor
    past them: ``release_cursor_as_read``, so that each place is counted once.

    The places need no condition: after the cancellation nothing changes them.
    """
    assert places, "a release step releases at least one place"
    mark = Condition("SET releasedAt = :now", values={":now": items.string(now)})
    last = schema.person_sort_key(places[-1].email)
    progress = Condition(
        "SET releasedCount = releasedCount + :count, releaseCursor = :last",
        values={":count": items.number(len(places)), ":last": items.string(last)},
    )
    return [
        *(
            (
                Role.RELEASED,
                _update(table, schema.person_key(event_id, place.email), mark, Condition()),
            )
            for place in places
        ),
        (
            Role.EVENT,
            _update(
                table, schema.event_key(event_id), progress, release_cursor_as_read(read_cursor)
            ),
        ),
    ]


def _count_in_index(table: str, event_id: int, wait_key: int, delta: Condition) -> list[Operation]:
    """Add ``delta`` (``:one`` or ``:minusOne``) along ``wait_key``'s path in the position
    index. Unconditional: the place's and the event's conditions decide whether the
    transaction happens, and ADD commutes, so concurrent joins and leaves never
    conflict here beyond the event item they all write anyway."""
    (value,) = delta.values
    return [
        (
            Role.INDEX,
            _update(
                table,
                schema.rank_node_key(event_id, node),
                Condition(f"ADD #cell {value}", {"#cell": ranks.cell(child)}) & delta,
                Condition(),
            ),
        )
        for node, child in ranks.path(wait_key)
    ]


# -- building blocks ------------------------------------------------------------------------


def _put(table: str, item: items.Item, condition: Condition) -> TransactWriteItemTypeDef:
    return cast(
        "TransactWriteItemTypeDef",
        {"Put": {"TableName": table, "Item": item, **_expressions(condition)}},
    )


def _delete(table: str, key: schema.Key, condition: Condition) -> TransactWriteItemTypeDef:
    return cast(
        "TransactWriteItemTypeDef",
        {"Delete": {"TableName": table, "Key": key, **_expressions(condition)}},
    )


def _update(
    table: str, key: schema.Key, update: Condition, condition: Condition
) -> TransactWriteItemTypeDef:
    return cast(
        "TransactWriteItemTypeDef",
        {"Update": {"TableName": table, "Key": key, **_expressions(condition, update)}},
    )


def _update_event(
    table: str, event_id: int, expression: str, condition: Condition
) -> TransactWriteItemTypeDef:
    update = Condition(expression) & _ONE & _ZERO  # the placeholders an update may use
    return _update(table, schema.event_key(event_id), update, condition)


def _expressions(condition: Condition, update: Condition | None = None) -> dict[str, Any]:
    """The request's expressions, with exactly the names and values they use.

    DynamoDB rejects a name or value that no expression uses, so the merged
    placeholders are filtered to the ones that appear.
    """
    request: dict[str, Any] = {}
    parts = [condition] if update is None else [update, condition]
    if update is not None:
        request["UpdateExpression"] = update.expression
    if condition.expression:
        request["ConditionExpression"] = condition.expression
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    used = set(_PLACEHOLDER.findall(" ".join(part.expression for part in parts)))
    names = {k: v for part in parts for k, v in part.names.items() if k in used}
    values = {k: v for part in parts for k, v in part.values.items() if k in used}
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    return request
