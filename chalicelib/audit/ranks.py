"""The position index's rule group: positions, as the index tells them, are places in line.

``position(k) = (cells set at keys <= k) - promotedCount`` (see
``chalicelib.storage.ranks``) is exact for every waiting key ``k`` if and only if:

* every leaf cell is 0 or 1 (``position-index``);
* in key order, the first ``promotedCount - pendingPromotions`` cells set are
  keys before the first waiting key (the promoted and settled, always the front
  of the list), and the rest are exactly the keys of the places stored as
  waiting (those promoted by count and not yet settled among them), and the
  last promoted cell is the event's ``lastPromotedKey``;
* every node's count for a child equals the sum of that child node's counts,
  so the upper levels a position reads agree with the leaves.

The partition is read in sort-key order: the event item (``EVENT``), the places
(``PERSON#``), then the index (``RANK#<level>#<index>``, by level, then index,
so the leaves come in key order). State stays a few numbers however long the
list: the sets compared are folded into order-independent 64-bit fingerprints
(a sum of a strong mix of each element), equal for equal sets and, for unequal
ones, equal with probability about 2^-64.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.audit.findings import Finding
from chalicelib.audit.rules import Item, Lookups, RuleGroup
from chalicelib.models import Event, Status
from chalicelib.storage import ranks
from chalicelib.storage.schema import EVENT_KIND, PERSON_KIND, RANK_KIND, item_kind

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 64-bit mix of a few integers (splitmix64 over each in turn)."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (value & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK
        h ^= h >> 29
    return h


@dataclass
class PositionIndexRules(RuleGroup):
    """The index against the event's ``promotedCount`` and its waiting places."""

    name = "position-index"
    kinds = frozenset({EVENT_KIND, PERSON_KIND, RANK_KIND})

    promoted: int = 0
    waiting: int = 0
    waiting_fingerprint: int = 0
    min_waiting_key: int | None = None
    cells: int = 0
    cells_not_one: int = 0
    after_promoted_fingerprint: int = 0
    last_promoted_cell: int | None = None
    claims_fingerprint: int = 0
    totals_fingerprint: int = 0
    malformed_nodes: int = 0

    def observe(self, item: Item) -> None:
        kind = item_kind(item)
        if kind == EVENT_KIND:
            # Promoted and settled: the people promoted by count but not yet settled
            # are still stored as waiting, and counted with the waiting keys below.
            self.promoted = int(item.get("promotedCount", {}).get("N", 0)) - int(
                item.get("pendingPromotions", {}).get("N", 0)
            )
        elif kind == PERSON_KIND:
            self._observe_place(item)
        else:
            self._observe_node(item)

    def _observe_place(self, item: Item) -> None:
        if item.get("status", {}).get("S") != Status.WAITLISTED or "waitKey" not in item:
            return  # malformed places are the place rules' to report
        key = int(item["waitKey"]["N"])
        self.waiting += 1
        self.waiting_fingerprint = (self.waiting_fingerprint + mix(key)) & _MASK
        if self.min_waiting_key is None or key < self.min_waiting_key:
            self.min_waiting_key = key

    def _observe_node(self, item: Item) -> None:
        try:
            node = ranks.node_from_sort_key(item["SK"]["S"])
            counts = ranks.counts_from_item(item)
        except (KeyError, ValueError):
            self.malformed_nodes += 1
            return
        if node.level > 0 and counts:
            total = sum(counts.values())
            self.totals_fingerprint = (
                self.totals_fingerprint + mix(node.level, node.index, total)
            ) & _MASK
        if node.level < ranks.DEPTH - 1:
            for child, n in counts.items():
                claim = mix(node.level + 1, node.index * ranks.FANOUT + child, n)
                self.claims_fingerprint = (self.claims_fingerprint + claim) & _MASK
            return
        for child in sorted(counts):  # the leaves arrive in key order; so do their cells
            self._observe_cell(node.index * ranks.FANOUT + child, counts[child])

    def _observe_cell(self, key: int, count: int) -> None:
        if count != 1:
            self.cells_not_one += 1
        if self.cells < self.promoted:
            self.last_promoted_cell = key
        else:
            self.after_promoted_fingerprint = (self.after_promoted_fingerprint + mix(key)) & _MASK
        self.cells += 1

    def findings(self, event: Event, lookups: Lookups) -> list[Finding]:
        found: list[str] = []
        if self.malformed_nodes:
            found.append(f"{self.malformed_nodes} index items no code path writes")
        if self.cells_not_one:
            found.append(f"{self.cells_not_one} leaf cells count a key other than once")
        if self.cells != self.waiting + self.promoted:
            found.append(
                f"{self.cells} keys counted, but {self.waiting} wait and {self.promoted}"
                " were promoted"
            )
        elif self.after_promoted_fingerprint != self.waiting_fingerprint:
            found.append("the keys counted after the promoted ones are not the waiting keys")
        if (
            self.last_promoted_cell is not None
            and self.min_waiting_key is not None
            and self.last_promoted_cell >= self.min_waiting_key
        ):
            found.append("a key counted as promoted is not before every waiting one")
        if event.last_promoted_key and event.last_promoted_key != self.last_promoted_cell:
            # Promotions take the front in key order, so the last promoted key is the
            # last of the promoted cells; cancellations trust it to skip ahead.
            found.append("lastPromotedKey is not the last key promoted")
        if self.claims_fingerprint != self.totals_fingerprint:
            found.append("node counts disagree with the nodes below them")
        return [("position-index", detail) for detail in found]
