"""The audit in bounded steps: resuming from a cursor reaches the verdict of one long read.

An event of 2,500 places (written straight into DynamoDB Local with the
service's item mapping, ``devtools.synthetic``) is audited twice: in one step
with no limit, and in steps of at most 3 pages of 100 items, each step's cursor
carried through JSON as a queue message would carry it. Clean or corrupted
(each corruption placed so that the items involved sit on different pages), the
verdicts must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.audit import Budget, EventVerdict, audit_events, audit_step, audit_to_end
from chalicelib.audit.cursor import EventCursor
from chalicelib.audit.rules import MAX_UNNORMALISED
from chalicelib.storage import TicketStore, ranks
from chalicelib.storage.items import number, string
from chalicelib.storage.schema import Key, event_key, event_partition, person_key, rank_node_key
from devtools import audit as audit_cli
from devtools import audit_scale
from devtools.dynamodb_local import DynamoDBLocal, local_client
from devtools.synthetic import WAIT_BASE, email, event_items, synthetic_event, write_event
from devtools.tables import create_table_if_missing
from tests.conftest import Api, moto_only, unique_table_name

PLACES = 2_500
ONE_READ = Budget(page_size=10_000, max_pages=10_000)
SMALL_STEPS = Budget(page_size=100, max_pages=3)
EVENT = 1
#: A second place for the person of place 2,400, under a key that sorts on the first page.
TWIN = email(EVENT, 2_400).replace("p", "P", 1).replace("example", "Example")


def update_event(store: TicketStore, expression: str) -> None:
    """Change the event's counters by ``:one`` (bypassing the service, as a bug would)."""
    store.client.update_item(
        TableName=store.table_name,
        Key=event_key(EVENT),
        UpdateExpression=expression,
        ExpressionAttributeValues={":one": number(1)},
    )


def update_place(store: TicketStore, i: int, expression: str, **values: Any) -> None:
    store.client.update_item(
        TableName=store.table_name,
        Key=person_key(EVENT, email(EVENT, i)),
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
        **({"ExpressionAttributeNames": {"#s": "status"}} if "#s" in expression else {}),
    )


def add_twin(store: TicketStore) -> None:
    store.client.put_item(
        TableName=store.table_name, Item={**person_key(EVENT, TWIN), "status": string("BOOKED")}
    )
    update_event(
        store, "SET bookedTickets = bookedTickets + :one, totalTickets = totalTickets + :one"
    )


#: The leaf of the index that counts place 0's wait key.
LEAF_OF_0, CHILD_OF_0 = ranks.path(WAIT_BASE + PLACES)[-1]


def skip_index_count(store: TicketStore, i: int) -> None:
    """Take place ``i``'s count out of its leaf, as a join that skipped it would leave it."""
    assert i == 0
    store.client.update_item(
        TableName=store.table_name,
        Key=rank_node_key(EVENT, LEAF_OF_0),
        UpdateExpression="ADD #c :minus",
        ExpressionAttributeNames={"#c": ranks.cell(CHILD_OF_0)},
        ExpressionAttributeValues={":minus": number(-1)},
    )


# Place i waits when i % 3 == 0, with wait key WAIT_BASE + (PLACES - i): place 2,499 heads
# the list (last page); place 1 is booked (first page). Each: the keys it touches, and how.
CORRUPTIONS: dict[str, tuple[list[Key], Callable[[TicketStore], None]]] = {
    "booked-count": (
        [event_key(EVENT)],
        lambda s: update_event(
            s, "SET bookedTickets = bookedTickets + :one, totalTickets = totalTickets + :one"
        ),
    ),
    "one-place-per-person": ([event_key(EVENT), person_key(EVENT, TWIN)], add_twin),
    "no-wait-while-available": (
        [event_key(EVENT)],
        lambda s: update_event(
            s, "SET availableTickets = :one, totalTickets = totalTickets + :one"
        ),
    ),
    "waiting-order": (
        [person_key(EVENT, email(EVENT, 0))],
        lambda s: update_place(s, 0, "SET waitKey = :k", **{":k": number(WAIT_BASE + 1)}),
    ),
    "fifo-promotion": (
        [person_key(EVENT, email(EVENT, 1))],
        lambda s: update_place(
            s, 1, "SET promotedFromWaitKey = :k", **{":k": number(WAIT_BASE + 10)}
        ),
    ),
    "position-index": ([rank_node_key(EVENT, LEAF_OF_0)], lambda s: skip_index_count(s, 0)),
    "status": (
        [person_key(EVENT, email(EVENT, 2_498))],
        lambda s: update_place(s, 2_498, "SET #s = :s", **{":s": string("LOST")}),
    ),
}


@pytest.fixture(scope="module")
def big_event(dynamodb_local: DynamoDBLocal) -> Iterator[TicketStore]:
    """One table on DynamoDB Local holding event 1 with 2,500 places, written once."""
    client = local_client(dynamodb_local.endpoint_url)
    table = unique_table_name()
    create_table_if_missing(client, table, stream=False)
    write_event(client, table, EVENT, PLACES)
    yield TicketStore(client, table)
    client.delete_table(TableName=table)


@contextmanager
def corrupted(store: TicketStore, corruption: str | None) -> Iterator[None]:
    """Apply a corruption for the duration, then put back every item it touched."""
    if corruption is None:
        yield
        return
    keys, corrupt = CORRUPTIONS[corruption]
    table = store.table_name
    saved = [store.client.get_item(TableName=table, Key=key).get("Item") for key in keys]
    corrupt(store)
    try:
        yield
    finally:
        for key, item in zip(keys, saved, strict=True):
            if item is None:
                store.client.delete_item(TableName=table, Key=key)
            else:
                store.client.put_item(TableName=table, Item=item)


def rules_of(verdict: EventVerdict) -> set[str]:
    return {v.rule for v in verdict.violations}


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("corruption", [None, *sorted(CORRUPTIONS)])
def test_resumed_audit_reaches_the_one_shot_verdict(
    big_event: TicketStore, corruption: str | None
) -> None:
    with corrupted(big_event, corruption):
        one_shot = audit_to_end(big_event, EVENT, ONE_READ)
        resumed = audit_to_end(big_event, EVENT, SMALL_STEPS)

    assert resumed.violations == one_shot.violations
    assert resumed.attempts == one_shot.attempts
    assert one_shot.steps == 1
    # Per read, 26 pages of the partition (2,501 items) + 9 of the waiting list (834
    # entries); 3 pages a step, and a re-read carries on in the step that found the violation.
    assert resumed.pages == 35 * resumed.attempts
    assert resumed.steps == -(-resumed.pages // 3)
    if corruption is None:
        assert resumed.clean and resumed.attempts == 1
        written = len(event_items(synthetic_event(EVENT, PLACES)))  # index nodes too
        assert resumed.items == written + (PLACES + 2) // 3
    else:
        assert corruption in rules_of(resumed), resumed.violations
        assert resumed.attempts == 3  # found, then confirmed by two more reads


@moto_only
def test_each_step_reads_at_most_its_budget_and_resumes_where_it_stopped(
    store: TicketStore,
) -> None:
    write_event(store.client, store.table_name, EVENT, 250)  # 251 items: 3 pages of 100
    pages_read: list[int] = []
    cursor: EventCursor | EventVerdict = EventCursor.start(EVENT)
    while isinstance(cursor, EventCursor):
        before = cursor.pages
        cursor = audit_step(store, cursor, Budget(page_size=100, max_pages=2))
        pages_read.append(cursor.pages - before)
    # partition: 100 + 100 + 51 items (3 pages); waiting list: 84 entries (1 page).
    assert pages_read == [2, 2]
    assert cursor.clean and cursor.steps == 2 and cursor.pages == 4


@moto_only
def test_a_step_stops_when_the_invocation_runs_short_of_time(store: TicketStore) -> None:
    write_event(store.client, store.table_name, EVENT, 250)
    clock = iter([60_000, 40_000, 20_000])  # ms left before pages 2, 3, 4
    budget = Budget(
        page_size=100, max_pages=100, time_left_ms=lambda: next(clock), reserve_ms=30_000
    )

    outcome = audit_step(store, EventCursor.start(EVENT), budget)

    assert isinstance(outcome, EventCursor)
    assert outcome.pages == 3 and outcome.pass_index == 1 and outcome.steps == 1


@moto_only
def test_a_step_always_reads_one_page_so_the_audit_progresses(store: TicketStore) -> None:
    write_event(store.client, store.table_name, EVENT, 250)
    budget = Budget(page_size=100, max_pages=100, time_left_ms=lambda: 0, reserve_ms=30_000)
    verdict = audit_to_end(store, EVENT, budget)
    assert verdict.clean and verdict.steps == verdict.pages == 4


@moto_only
def test_unknown_item_kinds_are_counted_not_checked(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(2)
    for person in ("a@example.com", "b@example.com", "c@example.com"):
        api.book(event_id, person)
    for note in range(3):  # a kind of item no rule group names
        store.client.put_item(
            TableName=store.table_name,
            Item={
                "PK": string(event_partition(event_id)),
                "SK": string(f"NOTE#{note:010d}"),
                "email": string("c@example.com"),
            },
        )

    verdict = audit_to_end(store, event_id)

    assert verdict.clean, verdict.violations
    assert verdict.skipped == {"NOTE": 3}
    assert audit_events(store).to_json()["skippedItems"] == {"NOTE": 3}


@moto_only
def test_the_cursor_stays_small_however_many_items_are_wrong(store: TicketStore) -> None:
    write_event(store.client, store.table_name, EVENT, 300)
    for i in range(1, 300, 3):  # 100 booked places: un-normalised twins, or malformed
        twin = email(EVENT, i).upper()
        status = "BOOKED" if i % 2 else "GONE"
        store.client.put_item(
            TableName=store.table_name, Item={**person_key(EVENT, twin), "status": string(status)}
        )

    cursor = audit_step(store, EventCursor.start(EVENT), Budget(page_size=400, max_pages=1))

    assert isinstance(cursor, EventCursor)
    assert len(json.dumps(cursor.to_json())) < 4_000
    places = cursor.groups["places"]
    assert len(places["unnormalised"]) == MAX_UNNORMALISED
    assert places["unnormalised_unchecked"] == 50 - MAX_UNNORMALISED
    assert places["malformed"] == 50 and len(places["malformed_examples"]) == 1
    verdict = audit_to_end(store, EVENT, Budget(page_size=400, max_pages=10))
    assert {"one-place-per-person", "status", "booked-count"} <= rules_of(verdict)


@pytest.mark.dynamodb_local
def test_the_audit_command_takes_a_budget_and_resumes(
    big_event: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = big_event.client.meta.endpoint_url
    argv = ["--table", big_event.table_name, "--endpoint", endpoint]
    assert audit_cli.main([*argv, "--page-size", "700", "--pages-per-step", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "clean": True,
        "eventsChecked": 1,
        "violations": [],
    }


@pytest.mark.dynamodb_local
def test_the_scale_measurement_runs(
    dynamodb_local: DynamoDBLocal, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tiny run of ``python -m devtools.audit_scale``, to keep it working (not a timing)."""
    argv = ["--events=4", "--places=30", "--big=250", "--sample=2", "--writers=2", "--all"]
    table = unique_table_name()
    assert (
        audit_scale.main([*argv, f"--endpoint={dynamodb_local.endpoint_url}", f"--table={table}"])
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["fanOut"]["events"] == 5
    assert figures["auditOfOneEvent"]["allClean"] and figures["allEventsAudited"]["clean"]
    # Each event's items (its index nodes too) and its waiting-list entries.
    small, big = synthetic_event(1, 30), synthetic_event(1, 250)
    assert figures["auditOfOneEvent"]["itemsRead"] == len(event_items(small)) + 10
    assert figures["bigEvent"]["items"] == len(event_items(big)) + 84
    local_client(dynamodb_local.endpoint_url).delete_table(TableName=table)
