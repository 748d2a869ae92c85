"""Audit one event in bounded steps: read pages until the budget is spent, then hand back a cursor.

An event is read in passes (``PASSES``), each a paged, strongly consistent
query whose items go to the rule groups of their kind:

1. ``partition``: the event's partition in sort-key order (the event item,
   then its places, then any other kind of item);
2. ``waiting-list``: the ``WaitingList`` index in ``waitKey`` order (skipped
   when there is no event item).

``audit_step`` reads at most ``Budget.max_pages`` pages (and stops early when
the invocation's time runs short, but always reads one, so every step makes
progress). If the event is not finished it returns the ``EventCursor`` to
resume from; otherwise the ``EventVerdict``.

Pages are read at different moments while bookings go on, so a read may see a
counter before a place changed, say. A violation is only reported if
``CONFIRMATION_READS`` further reads of the event, from the start, find one
too: each re-read is itself paged and resumable, so confirming is bounded by
(1 + ``CONFIRMATION_READS``) reads of the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.audit.cursor import EventCursor
from chalicelib.audit.findings import EventVerdict, Finding, Violation
from chalicelib.audit.ranks import PositionIndexRules
from chalicelib.audit.rules import (
    EventRules,
    Item,
    PlaceRules,
    RuleGroup,
    WaitingListOrder,
)
from chalicelib.storage import QueryPage, StartKey, TicketStore
from chalicelib.storage.schema import item_kind

#: A violation must be found again by this many re-reads of the event to be reported.
CONFIRMATION_READS = 2


@dataclass(frozen=True)
class AuditPass:
    """One paged query over an event, and the rule groups its items go to."""

    name: str
    read: Callable[[TicketStore, int, StartKey | None, int], QueryPage]
    groups: tuple[type[RuleGroup], ...]


PASSES: tuple[AuditPass, ...] = (
    AuditPass(
        "partition", TicketStore.partition_page, (EventRules, PlaceRules, PositionIndexRules)
    ),
    AuditPass("waiting-list", TicketStore.waiting_list_page, (WaitingListOrder,)),
)

_GROUP_TYPES: tuple[type[RuleGroup], ...] = tuple(
    dict.fromkeys(group for audit_pass in PASSES for group in audit_pass.groups)
)


@dataclass(frozen=True)
class Budget:
    """How much one step may read: pages of ``page_size`` items, and time.

    ``time_left_ms`` is the Lambda context's ``get_remaining_time_in_millis``;
    the step stops reading while at least ``reserve_ms`` remain (for the last
    page, the verdict's lookups and sending the continuation).
    """

    page_size: int
    max_pages: int
    time_left_ms: Callable[[], int] | None = None
    reserve_ms: int = 0

    def out_of_time(self) -> bool:
        """Whether to stop before another page (never without a Lambda context)."""
        return self.time_left_ms is not None and self.time_left_ms() < self.reserve_ms


def audit_step(
    store: TicketStore, cursor: EventCursor, budget: Budget
) -> EventVerdict | EventCursor:
    """Advance one event's audit by at most ``budget``: its verdict, or where to resume."""
    run = _Run(store, cursor)
    pages = 0
    while True:
        if pages >= max(1, budget.max_pages) or (pages > 0 and budget.out_of_time()):
            return run.suspend()
        pages += 1
        if not run.read_page(budget.page_size):
            continue
        violations = run.violations()
        if violations and run.cursor.attempt < CONFIRMATION_READS:
            run = _Run(store, run.cursor.reread())
            continue
        return run.verdict(violations)


class _Run:
    """One step's live state: the cursor, with its rule groups rebuilt from their state."""

    def __init__(self, store: TicketStore, cursor: EventCursor) -> None:
        self.store = store
        self.cursor = cursor
        self.groups: dict[str, RuleGroup] = {
            group.name: group.from_state(cursor.groups[group.name])
            if group.name in cursor.groups
            else group()
            for group in _GROUP_TYPES
        }

    def read_page(self, page_size: int) -> bool:
        """Read the next page into the groups; True once every pass is done."""
        cursor = self.cursor
        audit_pass = PASSES[cursor.pass_index]
        page = audit_pass.read(self.store, cursor.event_id, cursor.start_key, page_size)
        cursor.pages += 1
        by_kind: dict[str, list[RuleGroup]] = {}
        for group_type in audit_pass.groups:
            for kind in group_type.kinds:
                by_kind.setdefault(kind, []).append(self.groups[group_type.name])
        for item in page.items:
            self._observe(item, by_kind)
        cursor.start_key = page.next_key
        if page.next_key is None:
            cursor.pass_index += 1
            if self._event_rules().read() is None:
                cursor.pass_index = len(PASSES)  # nothing to check the rest against
        return cursor.pass_index >= len(PASSES)

    def _observe(self, item: Item, by_kind: dict[str, list[RuleGroup]]) -> None:
        kind = item_kind(item)
        groups = by_kind.get(kind)
        self.cursor.items += 1
        if not groups:
            self.cursor.skipped[kind] = self.cursor.skipped.get(kind, 0) + 1
            return
        for group in groups:
            group.observe(item)

    def _event_rules(self) -> EventRules:
        group = self.groups[EventRules.name]
        assert isinstance(group, EventRules)
        return group

    def violations(self) -> list[Violation]:
        """Every finding of every group, once all passes are read."""
        event_id = self.cursor.event_id
        return [Violation(event_id, rule, detail) for rule, detail in self._findings()]

    def _findings(self) -> list[Finding]:
        event_rules = self._event_rules()
        if event_rules.problem is not None:
            return [("event-item", event_rules.problem)]
        event = event_rules.read()
        if event is None:
            others = self.cursor.items
            if others:
                return [("orphan-places", f"{others} items, no event")]
            return [("event-missing", "no event item")]
        lookups = _StoreLookups(self.store, event.event_id)
        return [f for group in self.groups.values() for f in group.findings(event, lookups)]

    def suspend(self) -> EventCursor:
        """The cursor to resume from, with every group's state written into it."""
        self.cursor.groups = {name: group.state() for name, group in self.groups.items()}
        self.cursor.steps += 1
        return self.cursor

    def verdict(self, violations: list[Violation]) -> EventVerdict:
        cursor = self.cursor
        return EventVerdict(
            event_id=cursor.event_id,
            violations=violations,
            attempts=cursor.attempt + 1,
            pages=cursor.pages,
            steps=cursor.steps + 1,
            items=cursor.items,
            skipped=dict(cursor.skipped),
        )


@dataclass(frozen=True)
class _StoreLookups:
    store: TicketStore
    event_id: int

    def place_exists(self, email: str) -> bool:
        return self.store.place_exists(self.event_id, email)
