"""Check one event's items against the booking invariants.

The invariants hold after any interleaving of requests because each change is a
single conditional transaction; this module re-derives them from the raw items
so tests (and operators, on a live table) can prove it rather than assume it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.audit_ranks import check_position_index
from chalicelib.models import Event, Place, Status
from chalicelib.observability import count, flush_metrics, log_event
from chalicelib.storage import EventPartition, TicketStore

#: A busy event's partition can span several 1 MB query pages, read at slightly
#: different moments; a violation is only reported if it is still there when
#: the event is read again this many times.
CONFIRMATION_READS = 2


@dataclass(frozen=True)
class Violation:
    event_id: int
    rule: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditReport:
    events_checked: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "eventsChecked": self.events_checked,
            "violations": [v.to_json() for v in self.violations],
        }


def audit_events(store: TicketStore, event_ids: list[int] | None = None) -> AuditReport:
    """Audit the given events (default: every event in the table).

    Reads are consistent but a large partition is read page by page while
    writes go on, so a violation must survive ``CONFIRMATION_READS`` more reads
    of its event to be reported.
    """
    report = AuditReport()
    for event_id in event_ids if event_ids is not None else store.event_ids():
        report.events_checked += 1
        found = audit_event(store, event_id)
        for _ in range(CONFIRMATION_READS):
            if not found:
                break
            found = audit_event(store, event_id)
        report.violations += found
    return report


def run_scheduled_audit(store: TicketStore) -> AuditReport:
    """Audit every event and log one ERROR line per violation (for a metric filter)."""
    report = audit_events(store)
    for violation in report.violations:
        log_event(
            logging.ERROR,
            "invariant violation",
            action="audit",
            eventId=violation.event_id,
            rule=violation.rule,
            detail=violation.detail,
        )
    log_event(
        logging.INFO if report.clean else logging.ERROR,
        "audit finished",
        action="audit",
        outcome="clean" if report.clean else "violations",
        eventsChecked=report.events_checked,
        violationCount=len(report.violations),
    )
    count("AuditViolations", len(report.violations))
    count("EventsAudited", report.events_checked)
    flush_metrics()
    return report


def audit_event(store: TicketStore, event_id: int) -> list[Violation]:
    """Read every item of ``event_id`` (consistently) and list what is wrong."""
    return check_partition(event_id, store.event_partition(event_id))


def check_partition(event_id: int, partition: EventPartition) -> list[Violation]:
    """What is wrong with one event's items, as read."""
    event, places = partition.event, partition.places
    if event is None:
        count = len(places) + len(partition.malformed)
        if count:
            return [Violation(event_id, "orphan-places", f"{count} places, no event")]
        return [Violation(event_id, "event-missing", "no event item")]
    malformed = [Violation(event_id, "status", problem) for problem in partition.malformed]
    waiting_keys = [p.wait_key for p in places if p.wait_key is not None]
    index = check_position_index(event, waiting_keys, partition.rank_counts)
    return (
        malformed
        + check_event(event, places)
        + [Violation(event_id, rule, detail) for rule, detail in index]
    )


Finding = tuple[str, str]  # (rule, detail)


def check_event(event: Event, places: list[Place]) -> list[Violation]:
    """Every rule that one event's items must satisfy, however they were written."""
    booked = [p for p in places if p.status == Status.BOOKED]
    waiting = [p for p in places if p.status == Status.WAITLISTED]
    findings = [
        *_counter_rules(event, booked, waiting),
        *_one_place_per_person(places),
        *_order_rules(event, booked, waiting),
    ]
    return [Violation(event.event_id, rule, detail) for rule, detail in findings]


def _counter_rules(event: Event, booked: list[Place], waiting: list[Place]) -> list[Finding]:
    """The counters agree with the items, never go negative, and respect the caps."""
    found: list[Finding] = []
    if event.available_tickets + event.booked_tickets != event.total_tickets:
        found.append(
            (
                "tickets-conserved",
                f"available {event.available_tickets} + booked {event.booked_tickets}"
                f" != total {event.total_tickets}",
            )
        )
    if event.available_tickets < 0 or event.booked_tickets < 0 or event.waiting_list_count < 0:
        found.append(("counters-non-negative", f"counters of {event} went below zero"))
    if event.booked_tickets != len(booked):
        found.append(
            ("booked-count", f"counter {event.booked_tickets} but {len(booked)} booking items")
        )
    if event.waiting_list_count != len(waiting):
        found.append(
            (
                "waiting-count",
                f"counter {event.waiting_list_count} but {len(waiting)} waiting items",
            )
        )
    if event.waiting_list_cap is not None and len(waiting) > event.waiting_list_cap:
        found.append(
            ("waiting-list-cap", f"{len(waiting)} wait, past the cap of {event.waiting_list_cap}")
        )
    if event.available_tickets > 0 and waiting:
        found.append(
            (
                "no-wait-while-available",
                f"{event.available_tickets} tickets free while {len(waiting)} people wait",
            )
        )
    return found


def _one_place_per_person(places: list[Place]) -> list[Finding]:
    holders = Counter(p.email.strip().lower() for p in places)
    twice = [email for email, count in holders.items() if count > 1]
    if twice:
        return [("one-place-per-person", f"{len(twice)} emails hold more than one place")]
    return []


def _order_rules(event: Event, booked: list[Place], waiting: list[Place]) -> list[Finding]:
    """Wait keys are unique and not newer than the event's; promotions went first in, first out."""
    found: list[Finding] = []
    keys = [p.wait_key for p in waiting]
    if any(k is None for k in keys):
        found.append(("waiting-key", "a waiting place has no waitKey"))
    present = sorted(k for k in keys if k is not None)
    if len(set(present)) != len(present):
        found.append(("waiting-order", "two waiting places share a waitKey"))
    if present and present[-1] > event.last_wait_key:
        found.append(("waiting-order", "a waitKey is newer than the event's lastWaitKey"))
    if any(p.wait_key is not None for p in booked):
        found.append(("waiting-key", "a booked place still carries a waitKey"))
    promoted = [p.promoted_from_wait_key for p in booked if p.promoted_from_wait_key is not None]
    if promoted and present and max(promoted) > present[0]:
        found.append(
            (
                "fifo-promotion",
                "someone was promoted from the waiting list ahead of a person still waiting",
            )
        )
    return found
