"""What an audit concludes: violations per event, and the report over many events."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: A broken rule as a rule group states it: ``(rule, detail)``; the runner adds the event.
Finding = tuple[str, str]


@dataclass(frozen=True)
class Violation:
    """A broken invariant of one event, named by its rule (what alarms and tests match on)."""

    event_id: int
    rule: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        """As ``make audit`` prints it and the scheduled function returns it."""
        return asdict(self)


@dataclass(frozen=True)
class EventVerdict:
    """One event's audit, finished: what is wrong (confirmed by re-reading) and what it cost."""

    event_id: int
    violations: list[Violation]
    #: Reads of the whole event: 1, plus one per re-read that confirmed a violation.
    attempts: int
    #: Query pages read over all attempts, and invocations (steps) the audit took.
    pages: int
    steps: int
    #: Items and index entries of the final read, and items of kinds no rule group
    #: checks (by kind: counted so that a new kind of item is visible, not failed).
    items: int
    skipped: dict[str, int]

    @property
    def clean(self) -> bool:
        """Nothing wrong (after re-reading to confirm anything that looked wrong)."""
        return not self.violations


@dataclass
class AuditReport:
    """Many events' verdicts, summed: what ``make audit`` prints and the local audit returns."""

    events_checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        """No event had a violation: ``make audit`` exits 0 only then."""
        return not self.violations

    def add(self, verdict: EventVerdict) -> None:
        """Count one more event's verdict in."""
        self.events_checked += 1
        self.violations += verdict.violations
        self.skipped.update(verdict.skipped)

    def to_json(self) -> dict[str, Any]:
        """The report's JSON (the shape the scheduled function has always returned)."""
        body: dict[str, Any] = {
            "clean": self.clean,
            "eventsChecked": self.events_checked,
            "violations": [v.to_json() for v in self.violations],
        }
        if self.skipped:  # item kinds the audit does not check yet, counted
            body["skippedItems"] = dict(sorted(self.skipped.items()))
        return body
