"""The linearizability checker on hand-written histories, before it judges the service.

Each history is small enough to check by eye: the linearizable ones say why an
order exists, the others which answer no order can explain. A generated
history of a few thousand concurrent operations, built by running the model
itself at random moments inside random intervals, must pass (and fast), and
the same history with one answer changed must not.
"""

from __future__ import annotations

import random
import time

import pytest

from devtools.linearizability import (
    Action,
    Answer,
    EventModel,
    Operation,
    Reply,
    State,
    check_event,
    check_history,
)

BOOKED = Answer(Reply.BOOKED)
NONE = Answer(Reply.NONE)
ALREADY_BOOKED = Answer(Reply.ALREADY_BOOKED)
ALREADY_WAITLISTED = Answer(Reply.ALREADY_WAITLISTED)
PASSED_ON = Answer(Reply.GAVE_UP_TICKET, promoted=True)
TO_THE_POOL = Answer(Reply.GAVE_UP_TICKET, promoted=False)
LEFT = Answer(Reply.LEFT_WAITING_LIST)
NOT_HELD = Answer(Reply.NOT_HELD)
UNKNOWN = None


def waitlisted(position: int) -> Answer:
    return Answer(Reply.WAITLISTED, position=position)


def book(person: str, called: float, returned: float | None, answer: Answer | None) -> Operation:
    return Operation(1, person, Action.BOOK, called, returned, answer)


def cancel(person: str, called: float, returned: float | None, answer: Answer | None) -> Operation:
    return Operation(1, person, Action.CANCEL, called, returned, answer)


def standing(
    person: str, called: float, returned: float | None, answer: Answer | None
) -> Operation:
    return Operation(1, person, Action.STANDING, called, returned, answer)


def check(ops: list[Operation], tickets: int = 1) -> bool | None:
    return check_event(1, ops, EventModel(tickets)).linearizable


def test_a_sequential_history_that_follows_the_rules_is_linearizable() -> None:
    assert check(
        [
            book("ann", 0, 1, BOOKED),
            book("bob", 2, 3, waitlisted(1)),
            book("cat", 4, 5, waitlisted(2)),
            book("ann", 6, 7, ALREADY_BOOKED),
            book("cat", 8, 9, ALREADY_WAITLISTED),
            standing("cat", 10, 11, waitlisted(2)),
            cancel("ann", 12, 13, PASSED_ON),
            standing("bob", 14, 15, BOOKED),
            standing("cat", 16, 17, waitlisted(1)),
            cancel("cat", 18, 19, LEFT),
            cancel("bob", 20, 21, TO_THE_POOL),
            cancel("bob", 22, 23, NOT_HELD),
            standing("ann", 24, 25, NONE),
        ]
    )


@pytest.mark.parametrize(
    ("wrong", "why"),
    [
        (book("bob", 2, 3, BOOKED), "one ticket, two holders"),
        (book("bob", 2, 3, waitlisted(2)), "first in line is position 1"),
        (book("ann", 2, 3, ALREADY_WAITLISTED), "ann holds a ticket, not a waiting place"),
        (cancel("bob", 2, 3, LEFT), "bob holds nothing to give up"),
        (cancel("ann", 2, 3, PASSED_ON), "nobody waits to be passed the ticket"),
        (standing("ann", 2, 3, NONE), "ann holds the ticket"),
    ],
)
def test_one_wrong_answer_in_a_sequential_history_is_caught(wrong: Operation, why: str) -> None:
    assert check([book("ann", 0, 1, BOOKED), wrong]) is False, why


def test_real_time_order_is_respected() -> None:
    """Bob's booking started after Ann's returned: it cannot have taken the ticket first."""
    assert not check([book("ann", 0, 1, waitlisted(1)), book("bob", 2, 3, BOOKED)])
    # Overlapping, either order is possible.
    assert check([book("ann", 0, 2, waitlisted(1)), book("bob", 1, 3, BOOKED)])


def test_concurrent_bookings_never_share_a_ticket() -> None:
    assert not check([book("ann", 0, 3, BOOKED), book("bob", 1, 2, BOOKED)])
    assert check([book("ann", 0, 3, BOOKED), book("bob", 1, 2, waitlisted(1))])


def test_a_booking_may_report_a_promotion_that_happened_before_its_answer() -> None:
    """Bob joins the list (his booking's effect), Ann's cancellation passes him the
    ticket, then his booking answers: BOOKED is a moment after its own effect."""
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 10, BOOKED),
        cancel("ann", 3, 4, PASSED_ON),
    ]
    assert check(ops)
    # Without that cancellation Bob could only have been told he waits.
    assert not check([ops[0], ops[1]])


def test_a_booking_may_report_a_position_that_already_moved_up() -> None:
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        book("cat", 4, 10, waitlisted(1)),  # joined at 2, answered after bob left
        cancel("bob", 5, 6, LEFT),
    ]
    assert check(ops)
    # A position that moved *down* (a later joiner counted ahead) fits no moment.
    assert not check([*ops[:2], book("cat", 4, 10, waitlisted(3))])


def test_a_booking_answer_must_describe_a_moment_after_its_effect() -> None:
    """Bob waited before this booking, and was promoted before it began: it may
    not report BOOKED (it is a 409), nor may a booking report the standing of a
    moment before its own effect."""
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        cancel("ann", 4, 5, PASSED_ON),
        book("bob", 6, 7, BOOKED),
    ]
    assert not check(ops)
    assert check([*ops[:3], book("bob", 6, 7, ALREADY_BOOKED)])


def test_the_standing_race_position_zero_is_caught() -> None:
    """The known bug: a standing read WAITLISTED, then the person was promoted, then
    the count found nobody up to their key: WAITLISTED 0. No state says that."""
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        standing("bob", 4, 8, waitlisted(0)),
        cancel("ann", 5, 6, PASSED_ON),
    ]
    verdict = check_event(1, ops, EventModel(1))
    assert verdict.linearizable is False
    assert "standing bob -> WAITLISTED 0" in verdict.explanation


def test_waitlisted_while_already_booked_is_caught() -> None:
    """The promotion returned before the standing was asked: BOOKED is the only answer."""
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        cancel("ann", 4, 5, PASSED_ON),
        standing("bob", 6, 7, waitlisted(1)),
    ]
    verdict = check_event(1, ops, EventModel(1))
    assert verdict.linearizable is False
    assert "standing bob -> WAITLISTED 1" in verdict.explanation
    assert "model: standing BOOKED" in verdict.explanation
    # Asked while the cancellation was in flight, either answer is a real moment.
    assert check([*ops[:2], cancel("ann", 4, 7, PASSED_ON), standing("bob", 6, 8, waitlisted(1))])


def test_a_promotion_out_of_fifo_order_is_caught() -> None:
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        book("cat", 4, 5, waitlisted(2)),
        cancel("ann", 6, 7, PASSED_ON),
        standing("cat", 8, 9, BOOKED),  # the second in line got the ticket
        standing("bob", 10, 11, waitlisted(1)),
    ]
    verdict = check_event(1, ops, EventModel(1))
    assert verdict.linearizable is False
    assert "standing cat -> BOOKED" in verdict.explanation
    # In FIFO order, the same two questions get the other two answers.
    assert check([*ops[:4], standing("bob", 8, 9, BOOKED), standing("cat", 10, 11, waitlisted(1))])


def test_an_unknown_outcome_may_have_taken_effect_at_any_time_after_its_call() -> None:
    base = [book("ann", 0, 1, BOOKED)]
    # Bob's booking got a 503. Later answers may show it took effect...
    assert check([*base, book("bob", 2, None, UNKNOWN), standing("bob", 5, 6, waitlisted(1))])
    # ...or that it did not...
    assert check([*base, book("bob", 2, None, UNKNOWN), standing("bob", 5, 6, NONE)])
    # ...or that it took effect late: not yet at 5-6, by 7-8.
    assert check(
        [
            *base,
            book("bob", 2, None, UNKNOWN),
            standing("bob", 5, 6, NONE),
            standing("bob", 7, 8, waitlisted(1)),
        ]
    )
    # But never before it was sent.
    assert not check([*base, standing("bob", 0.5, 1.5, waitlisted(1)), book("bob", 2, None, None)])
    # And an unknown outcome explains nothing it could not have done.
    assert not check([*base, book("bob", 2, None, UNKNOWN), standing("bob", 5, 6, waitlisted(2))])


def test_an_unknown_cancellation_may_pass_the_ticket_on_later() -> None:
    ops = [
        book("ann", 0, 1, BOOKED),
        book("bob", 2, 3, waitlisted(1)),
        cancel("ann", 4, None, UNKNOWN),
        standing("bob", 5, 6, waitlisted(1)),
        standing("bob", 7, 8, BOOKED),
        book("ann", 9, 10, waitlisted(1)),
    ]
    assert check(ops)
    assert not check([*ops[:5], book("ann", 9, 10, ALREADY_BOOKED)])


def test_two_unknown_outcomes_of_one_person_may_both_land_late() -> None:
    """Ann's cancellation and her new booking both got 503s. Both may have taken
    effect after Bob joined: her ticket went to Bob, and she joined behind him."""
    ops = [
        book("ann", 0, 1, BOOKED),
        cancel("ann", 2, None, UNKNOWN),
        book("ann", 3, None, UNKNOWN),
        book("bob", 4, 5, waitlisted(1)),
        standing("bob", 6, 7, BOOKED),
        standing("ann", 8, 9, waitlisted(1)),
    ]
    assert check(ops)
    assert check([*ops[:5], standing("ann", 8, 9, NONE)])  # her booking never happened
    assert not check([*ops[:5], standing("ann", 8, 9, BOOKED)])  # Bob has the only ticket


def test_alike_unknown_outcomes_are_interchangeable() -> None:
    """Three 503'd bookings by Ann: any one of them may be the one that happened."""
    ops = [
        book("ann", 0, None, UNKNOWN),
        book("bob", 1, 2, BOOKED),
        book("ann", 3, None, UNKNOWN),
        book("ann", 4, None, UNKNOWN),
        standing("ann", 5, 6, waitlisted(1)),
    ]
    assert check(ops)
    assert not check([*ops[:4], standing("ann", 5, 6, waitlisted(2))])


def test_unknown_standings_constrain_nothing() -> None:
    assert check([book("ann", 0, 1, BOOKED), standing("ann", 2, None, UNKNOWN)])


def test_events_are_checked_apart() -> None:
    ops = [
        Operation(1, "ann", Action.BOOK, 0, 1, BOOKED),
        Operation(2, "ann", Action.BOOK, 0, 1, BOOKED),
        Operation(2, "bob", Action.BOOK, 2, 3, waitlisted(1)),
        Operation(1, "bob", Action.BOOK, 2, 3, BOOKED),
    ]
    verdict = check_history(ops, {1: 2, 2: 1})
    assert verdict.linearizable is True
    assert [v.operations for v in verdict.events] == [2, 2]
    assert check_history(ops, {1: 1, 2: 1}).linearizable is False


def test_an_exhausted_budget_is_undecided_not_a_pass() -> None:
    """Fourteen 503'd bookings may have joined the list in any order, or not at all:
    ruling out an answer nobody could give means trying them all, past the budget."""
    ops = [book(f"p{n}", n, None, UNKNOWN) for n in range(14)]
    ops.append(standing("ann", 20, 21, waitlisted(1)))
    verdict = check_event(1, ops, EventModel(1), max_configurations=10_000)
    assert verdict.linearizable is None
    assert "budget exhausted" in verdict.explanation


# -- generated histories -------------------------------------------------------------------


def generated_history(
    rng: random.Random, operations: int, clients: int, tickets: int = 3, people: int = 8
) -> list[Operation]:
    """Concurrent operations whose answers come from running the model at random
    moments inside their intervals (a booking observed at a later moment than its
    effect), some with their outcome hidden from the client: linearizable by construction.

    Each client sends one request at a time, for a person nobody else is acting for.
    """
    model = EventModel(tickets)
    names = [f"p{n}" for n in range(people)]
    busy_until = dict.fromkeys(names, 0.0)
    clock = [0.0] * clients
    points: list[tuple[float, int, int]] = []  # (moment, 0 effect / 1 observation, index)
    drafts: list[tuple[str, Action, float, float, bool]] = []
    for n in range(operations):
        client = n % clients
        free = [p for p in names if busy_until[p] <= clock[client]]
        person = rng.choice(free or names)
        called = max(clock[client], busy_until[person]) + rng.expovariate(10)
        returned = called + rng.expovariate(2)
        clock[client] = busy_until[person] = returned
        action = rng.choice(list(Action))
        hidden = rng.random() < 0.02
        drafts.append((person, action, called, returned, hidden))
        effect = rng.uniform(called, returned)
        if not (hidden and rng.random() < 0.5):  # half the hidden ones never happen
            points.append((effect, 0, n))
        if action == Action.BOOK:
            points.append((rng.uniform(effect, returned), 1, n))
    state: State = (frozenset(), ())
    answers: dict[int, Answer] = {}
    for _, kind, n in sorted(points):
        person, action = drafts[n][0], drafts[n][1]
        if kind == 1:
            if answers.get(n, ALREADY_BOOKED).reply in (Reply.BOOKED, Reply.WAITLISTED):
                answers[n] = model.standing(state, person)
        elif action == Action.BOOK:
            state, answers[n] = model.book(state, person)
        elif action == Action.CANCEL:
            state, answers[n] = model.cancel(state, person)
        else:
            answers[n] = model.standing(state, person)
    return [
        Operation(
            1,
            person,
            action,
            called,
            None if hidden else returned,
            None if hidden else answers.get(n),
            client=f"c{n % clients}",
        )
        for n, (person, action, called, returned, hidden) in enumerate(drafts)
    ]


def corrupt(op: Operation) -> Operation:
    """The same booking or standing answered with a position no state of the event has
    (8 people, 3 tickets: at most 5 wait), which only an exhaustive search can rule out."""
    assert op.action != Action.CANCEL
    wrong = Answer(Reply.WAITLISTED, position=6)
    return Operation(op.event_id, op.person, op.action, op.called, op.returned, wrong)


@pytest.mark.parametrize("seed", range(5))
def test_generated_concurrent_histories_are_linearizable(seed: int) -> None:
    ops = generated_history(random.Random(seed), operations=1500, clients=8)
    started = time.perf_counter()
    verdict = check_event(1, ops, EventModel(3))
    assert verdict.linearizable is True, verdict.explanation
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("seed", range(5))
def test_generated_histories_with_one_impossible_answer_are_not(seed: int) -> None:
    rng = random.Random(seed)
    ops = generated_history(rng, operations=300, clients=6)
    known = [i for i, op in enumerate(ops) if op.answer and op.action != Action.CANCEL]
    victim = rng.choice(known)
    ops[victim] = corrupt(ops[victim])
    verdict = check_event(1, ops, EventModel(3), max_seconds=30)
    assert verdict.linearizable is False, ops[victim]
