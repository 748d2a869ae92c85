"""How audit results reach operators: ERROR lines (a metric filter can count them) and metrics."""

from __future__ import annotations

import logging

from chalicelib.audit.findings import AuditReport, EventVerdict, Violation
from chalicelib.observability import count, log_event


def log_violations(violations: list[Violation]) -> None:
    """One ERROR line per violation, naming the event and the rule."""
    for violation in violations:
        log_event(
            logging.ERROR,
            "invariant violation",
            action="audit",
            eventId=violation.event_id,
            rule=violation.rule,
            detail=violation.detail,
        )


def report_verdict(verdict: EventVerdict) -> None:
    """One event audited (by the queue worker): its violations, a summary line, its metrics."""
    log_violations(verdict.violations)
    log_event(
        logging.INFO if verdict.clean else logging.ERROR,
        "event audited",
        action="audit",
        outcome="clean" if verdict.clean else "violations",
        eventId=verdict.event_id,
        violationCount=len(verdict.violations),
        attempts=verdict.attempts,
        pages=verdict.pages,
        steps=verdict.steps,
        items=verdict.items,
        skippedItems=verdict.skipped,
    )
    count("EventsAudited", 1)
    count("AuditViolations", len(verdict.violations))


def report_audit(report: AuditReport) -> None:
    """A whole audit run in one process: its violations, one summary line, its metrics."""
    log_violations(report.violations)
    log_event(
        logging.INFO if report.clean else logging.ERROR,
        "audit finished",
        action="audit",
        outcome="clean" if report.clean else "violations",
        eventsChecked=report.events_checked,
        violationCount=len(report.violations),
        **({"skippedItems": dict(report.skipped)} if report.skipped else {}),
    )
    count("AuditViolations", len(report.violations))
    count("EventsAudited", report.events_checked)
