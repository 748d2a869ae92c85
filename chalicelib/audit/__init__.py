"""Check events' items against the booking invariants, in bounded, resumable steps.

The invariants hold after any interleaving of requests because each change is
a single conditional transaction; this package re-derives them from the raw
items so tests (and operators, on a live table) can prove it rather than
assume it. Its parts:

findings  Violation, EventVerdict (one event), AuditReport (many)
rules     the invariants as rule groups: accumulators over pages of items
cursor    where one event's audit stands, as small JSON (a queue message)
runner    audit_step: read pages within a budget; a verdict or a cursor
local     the same steps in a loop, in one process (make audit, tests)
fanout    in AWS: one queue message per event, a worker per message
report    ERROR lines and metrics
"""

from chalicelib.audit.findings import AuditReport, EventVerdict, Violation
from chalicelib.audit.local import (
    LOCAL_BUDGET,
    audit_event,
    audit_events,
    audit_to_end,
    run_scheduled_audit,
)
from chalicelib.audit.runner import CONFIRMATION_READS, Budget, audit_step

__all__ = [
    "CONFIRMATION_READS",
    "LOCAL_BUDGET",
    "AuditReport",
    "Budget",
    "EventVerdict",
    "Violation",
    "audit_event",
    "audit_events",
    "audit_step",
    "audit_to_end",
    "run_scheduled_audit",
]
