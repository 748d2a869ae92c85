"""The position index: how many people joined an event's waiting list before a given key.

A waiting person's position must not cost more to compute at the back of a list
of 100,000 than at the front of a list of 100. So positions are not counted from
the list (a ``COUNT`` query reads every entry ahead); they are read from a tree
of counters with a fixed shape, in the event's own partition:

* Wait keys are milliseconds since ``chalicelib.clock.WAIT_KEY_EPOCH_MS`` (a tie or a lagging clock
  takes ``lastWaitKey + 1``), so every key fits in ``KEY_BITS`` = 42 bits (until
  the year 2165).
* The tree has ``DEPTH`` = 6 levels of nodes with ``FANOUT`` = 128 children
  each: a key's 42 bits are six 7-bit digits, the first choosing a child of the
  root, the last a cell of a leaf node. A node is one item, its children's
  counts are its attributes ``c0`` .. ``c127`` (under 1 KB, so one write unit).
* A join adds 1 along its key's path (``DEPTH`` items, in the join's own
  transaction); a leave subtracts 1 along its path. A promotion changes nothing
  here: promotions always take the head, so they are a prefix of the keys, and
  the event item counts them (``promotedCount``).

So for a waiting person with key ``k``:

    position(k) = (entries counted at keys <= k) - promotedCount

The first term is the sum, level by level, of the counts of the children
before ``k``'s digit (and, at the leaf, of its own cell): one read of the
nodes on ``k``'s path, read together with the place and the event in one
``TransactGetItems``, so the three describe one moment. Every figure is fixed
by ``DEPTH``: nothing here grows with the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DIGIT_BITS = 7
FANOUT = 1 << DIGIT_BITS
DEPTH = 6
KEY_BITS = DIGIT_BITS * DEPTH
#: Keys are 1 .. MAX_WAIT_KEY.
MAX_WAIT_KEY = (1 << KEY_BITS) - 1

RANK_PREFIX = "RANK#"


class WaitKeyOutOfRange(ValueError):
    """A wait key the index cannot hold (no code path makes one before 2165)."""


@dataclass(frozen=True)
class NodeRef:
    """One node on a key's path: its level (0 = root) and index within the level."""

    level: int
    index: int

    @property
    def sort_key(self) -> str:
        # Fixed width, so a partition's nodes sort by level, then by index.
        return f"{RANK_PREFIX}{self.level}#{self.index:013d}"


def check_key(key: int) -> int:
    if not 1 <= key <= MAX_WAIT_KEY:
        raise WaitKeyOutOfRange(f"wait key {key} is outside 1..{MAX_WAIT_KEY}")
    return key


def digit(key: int, level: int) -> int:
    """Which child of its level-``level`` node ``key`` falls under."""
    return (key >> (DIGIT_BITS * (DEPTH - 1 - level))) & (FANOUT - 1)


def node_at(key: int, level: int) -> NodeRef:
    return NodeRef(level, key >> (DIGIT_BITS * (DEPTH - level)))


def path(key: int) -> list[tuple[NodeRef, int]]:
    """The nodes a join or a leave of ``key`` updates, each with the child it counts in."""
    check_key(key)
    return [(node_at(key, level), digit(key, level)) for level in range(DEPTH)]


def nodes_to_read(key: int) -> list[NodeRef]:
    """The nodes whose counts ``count_up_to`` needs: a level whose digit is 0 has no
    children before ``key``'s, so it is skipped, except the leaf (its own cell)."""
    return [node for node, child in path(key) if child > 0 or node.level == DEPTH - 1]


def cell(child: int) -> str:
    """The attribute holding a node's count for ``child``."""
    return f"c{child}"


def child_of(attribute: str) -> int | None:
    """The inverse of ``cell`` (None for other attributes)."""
    if attribute.startswith("c") and attribute[1:].isdigit():
        child = int(attribute[1:])
        return child if child < FANOUT else None
    return None


def count_up_to(key: int, counts: Mapping[NodeRef, Mapping[int, int]]) -> int:
    """Entries counted at keys <= ``key``, from the counts of ``nodes_to_read(key)``.

    A node missing from ``counts`` was never written: all its counts are 0.
    """
    total = 0
    for node, child in path(key):
        children = counts.get(node, {})
        last = child if node.level == DEPTH - 1 else child - 1
        total += sum(n for c, n in children.items() if c <= last)
    return total


def counts_for(keys: Iterable[int]) -> dict[NodeRef, dict[int, int]]:
    """The index's counts for a set of keys, node by node: what their joins would add."""
    counts: dict[NodeRef, dict[int, int]] = {}
    for key in keys:
        for node, child in path(key):
            children = counts.setdefault(node, {})
            children[child] = children.get(child, 0) + 1
    return counts


def counts_from_item(item: Mapping[str, Any]) -> dict[int, int]:
    """A node item's nonzero child counts (a low-level item: values as DynamoDB sends them)."""
    counts: dict[int, int] = {}
    for attribute, value in item.items():
        child = child_of(attribute)
        if child is not None and int(value["N"]) != 0:
            counts[child] = int(value["N"])
    return counts


def node_from_sort_key(sort_key: str) -> NodeRef:
    """The inverse of ``NodeRef.sort_key``; ``ValueError`` for a sort key no code path writes."""
    level, index = sort_key.removeprefix(RANK_PREFIX).split("#")
    node = NodeRef(int(level), int(index))
    if not 0 <= node.level < DEPTH or node.sort_key != sort_key:
        raise ValueError(f"not a position index node: {sort_key!r}")
    return node
