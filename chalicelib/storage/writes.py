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
from chalicelib.models import Event, Place, Status
from chalicelib.storage import items, ranks, schema
from chalicelib.storage.conditions import (
    Condition,
    event_is_new,
    holds_ticket,
    joins_after_last,
    nobody_waiting,
    place_is_new,
    sold_out,
    tickets_left,
    under_daily_cap,
    waitlist_has_room,
    waits_with_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

Operation = tuple[Role, "TransactWriteItemTypeDef"]

_PLACEHOLDER = re.compile(r"[:#][A-Za-z0-9_]+")
_ONE = Condition(values={":one": {"N": "1"}})
_MINUS_ONE = Condition(values={":minusOne": {"N": "-1"}})

#: The updates of the event item's counters.
TAKE_TICKET = "SET availableTickets = availableTickets - :one, bookedTickets = bookedTickets + :one"
RETURN_TICKET = (
    "SET availableTickets = availableTickets + :one, bookedTickets = bookedTickets - :one"
)
JOIN_QUEUE = "SET waitingCount = waitingCount + :one, lastWaitKey = :newWaitKey"
LEAVE_QUEUE = "SET waitingCount = waitingCount - :one"
#: A promotion takes the head: the list shrinks and the promoted prefix grows.
PROMOTED_FROM_QUEUE = "SET waitingCount = waitingCount - :one, promotedCount = promotedCount + :one"
#: Promotion: the waiting place becomes a ticket, and keeps the key it waited with.
PROMOTE = (
    "SET #status = :booked, bookedAt = :now, promotedAt = :now,"
    " promotedFromWaitKey = :heldWaitKey REMOVE waitKey"
)


def create_event(table: str, event: Event, day: str, daily_cap: int) -> list[Operation]:
    """A new event, counted against its organiser's day: ``event_is_new``, ``under_daily_cap``."""
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
    ]


def book(
    table: str, event_id: int, email: str, request_key: str | None, now: str
) -> list[Operation]:
    """Take one free ticket: guarded by ``place_is_new`` and ``tickets_left``."""
    place = Place(event_id, email, Status.BOOKED, request_key=request_key)
    return [
        (Role.PERSON, _put(table, items.place_to_item(place, now), place_is_new())),
        (Role.EVENT, _update_event(table, event_id, TAKE_TICKET, tickets_left())),
    ]


def join_waitlist(
    table: str, event_id: int, email: str, wait_key: int, request_key: str | None, now: str
) -> list[Operation]:
    """Queue at the back: ``place_is_new``; for the event ``sold_out``,
    ``joins_after_last`` and ``waitlist_has_room``."""
    place = Place(event_id, email, Status.WAITLISTED, wait_key=wait_key, request_key=request_key)
    condition = sold_out() & joins_after_last(wait_key) & waitlist_has_room()
    return [
        (Role.PERSON, _put(table, items.place_to_item(place, now), place_is_new())),
        (Role.EVENT, _update_event(table, event_id, JOIN_QUEUE, condition)),
        *_count_in_index(table, event_id, wait_key, _ONE),
    ]


def cancel_and_release(table: str, event_id: int, email: str) -> list[Operation]:
    """Give a ticket back to the pool: ``holds_ticket`` and ``nobody_waiting``."""
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), holds_ticket())),
        (Role.EVENT, _update_event(table, event_id, RETURN_TICKET, nobody_waiting())),
    ]


def cancel_and_promote(
    table: str, event_id: int, email: str, head: Place, now: str
) -> list[Operation]:
    """Hand a ticket to ``head``: ``holds_ticket``, and ``waits_with_key`` for the head.

    The event's update needs no condition of its own: ``booked`` and
    ``available`` do not move, and the head's condition proves someone waits.
    """
    assert head.wait_key is not None, "only a waiting place can be promoted"
    promote = Condition(
        PROMOTE,
        {"#status": "status"},
        {":booked": {"S": Status.BOOKED}, ":now": {"S": now}},
    )
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), holds_ticket())),
        (
            Role.HEAD,
            _update(
                table,
                schema.person_key(event_id, head.email),
                promote,
                waits_with_key(head.wait_key),
            ),
        ),
        (Role.EVENT, _update_event(table, event_id, PROMOTED_FROM_QUEUE, Condition())),
    ]


def leave_waitlist(table: str, event_id: int, email: str, wait_key: int) -> list[Operation]:
    """Leave the queue (everyone behind moves up): ``waits_with_key``.

    As in promotion, the event's update needs no condition: the person's
    condition proves they wait, so the count is at least one.
    """
    return [
        (Role.PERSON, _delete(table, schema.person_key(event_id, email), waits_with_key(wait_key))),
        (Role.EVENT, _update_event(table, event_id, LEAVE_QUEUE, Condition())),
        *_count_in_index(table, event_id, wait_key, _MINUS_ONE),
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
    return _update(table, schema.event_key(event_id), Condition(expression) & _ONE, condition)


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
