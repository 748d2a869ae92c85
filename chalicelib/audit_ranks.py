"""The position index's rule: every waiting person's position, as the index tells it,
is their place in the list.

``position(k) = (cells set at keys <= k) - promotedCount`` (see
``chalicelib.storage.ranks``) is exact for every waiting key ``k`` if and only if:

* every leaf cell is 0 or 1, and the cells set are the waiting keys plus exactly
  ``promotedCount`` other keys, all before the first waiting key (the promoted,
  who were always the front of the list);
* every node's count for a child equals the sum of that child node's counts, so
  the upper levels a position reads agree with the leaves.

Checking this needs the index's nodes and the waiting keys, not one position per
person, so it costs one pass over the partition.
"""

from __future__ import annotations

from collections import defaultdict

from chalicelib.models import Event
from chalicelib.storage import ranks

Finding = tuple[str, str]  # (rule, detail)
Counts = dict[ranks.NodeRef, dict[int, int]]


def check_position_index(event: Event, waiting_keys: list[int], counts: Counts) -> list[Finding]:
    """What is wrong with the event's position index, given its waiting keys."""
    found = _levels_agree(counts)
    leaves = {
        node.index * ranks.FANOUT + child: n
        for node, children in counts.items()
        if node.level == ranks.DEPTH - 1
        for child, n in children.items()
    }
    if any(n != 1 for n in leaves.values()):
        found.append(("position-index", "a leaf cell counts a key other than once"))
    waiting = set(waiting_keys)
    missing = waiting - leaves.keys()
    if missing:
        found.append(("position-index", f"{len(missing)} waiting keys are not in the index"))
    others = sorted(leaves.keys() - waiting)
    if len(others) != event.promoted_count:
        found.append(
            (
                "position-index",
                f"{len(others)} keys counted besides the waiting ones, but"
                f" promotedCount is {event.promoted_count}",
            )
        )
    if waiting and others and others[-1] > min(waiting):
        found.append(("position-index", "a key counted as promoted is behind a waiting one"))
    return found


def _levels_agree(counts: Counts) -> list[Finding]:
    """Each parent's count for a child is the sum of that child node's counts."""
    sums: dict[tuple[int, int], int] = defaultdict(int)  # (parent level, child key) -> sum
    for node, children in counts.items():
        if node.level > 0:
            sums[(node.level - 1, node.index)] += sum(children.values())
    claimed = {
        (node.level, node.index * ranks.FANOUT + child): n
        for node, children in counts.items()
        if node.level < ranks.DEPTH - 1
        for child, n in children.items()
    }
    wrong = [key for key in sums.keys() | claimed.keys() if sums.get(key, 0) != claimed.get(key, 0)]
    if wrong:
        return [("position-index", f"{len(wrong)} node counts disagree with their children")]
    return []
