"""The booking rules, each a named condition part; every transaction is composed from these.

A part is one clause of a DynamoDB condition expression that enforces one rule,
with the placeholders it needs. The transactions in ``chalicelib.storage.writes``
combine parts with ``&``; a read only ever chooses which transaction to try,
so these parts are the rules: if a part is wrong, the service is wrong.

``PARTS`` lists every part. ``tests/test_condition_guards.py`` weakens each one
in turn (drops it, and swaps it for its ``loosened`` variant where it has one)
and shows that a scenario then breaks an invariant, so no part is unguarded; a
part added here without a scenario that needs it fails that test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.models import Status

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Values = Mapping[str, "AttributeValueTypeDef"]


@dataclass(frozen=True)
class Condition:
    """A condition expression with the attribute names and values it refers to."""

    expression: str = ""
    names: Mapping[str, str] = field(default_factory=dict)
    values: Values = field(default_factory=dict)

    def __and__(self, other: Condition) -> Condition:
        """Both conditions; an empty side (a dropped clause) only lends its placeholders."""
        expression = " AND ".join(e for e in (self.expression, other.expression) if e)
        return Condition(expression, {**self.names, **other.names}, {**self.values, **other.values})


@dataclass
class ConditionPart:
    """One named clause and the rule it guards.

    ``parameter`` names the placeholder whose value each call supplies (a wait
    key); ``constants`` are the placeholders with fixed values. ``loosened`` is
    the nearest weaker clause, which the guard test swaps in to prove a
    scenario needs the exact one.
    """

    name: str
    expression: str
    guards: str
    loosened: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    constants: Values = field(default_factory=dict)
    parameter: str | None = None

    def __call__(self, value: int | str | None = None) -> Condition:
        values = dict(self.constants)
        if self.parameter is not None:
            if value is None:
                raise TypeError(f"condition {self.name} needs a value for {self.parameter}")
            values[self.parameter] = {"S": value} if isinstance(value, str) else {"N": str(value)}
        return Condition(self.expression, dict(self.names), values)


PARTS: dict[str, ConditionPart] = {}

_ZERO: Values = {":zero": {"N": "0"}}


def _part(part: ConditionPart) -> ConditionPart:
    PARTS[part.name] = part
    return part


under_daily_cap = _part(
    ConditionPart(
        "under_daily_cap",
        "(attribute_not_exists(eventsCreated) OR eventsCreated < :dailyCap)",
        loosened="(attribute_not_exists(eventsCreated) OR eventsCreated <= :dailyCap)",
        parameter=":dailyCap",
        guards="an organiser creates at most the daily cap of events (abuse limit)",
    )
)

event_is_new = _part(
    ConditionPart(
        "event_is_new",
        "attribute_not_exists(PK)",
        guards="creating an event never overwrites one, even when the id sequence lags"
        " behind the table (after a restore, say)",
    )
)

place_is_new = _part(
    ConditionPart(
        "place_is_new",
        "attribute_not_exists(PK)",
        guards="one place per person and event: a ticket or a waiting entry, never both"
        " and never two",
    )
)

tickets_left = _part(
    ConditionPart(
        "tickets_left",
        "availableTickets > :zero",
        loosened="availableTickets >= :zero",
        constants=_ZERO,
        guards="never sell more tickets than exist. It also fails on an unknown event"
        " (no counter), so a booking never creates a half-made event",
    )
)

sold_out = _part(
    ConditionPart(
        "sold_out",
        "availableTickets = :zero",
        loosened="availableTickets >= :zero",
        constants=_ZERO,
        guards="nobody waits while a ticket is free: a join commits only if none is"
        " left (the sold-out hint it acted on may be stale)",
    )
)

joins_after_last = _part(
    ConditionPart(
        "joins_after_last",
        "lastWaitKey < :newWaitKey",
        loosened="lastWaitKey <= :newWaitKey",
        parameter=":newWaitKey",
        guards="first in, first out: a new entry's key sorts after every entry's, so"
        " the order of keys is the order of commits and no two entries share a key",
    )
)

waitlist_has_room = _part(
    ConditionPart(
        "waitlist_has_room",
        "(attribute_not_exists(waitingListCap) OR waitingCount < waitingListCap)",
        loosened="(attribute_not_exists(waitingListCap) OR waitingCount <= waitingListCap)",
        guards="a waiting list never grows past the cap its organiser set (events made"
        " before caps existed have none)",
    )
)

nobody_waiting = _part(
    ConditionPart(
        "nobody_waiting",
        "waitingCount = :zero",
        loosened="waitingCount >= :zero",
        constants=_ZERO,
        guards="a cancelled ticket goes back to the pool only if nobody waits for it"
        " (someone may join between the cancellation's read of the list and its write)",
    )
)

someone_waits = _part(
    ConditionPart(
        "someone_waits",
        "waitingCount > :zero",
        loosened="waitingCount >= :zero",
        constants=_ZERO,
        guards="a ticket passed by count goes to someone who waits: with nobody left"
        " waiting it must go back to the pool instead, or it would be lost",
    )
)

no_pending_promotions = _part(
    ConditionPart(
        "no_pending_promotions",
        "(attribute_not_exists(pendingPromotions) OR pendingPromotions = :zero)",
        loosened="(attribute_not_exists(pendingPromotions) OR pendingPromotions >= :zero)",
        constants=_ZERO,
        guards="a place stored as waiting really waits: nobody at the front was promoted"
        " by count and not yet written as a ticket. Without it such a person could leave"
        " the list (and their ticket with them), or a promotion could skip them",
    )
)

pending_at_least = _part(
    ConditionPart(
        "pending_at_least",
        "pendingPromotions >= :settled",
        parameter=":settled",
        guards="settling writes as tickets only people promoted by count (the first"
        " pendingPromotions entries of the list), never someone who still waits",
    )
)

holds_ticket = _part(
    ConditionPart(
        "holds_ticket",
        "#status = :booked",
        names={"#status": "status"},
        constants={":booked": {"S": Status.BOOKED}},
        guards="only a ticket is cancelled as a ticket: a waiting place is left instead,"
        " which moves other counters",
    )
)

waits_with_key = _part(
    ConditionPart(
        "waits_with_key",
        "waitKey = :heldWaitKey",
        parameter=":heldWaitKey",
        guards="the waiting entry that was read is still the one there. Only waiting"
        " places carry a waitKey, so it also means 'still waiting': a stale leave"
        " cannot delete a ticket the person was promoted to, and a promotion cannot"
        " pick a person who left and joined again at the back (first in, first out)."
        " A separate status clause would add nothing",
    )
)

# -- the organiser's controls: the sales window, capacity, settings, cancellation ----------

not_cancelled = _part(
    ConditionPart(
        "not_cancelled",
        "attribute_not_exists(cancelledAt)",
        guards="no place changes once the organiser cancelled the event: no booking,"
        " join, cancellation, leave or promotion slips in after the cancellation"
        " froze the places for the release and the notifications",
    )
)

sales_started = _part(
    ConditionPart(
        "sales_started",
        "(attribute_not_exists(salesOpenAt) OR salesOpenAt <= :now)",
        parameter=":now",
        guards="nobody books or joins before the sales window opens; the time is the"
        " request's, so a request racing the opening cannot slip in early",
    )
)

sales_not_ended = _part(
    ConditionPart(
        "sales_not_ended",
        "(attribute_not_exists(salesCloseAt) OR :now < salesCloseAt)",
        loosened="(attribute_not_exists(salesCloseAt) OR :now <= salesCloseAt)",
        parameter=":now",
        guards="nobody books or joins once the sales window has closed (its end is"
        " exclusive), even a request that read the event just before the deadline",
    )
)

not_closed_now = _part(
    ConditionPart(
        "not_closed_now",
        "attribute_not_exists(salesClosed)",
        guards="nobody books or joins while the organiser has closed sales, even with"
        " a sold-out hint or an event read before the close",
    )
)

total_as_read = _part(
    ConditionPart(
        "total_as_read",
        "totalTickets = :readTotal",
        parameter=":readTotal",
        guards="a capacity change adds or removes exactly the difference between the"
        " total it read and the total asked for: two changes at once never both add",
    )
)

keeps_booked = _part(
    ConditionPart(
        "keeps_booked",
        "availableTickets >= :withdrawn",
        parameter=":withdrawn",
        guards="lowering capacity withdraws only free tickets, never one a booking took"
        " after the change read the event (capacity never drops below the number booked)",
    )
)

waiting_at_least = _part(
    ConditionPart(
        "waiting_at_least",
        "waitingCount >= :promotedByCount",
        parameter=":promotedByCount",
        guards="a raise that promotes by count (while other promotions by count are still"
        " to settle) never promotes more people than wait, even if some left after the"
        " raise read the event",
    )
)

waiting_count_is = _part(
    ConditionPart(
        "waiting_count_is",
        "waitingCount = :promotedNow",
        parameter=":promotedNow",
        guards="raising capacity puts tickets in the pool only when the promotions of the"
        " same transaction empty the waiting list: nobody waits while a ticket is free,"
        " even if someone joined after the raise read the list",
    )
)

cap_holds_waiting = _part(
    ConditionPart(
        "cap_holds_waiting",
        "waitingCount <= :newCap",
        parameter=":newCap",
        guards="a waiting-list cap is never set below the people already waiting, even"
        " if some joined after the change read the event",
    )
)

settings_as_read = _part(
    ConditionPart(
        "settings_as_read",
        "(attribute_not_exists(settingsVersion) OR settingsVersion = :readVersion)",
        parameter=":readVersion",
        guards="a change of the organiser's settings was validated against the settings"
        " it read (a window opens before it closes): two changes at once cannot combine"
        " into settings neither would have accepted",
    )
)

release_cursor_as_read = _part(
    ConditionPart(
        "release_cursor_as_read",
        "releaseCursor = :readCursor",
        parameter=":readCursor",
        guards="after a cancellation, each place is released and counted once, even when"
        " two requests work through the event at the same time",
    )
)
