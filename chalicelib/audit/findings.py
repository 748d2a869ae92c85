"""What an audit concludes: violations per event, and the report over many events."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: A broken rule as a rule group states it: ``(rule, detail)``; the runner adds the event.
Finding = tuple[str, str]


@dataclass(frozen=True)
class Violation:
    event_id: int
    rule: str
    detail: str

    def to_json(self) -> dict[str, Any]:
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
    #: Items of the final read, and those of kinds no rule group checks (by kind).
    items: int
    skipped: dict[str, int]

    @property
    def clean(self) -> bool:
        return not self.violations


@dataclass
class AuditReport:
    """Many events' verdicts, summed: what ``make audit`` prints and the local audit returns."""

    events_checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not self.violations

    def add(self, verdict: EventVerdict) -> None:
        self.events_checked += 1
        self.violations += verdict.violations
        self.skipped.update(verdict.skipped)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clean": self.clean,
            "eventsChecked": self.events_checked,
            "violations": [v.to_json() for v in self.violations],
        }
        if self.skipped:  # item kinds the audit does not check yet, counted
            body["skippedItems"] = dict(sorted(self.skipped.items()))
        return body
