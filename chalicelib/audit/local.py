"""The audit in one process: the same steps the queue worker takes, driven by a loop.

``make audit``, the tests, and the scheduled function where no queue is
configured (the test stage) use this. The budget is deliberately small (pages
of ``LOCAL_BUDGET.page_size`` items, ``LOCAL_BUDGET.max_pages`` per step) and
every step's cursor goes through JSON as it would through SQS, so resuming is
exercised on every event bigger than a few hundred places, not only in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from chalicelib.audit.cursor import EventCursor
from chalicelib.audit.findings import AuditReport, EventVerdict, Violation
from chalicelib.audit.report import report_audit
from chalicelib.audit.runner import Budget, audit_step
from chalicelib.observability import flush_metrics
from chalicelib.storage import TicketStore

LOCAL_BUDGET = Budget(page_size=100, max_pages=3)


def audit_to_end(store: TicketStore, event_id: int, budget: Budget = LOCAL_BUDGET) -> EventVerdict:
    """Step through one event's audit until its verdict, the cursor round-tripped each time."""
    outcome = audit_step(store, EventCursor.start(event_id), budget)
    while isinstance(outcome, EventCursor):
        carried = EventCursor.from_json(json.loads(json.dumps(outcome.to_json())))
        outcome = audit_step(store, carried, budget)
    return outcome


def audit_event(
    store: TicketStore, event_id: int, budget: Budget = LOCAL_BUDGET
) -> list[Violation]:
    """What is wrong with one event (confirmed by re-reading), as the scheduled audit finds it."""
    return audit_to_end(store, event_id, budget).violations


def audit_events(
    store: TicketStore,
    event_ids: Iterable[int] | None = None,
    budget: Budget = LOCAL_BUDGET,
) -> AuditReport:
    """Audit the given events (default: every event in the table), one after the other."""
    report = AuditReport()
    for event_id in event_ids if event_ids is not None else store.event_ids():
        report.add(audit_to_end(store, event_id, budget))
    return report


def run_scheduled_audit(store: TicketStore) -> AuditReport:
    """Audit every event here and now, then log and count the result (no queue to fan out to)."""
    report = audit_events(store)
    report_audit(report)
    flush_metrics()
    return report
