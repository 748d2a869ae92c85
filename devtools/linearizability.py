"""A linearizability checker for the booking service's answers.

The service promises that **every answer describes the person's standing at one
moment during the request, with status and position taken from that same
moment**. Whether a concurrent history of answers keeps that promise is a
linearizability question: is there one sequential order of the operations,
consistent with real time (an operation that returned before another was called
comes first), in which a plain model of one event gives every answer the
clients saw? ``tests/test_history.py`` records such histories on DynamoDB Local
under faults and asks this module.

The search is the one Wing & Gong described and Lowe made practical, as
Porcupine and Knossos implement it: walk the history's call and return entries
in time order, try each operation that may come next (it was called before the
first pending return), step the model, backtrack when stuck, and memoise each
visited (set of linearised operations, model state) pair so no configuration is
explored twice. That alone copes with long histories as long as every outcome
is known; unknown outcomes make it exponential. On generated histories of 1,500
operations with about 30 unknown outcomes it took up to 1.6 s to accept one
and, with one answer made impossible, often ran out of a 60 s budget before
rejecting it; with the reductions below it accepts in under 0.2 s and rejects
within 20 s. Each keeps the search complete (it finds an order whenever one exists):

* A step that leaves the state unchanged (a standing, a 409, a 404, a booking's
  observation) and fits the current state is taken at once, without trying
  the alternatives: a read can always move earlier within its interval to a
  point where it fits, so if it fits now and the search fails from here, it
  fails from this node whichever step comes first.
* An operation whose outcome the client never learned (a 503, a timeout) may
  take effect at any time after its call, or never (Porcupine's treatment of
  crashed operations). "Never" is the same as "last of all", so such an
  operation is tried only after the others, and never where it changes
  nothing. Whether a person holds a place changes only through their own
  operations, so it is not tried where it would contradict the person's next
  known answer, unless another of their unknown outcomes could undo it first.
  Of several alike (same person, same action) only the earliest sent is tried:
  once all are sent they are interchangeable.
* A configuration that reached the same state with the same known-outcome
  steps placed, having used *fewer* unknown outcomes, had every option this one
  has; if it failed, this one fails too (a subsumption memo, not only equality).

Histories are checked per event: events share nothing, so each is its own
smaller search (Porcupine's partitioning). A budget in seconds and in visited
configurations bounds each search; an exhausted budget is reported as
"undecided", never as a pass.

How the contract's allowances map onto the model:

* ``standing``, ``cancel`` and a 409 from ``book`` are one atomic step each.
* A booking (201 / 202) is two steps in its interval: its **effect** (it takes
  a free ticket or joins the end of the list; any other outcome does not fit)
  and, at the same moment or later, an **observation** of the same person's
  standing that must equal the answer. So a waiter promoted before the answer
  is sent may read BOOKED, and a position may already have moved up, but an
  answer that describes no single moment (position 0, or WAITLISTED while
  holding a ticket) fits nowhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# -- histories -------------------------------------------------------------------------


class Action(StrEnum):
    BOOK = "book"
    CANCEL = "cancel"
    STANDING = "standing"


class Reply(StrEnum):
    """The answers the model can give, one per distinct thing a client can be told."""

    BOOKED = "BOOKED"  # book 201, standing BOOKED
    WAITLISTED = "WAITLISTED"  # book 202, standing WAITLISTED (with a position)
    NONE = "NONE"  # standing: no place
    ALREADY_BOOKED = "ALREADY_BOOKED"  # book 409: holds a ticket
    ALREADY_WAITLISTED = "ALREADY_WAITLISTED"  # book 409: holds a waiting place
    GAVE_UP_TICKET = "GAVE_UP_TICKET"  # cancel 200, previousStatus BOOKED (``promoted`` says more)
    LEFT_WAITING_LIST = "LEFT_WAITING_LIST"  # cancel 200, previousStatus WAITLISTED
    NOT_HELD = "NOT_HELD"  # cancel 404


@dataclass(frozen=True)
class Answer:
    """What the service said, reduced to what the model predicts.

    ``position`` only for WAITLISTED; ``promoted`` only for GAVE_UP_TICKET
    (``ticketPassedToWaitingList``).
    """

    reply: Reply
    position: int | None = None
    promoted: bool | None = None

    def __str__(self) -> str:
        if self.reply == Reply.WAITLISTED:
            return f"WAITLISTED {self.position}"
        if self.reply == Reply.GAVE_UP_TICKET:
            return "GAVE_UP_TICKET (" + ("passed on" if self.promoted else "to the pool") + ")"
        return str(self.reply)


@dataclass(frozen=True)
class Operation:
    """One request as its client saw it.

    ``returned`` and ``answer`` are None when the client never learned the
    outcome (503, timeout, dropped connection): the operation may then have
    taken effect at any moment after ``called``, or never.
    """

    event_id: int
    person: str
    action: Action
    called: float
    returned: float | None
    answer: Answer | None
    client: str = ""

    @property
    def unknown(self) -> bool:
        return self.answer is None

    def describe(self, origin: float = 0.0) -> str:
        end = "..." if self.returned is None else f"{self.returned - origin:.3f}"
        told = "outcome unknown" if self.answer is None else str(self.answer)
        who = f" by {self.client}" if self.client else ""
        return f"[{self.called - origin:.3f}, {end}] {self.action} {self.person} -> {told}{who}"


# -- the sequential model of one event -------------------------------------------------

#: (ticket holders, waiting list in FIFO order). Hashable: it is half of a memo key.
State = tuple[frozenset[str], tuple[str, ...]]
EMPTY: State = (frozenset(), ())


@dataclass(frozen=True)
class EventModel:
    """One event as the service specifies it, one operation at a time."""

    total_tickets: int

    def standing(self, state: State, person: str) -> Answer:
        holders, waiting = state
        if person in holders:
            return Answer(Reply.BOOKED)
        if person in waiting:
            return Answer(Reply.WAITLISTED, position=waiting.index(person) + 1)
        return Answer(Reply.NONE)

    def book(self, state: State, person: str) -> tuple[State, Answer]:
        """A free ticket, else the end of the waiting list; 409 for a second place."""
        holders, waiting = state
        if person in holders:
            return state, Answer(Reply.ALREADY_BOOKED)
        if person in waiting:
            return state, Answer(Reply.ALREADY_WAITLISTED)
        if len(holders) < self.total_tickets:
            return (holders | {person}, waiting), Answer(Reply.BOOKED)
        waiting = (*waiting, person)
        return (holders, waiting), Answer(Reply.WAITLISTED, position=len(waiting))

    def cancel(self, state: State, person: str) -> tuple[State, Answer]:
        """A ticket goes to the head of the list (or back to the pool); a waiter leaves."""
        holders, waiting = state
        if person in holders:
            if waiting:
                promoted = (holders - {person}) | {waiting[0]}
                return (promoted, waiting[1:]), Answer(Reply.GAVE_UP_TICKET, promoted=True)
            return (holders - {person}, waiting), Answer(Reply.GAVE_UP_TICKET, promoted=False)
        if person in waiting:
            left = tuple(p for p in waiting if p != person)
            return (holders, left), Answer(Reply.LEFT_WAITING_LIST)
        return state, Answer(Reply.NOT_HELD)


def describe_state(state: State) -> str:
    holders, waiting = state
    return f"tickets held by {{{', '.join(sorted(holders))}}}, waiting [{', '.join(waiting)}]"


def impossible_answers(operations: Iterable[Operation]) -> list[tuple[Operation, str]]:
    """Answers no state of any event can produce, with why (positions are 1-based)."""
    return [
        (op, "a waiting position is 1 or more (1 = next in line)")
        for op in operations
        if op.answer is not None
        and op.answer.reply == Reply.WAITLISTED
        and (op.answer.position is None or op.answer.position < 1)
    ]


# -- the steps the search orders ---------------------------------------------------------

Apply = Callable[[State], "State | None"]


@dataclass
class _Step:
    """One linearisation point: an operation, or one of a booking's two points."""

    op: int  # index of the operation in the event's history
    person: str
    role: str  # "" (the whole operation), "effect" or "observation"
    called: float
    returned: float  # inf while the outcome is unknown
    pending: bool  # outcome unknown: optional, unconstrained
    read_only: bool  # when it fits, it leaves the state as it was
    #: Known outcome: whether the person must hold a place (a ticket or a waiting
    #: place) for it to fit. Unknown outcome: whether they hold one after it.
    holds: bool
    requires: int  # a step that must come first (a booking's effect), or -1
    apply: Apply  # the state after it, or None if the observed answer does not fit


def _steps(model: EventModel, index: int, op: Operation) -> list[_Step]:
    """The linearisation points of one operation, each checking its part of the answer."""
    person, answer = op.person, op.answer
    called, returned = op.called, (math.inf if op.returned is None else op.returned)

    def step(
        apply: Apply, read_only: bool, holds: bool, role: str = "", requires: int = -1
    ) -> _Step:
        pending = answer is None
        return _Step(
            index, person, role, called, returned, pending, read_only, holds, requires, apply
        )

    if answer is None:
        if op.action == Action.STANDING:
            return []  # no effect and no answer: it constrains nothing
        effect = model.book if op.action == Action.BOOK else model.cancel
        return [step(lambda s: effect(s, person)[0], False, holds=op.action == Action.BOOK)]

    if op.action == Action.STANDING:
        holds = answer.reply != Reply.NONE
        return [step(lambda s: s if model.standing(s, person) == answer else None, True, holds)]

    if op.action == Action.CANCEL:
        if answer.reply == Reply.NOT_HELD:
            return [
                step(lambda s: s if model.cancel(s, person)[1] == answer else None, True, False)
            ]

        def cancel(s: State) -> State | None:
            after, said = model.cancel(s, person)
            return after if said == answer else None

        return [step(cancel, read_only=False, holds=True)]

    if answer.reply in (Reply.ALREADY_BOOKED, Reply.ALREADY_WAITLISTED):
        return [step(lambda s: s if model.book(s, person)[1] == answer else None, True, True)]

    def book(s: State) -> State | None:
        after, said = model.book(s, person)
        return after if said.reply in (Reply.BOOKED, Reply.WAITLISTED) else None

    return [
        step(book, read_only=False, holds=False, role="effect"),
        step(
            lambda s: s if model.standing(s, person) == answer else None,
            read_only=True,
            holds=True,
            role="observation",
            requires=-2,  # filled in by the caller: the index of the effect step
        ),
    ]


# -- verdicts ----------------------------------------------------------------------------


@dataclass
class EventVerdict:
    """The outcome for one event: ``linearizable`` is None when the budget ran out."""

    event_id: int
    linearizable: bool | None
    operations: int
    unknown_outcomes: int
    configurations: int
    seconds: float
    explanation: str = ""


@dataclass
class HistoryVerdict:
    events: list[EventVerdict] = field(default_factory=list)

    @property
    def linearizable(self) -> bool | None:
        """True if every event is, False if any is not, None if undecided."""
        if any(v.linearizable is False for v in self.events):
            return False
        if any(v.linearizable is None for v in self.events):
            return None
        return True

    @property
    def operations(self) -> int:
        return sum(v.operations for v in self.events)

    @property
    def seconds(self) -> float:
        return sum(v.seconds for v in self.events)

    def report(self) -> str:
        lines = []
        for v in self.events:
            verdict = {True: "linearizable", False: "NOT linearizable", None: "undecided"}[
                v.linearizable
            ]
            lines.append(
                f"event {v.event_id}: {verdict}: {v.operations} operations "
                f"({v.unknown_outcomes} with unknown outcome), {v.configurations} configurations, "
                f"{v.seconds:.2f} s"
            )
            if v.explanation:
                lines.append(v.explanation)
        return "\n".join(lines)


# -- the search --------------------------------------------------------------------------

#: How many of the deepest prefix's last steps an explanation shows.
TAIL = 8


def check_history(
    operations: Sequence[Operation],
    total_tickets: Mapping[int, int],
    max_seconds: float = 60.0,
    max_configurations: int = 2_000_000,
) -> HistoryVerdict:
    """Check each event's operations on their own; the budget applies per event."""
    by_event: dict[int, list[Operation]] = {}
    for op in operations:
        by_event.setdefault(op.event_id, []).append(op)
    origin = min((op.called for op in operations), default=0.0)
    return HistoryVerdict(
        [
            check_event(
                event_id,
                by_event[event_id],
                EventModel(total_tickets[event_id]),
                max_seconds,
                max_configurations,
                origin,
            )
            for event_id in sorted(by_event)
        ]
    )


def check_event(
    event_id: int,
    operations: Sequence[Operation],
    model: EventModel,
    max_seconds: float = 60.0,
    max_configurations: int = 2_000_000,
    origin: float = 0.0,
) -> EventVerdict:
    """Is there an order of ``operations`` (all of one event) that the model accepts?"""
    started = time.perf_counter()
    ops = sorted(operations, key=lambda op: op.called)
    unknown = sum(1 for op in ops if op.unknown)

    def verdict(ok: bool | None, configurations: int, explanation: str = "") -> EventVerdict:
        seconds = time.perf_counter() - started
        return EventVerdict(event_id, ok, len(ops), unknown, configurations, seconds, explanation)

    impossible = impossible_answers(ops)
    if impossible:
        lines = [f"  answers no state can produce ({len(impossible)}):"]
        lines += [f"    {op.describe(origin)}: {why}" for op, why in impossible[:TAIL]]
        return verdict(False, 0, "\n".join(lines))

    search = _Search(model, ops, max_seconds, max_configurations)
    ok = search.run()
    explanation = "" if ok else search.explain(origin, exhausted=ok is None)
    return verdict(ok, search.configurations, explanation)


class _Search:
    """The WGL search over one event's steps (see the module docstring).

    The history is a doubly linked list of call and return entries in time
    order, as in Lowe's and Porcupine's implementations: linearising a step
    lifts its two entries out of the list, backtracking puts them back.
    """

    def __init__(
        self, model: EventModel, ops: list[Operation], max_seconds: float, max_configs: int
    ) -> None:
        self.model, self.ops = model, ops
        self.deadline = time.perf_counter() + max_seconds
        self.max_configs = max_configs
        steps: list[_Step] = []
        for index, op in enumerate(ops):
            for step in _steps(model, index, op):
                if step.requires == -2:
                    step.requires = len(steps) - 1  # the booking's effect, just added
                steps.append(step)
        self.steps = steps
        # Entries: 0 is the head sentinel, then (time, call before return) order.
        # Calls sort before returns at equal times: equal timestamps overlap.
        order = sorted(
            [(s.called, 0, i) for i, s in enumerate(steps)]
            + [(s.returned, 1, i) for i, s in enumerate(steps)]
        )
        size = len(order) + 1
        self.step_of = [-1] + [i for _, _, i in order]
        self.is_return = [False] + [kind == 1 for _, kind, _ in order]
        self.next = [*range(1, size), 0]  # 0 also ends the list
        self.prev = [size - 1, *range(size - 1)]
        self.call_entry = [0] * len(steps)
        self.return_entry = [0] * len(steps)
        for entry in range(1, size):
            target = self.return_entry if self.is_return[entry] else self.call_entry
            target[self.step_of[entry]] = entry
        self.pending_mask = sum(1 << i for i, s in enumerate(steps) if s.pending)
        #: Each person's steps, in call order, and how far the known-outcome ones
        #: are all placed (kept up to date as steps are placed and taken back).
        self.placed = [False] * len(steps)
        self.known_of: dict[str, list[int]] = {}
        self.pending_of: dict[str, list[int]] = {}
        self.rank = [0] * len(steps)
        for i, s in enumerate(steps):
            mine = (self.pending_of if s.pending else self.known_of).setdefault(s.person, [])
            self.rank[i] = len(mine)
            mine.append(i)
        self.first_unplaced = dict.fromkeys(self.known_of, 0)
        #: For each unknown-outcome step, the earlier ones of the same person and action.
        self.twins_before: dict[int, list[int]] = {}
        for mine in self.pending_of.values():
            for later in mine:
                self.twins_before[later] = [
                    earlier
                    for earlier in mine
                    if earlier < later
                    and ops[steps[earlier].op].action == ops[steps[later].op].action
                ]
        #: Configurations already explored (and failed): (placed steps with a known
        #: outcome, state) -> the sets of unknown-outcome steps applied on the way.
        self.seen: dict[tuple[int, State], list[int]] = {}
        self.configurations = 0
        self.best_placed = -1
        self.best: tuple[State, int, list[tuple[int, State]]] = (EMPTY, 0, [])

    # dancing links
    def _lift(self, step: int) -> None:
        self.placed[step] = True
        s = self.steps[step]
        if not s.pending:
            mine, cursor = self.known_of[s.person], self.first_unplaced[s.person]
            while cursor < len(mine) and self.placed[mine[cursor]]:
                cursor += 1
            self.first_unplaced[s.person] = cursor
        for entry in (self.call_entry[step], self.return_entry[step]):
            self.next[self.prev[entry]] = self.next[entry]
            self.prev[self.next[entry]] = self.prev[entry]

    def _unlift(self, step: int) -> None:
        self.placed[step] = False
        s = self.steps[step]
        if not s.pending:
            self.first_unplaced[s.person] = min(self.first_unplaced[s.person], self.rank[step])
        for entry in (self.return_entry[step], self.call_entry[step]):
            self.next[self.prev[entry]] = entry
            self.prev[self.next[entry]] = entry

    def _children(self, state: State, linearized: int) -> list[tuple[int, State]] | None:
        """The steps that may come next and the states they lead to; None: all placed.

        A fitting read-only step is the only child (see the module docstring);
        steps with an unknown outcome come last, only where they change something
        and the person's next known answer allows it (``_person_may_need``), and of
        several alike (same person, same action) only the first sent is tried: they
        are interchangeable once all are sent.
        """
        children: list[tuple[int, State]] = []
        optional: list[tuple[int, State]] = []
        entry = self.next[0]
        while entry and not self.is_return[entry]:
            index = self.step_of[entry]
            step = self.steps[index]
            entry = self.next[entry]
            if step.requires >= 0 and not self.placed[step.requires]:
                continue
            after = step.apply(state)
            if after is None:
                continue
            if step.read_only and not step.pending:
                return [(index, state)]
            if not step.pending:
                children.append((index, after))
            elif (
                after != state
                and not any(not self.placed[twin] for twin in self.twins_before[index])
                and self._person_may_need(step)
            ):
                optional.append((index, after))
        if not entry or self.steps[self.step_of[entry]].pending:
            return None  # every step with a known outcome is placed
        return children + optional

    def _explored(self, linearized: int, state: State) -> bool:
        """Whether an explored configuration covers this one; if not, remember it.

        Every explored configuration failed (the search stops at the first
        success), and one that reached the same state with the same known-outcome
        steps placed while applying *fewer* unknown-outcome steps had every
        option this one has, and more.
        """
        applied = linearized & self.pending_mask
        key = (linearized ^ applied, state)
        found = self.seen.get(key)
        if found is None:
            self.seen[key] = [applied]
            return False
        if any(earlier & ~applied == 0 for earlier in found):
            return True
        found.append(applied)
        return False

    def _person_may_need(self, step: _Step) -> bool:
        """Whether applying the unknown-outcome ``step`` now can lead anywhere.

        Whether a person holds a place (a ticket or a waiting place) changes only
        through their own operations: a promotion keeps it, nobody else's
        cancellation takes it. So once this step has given or taken the person's
        place, the person's next operation with a known answer must agree,
        unless another of their unknown-outcome steps, sent before that
        operation returned, could change it back first.
        """
        mine = self.known_of.get(step.person, [])
        cursor = self.first_unplaced.get(step.person, 0)
        # The person's known steps that may be placed next (none returned before
        # they were called), and the latest moment one of them can be placed.
        first_return, last_return, agrees = math.inf, -math.inf, False
        while cursor < len(mine):
            nxt = self.steps[mine[cursor]]
            if nxt.called > first_return:
                break
            if not self.placed[mine[cursor]]:
                first_return = min(first_return, nxt.returned)
                last_return = max(last_return, nxt.returned)
                agrees = agrees or nxt.holds == step.holds
            cursor += 1
        if agrees or first_return == math.inf:
            return True  # it agrees, or the person has no later known answer
        return any(
            not self.placed[j]
            and self.steps[j].holds != step.holds
            and self.steps[j].called <= last_return
            for j in self.pending_of[step.person]
        )

    def run(self) -> bool | None:
        """True: a linearisation exists; False: none does; None: out of budget."""
        state, linearized, placed = EMPTY, 0, 0
        stack: list[tuple[int, State, int, list[tuple[int, State]], int]] = []
        children = self._children(state, linearized)
        tried = 0
        while True:
            if children is None:
                return True
            if placed > self.best_placed:
                tail = [(s, before) for s, before, _, _, _ in stack[-TAIL:]]
                self.best_placed, self.best = placed, (state, linearized, tail)
            moved = False
            while tried < len(children):
                index, after = children[tried]
                tried += 1
                grown = linearized | (1 << index)
                if self._explored(grown, after):
                    continue
                self.configurations += 1
                if self.configurations % 4096 == 0 and (
                    self.configurations >= self.max_configs or time.perf_counter() > self.deadline
                ):
                    return None
                stack.append((index, state, linearized, children, tried))
                self._lift(index)
                state, linearized = after, grown
                placed += not self.steps[index].pending
                children, tried, moved = self._children(state, linearized), 0, True
                break
            if moved:
                continue
            if not stack:
                return False
            index, state, linearized, children, tried = stack.pop()
            placed -= not self.steps[index].pending
            self._unlift(index)

    def explain(self, origin: float, exhausted: bool) -> str:
        """The deepest point the search reached, and why nothing fits after it."""
        state, linearized, tail = self.best
        steps, ops = self.steps, self.ops
        known = sum(1 for s in steps if not s.pending)
        lines = [
            "  search budget exhausted; deepest point reached:"
            if exhausted
            else "  no order of the operations fits the model; the longest that does:",
            f"  {self.best_placed} of {known} steps placed; its last steps (state after each):",
        ]
        for position, (index, _) in enumerate(tail):
            after = tail[position + 1][1] if position + 1 < len(tail) else state
            step = steps[index]
            role = f" ({step.role})" if step.role else ""
            lines.append(
                f"    #{step.op} {ops[step.op].describe(origin)}{role}  => {describe_state(after)}"
            )
        lines.append(f"  from {describe_state(state)}, nothing that may come next fits:")
        lines += [f"    {line}" for line in self._misfits(state, linearized, origin)]
        return "\n".join(lines)

    def _misfits(self, state: State, linearized: int, origin: float) -> list[str]:
        """Each step that could come next at (state, linearized), with what the model says."""
        waiting = [
            i for i, s in enumerate(self.steps) if not (linearized >> i) & 1 and not s.pending
        ]
        if not waiting:
            return []
        deadline = min(self.steps[i].returned for i in waiting)
        lines = []
        for i, step in enumerate(self.steps):
            if (linearized >> i) & 1 or step.called > deadline:
                continue
            if step.requires >= 0 and not (linearized >> step.requires) & 1:
                continue
            op = self.ops[step.op]
            if step.pending:
                lines.append(f"#{step.op} {op.describe(origin)} (may also never happen)")
                continue
            model_says = self._model_answer(state, op, step.role)
            must = (
                " <- must be placed before anything called later"
                if (step.returned == deadline)
                else ""
            )
            role = f" ({step.role})" if step.role else ""
            lines.append(f"#{step.op} {op.describe(origin)}{role}; model: {model_says}{must}")
        return lines

    def _model_answer(self, state: State, op: Operation, role: str) -> str:
        if op.action == Action.STANDING or role == "observation":
            return f"standing {self.model.standing(state, op.person)}"
        if op.action == Action.BOOK:
            return str(self.model.book(state, op.person)[1])
        return str(self.model.cancel(state, op.person)[1])
