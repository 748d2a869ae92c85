"""``TicketStore``: every request the service sends to DynamoDB, each retried by one policy.

Transactions are built by ``chalicelib.storage.writes`` from the named parts in
``chalicelib.storage.conditions``; this module sends them with a
``ClientRequestToken`` that every retry reuses (so one whose answer was lost is
not applied twice), and turns a cancellation into ``ConditionFailed`` carrying
the old items.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from chalicelib.clock import booking_key_now, now_iso
from chalicelib.errors import ConditionFailed, Role, ServiceBusy
from chalicelib.models import Event, EventChange, Place
from chalicelib.retry import RetryPolicy
from chalicelib.storage import items, ranks, schema, writes
from chalicelib.storage.conditions import Condition
from chalicelib.storage.items import MalformedItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryOutputTypeDef


@dataclass(frozen=True)
class Snapshot:
    """One moment of one person's standing: enough to tell their position."""

    place: Place | None
    event: Event | None
    counts: dict[ranks.NodeRef, dict[int, int]]

    def position(self) -> int:
        """The place's 1-based position; only for a waiting place."""
        assert self.place is not None and self.place.wait_key is not None
        assert self.event is not None, "a waiting place's event exists"
        ahead = ranks.count_up_to(self.place.wait_key, self.counts)
        return ahead - self.event.promoted_count


@dataclass(frozen=True)
class IndexSnapshot:
    """The event and the position-index nodes on one key's path, read at one moment."""

    event: Event | None
    counts: dict[ranks.NodeRef, dict[int, int]]

    def counted_up_to(self, key: int) -> int:
        """Keys joined (and not left) at or before ``key``: the promoted ones included."""
        return ranks.count_up_to(key, self.counts)


@dataclass
class EventPartition:
    """Every item of one event, read at once (tests and tools; the audit reads ``QueryPage``s).

    ``malformed`` describes items no code path writes.
    """

    event: Event | None
    places: list[Place] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


#: A raw item, as the client returns it.
Item = dict[str, Any]
_Id = TypeVar("_Id", int, str)

#: An exclusive start key (``LastEvaluatedKey``), in the client's AttributeValue JSON.
StartKey = dict[str, Any]


@dataclass(frozen=True)
class QueryPage:
    """One page of a query: its raw items, and where the next page starts (None: the last)."""

    items: list[dict[str, Any]]
    next_key: StartKey | None


class TicketStore:
    """All reads and writes of the booking table. Thread-safe (boto3 clients are)."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.retry = retry or RetryPolicy()

    # -- events -------------------------------------------------------------------------

    def next_event_id(self, step: int = 1) -> int:
        """Allocate the next event id (ids burnt by a failed create are skipped)."""
        response = self.retry.run(
            "UpdateItem",
            partial(
                self.client.update_item,
                TableName=self.table_name,
                Key=schema.sequence_key(),
                UpdateExpression="ADD lastValue :step",
                ExpressionAttributeValues={":step": items.number(step)},
                ReturnValues="UPDATED_NEW",
            ),
        )
        return int(response["Attributes"]["lastValue"]["N"])

    def create_event(self, event: Event, day: str, daily_cap: int) -> None:
        """Create the event and count it against its organiser's ``day`` (one transaction).

        A replay of our own write is harmless: the transaction's token makes it one.
        """
        self._transact(writes.create_event(self.table_name, event, day, daily_cap))

    def get_event(self, event_id: int) -> Event | None:
        item = self.get_item(schema.event_key(event_id))
        return items.event_from_item(item) if item else None

    def list_events(self, limit: int, before_id: int | None) -> tuple[list[Event], bool]:
        """Events newest first, starting below ``before_id``; also says whether more exist."""
        response = self.retry.run("Query", partial(self._events_by_newest, limit + 1, before_id))
        ids = [int(item["GSI1SK"]["N"]) for item in response["Items"]]
        return self._events_in_order(ids[:limit]), len(ids) > limit

    def owned_events(
        self, owner_id: str, limit: int, before_id: int | None
    ) -> tuple[list[Event], bool]:
        """``owner_id``'s events newest first, starting below ``before_id``; also says whether
        more exist. One consistent ``Query`` of the organiser's own partition (its
        ``EVENT#`` listing items, written with each event), then one ``BatchGetItem``."""
        partition = items.string(schema.owner_partition(owner_id))
        lowest = items.string(schema.OWNED_EVENT_PREFIX)
        if before_id is None:
            condition = "PK = :pk AND begins_with(SK, :lowest)"
            values = {":pk": partition, ":lowest": lowest}
        else:
            # BETWEEN, not <: the organiser's CREATED#<day> counters sort before EVENT#.
            condition = "PK = :pk AND SK BETWEEN :lowest AND :highest"
            highest = items.string(schema.owned_event_sort_key(max(0, before_id - 1)))
            values = {":pk": partition, ":lowest": lowest, ":highest": highest}
        response = self._query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=limit + 1,
        )
        ids = [items.owned_event_id_from_item(item) for item in response["Items"]]
        return self._events_in_order(ids[:limit]), len(ids) > limit

    def _events_in_order(self, ids: list[int]) -> list[Event]:
        """The events of ``ids`` in that order (one ``BatchGetItem``; a missing one left out)."""
        found = {
            event.event_id: event
            for event in map(items.event_from_item, self._batch_get(schema.event_key, ids))
        }
        return [found[i] for i in ids if i in found]

    def newest_event_id(self) -> int:
        """The highest event id in the table (0 when empty)."""
        response = self.retry.run("Query", partial(self._events_by_newest, 1, None))
        return max((int(i["GSI1SK"]["N"]) for i in response["Items"]), default=0)

    def event_ids(self) -> Iterator[int]:
        """Every event id, oldest first (all pages of ``EventsByNewest``): for audits."""
        pages = self.query_pages(
            IndexName=schema.EVENTS_BY_NEWEST_INDEX,
            KeyConditionExpression="GSI1PK = :p",
            ExpressionAttributeValues={":p": items.string(schema.EVENT_LIST_PARTITION)},
        )
        for page in pages:
            yield from (int(item["GSI1SK"]["N"]) for item in page["Items"])

    def _events_by_newest(self, limit: int, before_id: int | None) -> QueryOutputTypeDef:
        condition = "GSI1PK = :p"
        values = {":p": items.string(schema.EVENT_LIST_PARTITION)}
        if before_id is not None:
            condition += " AND GSI1SK < :before"
            values[":before"] = items.number(before_id)
        return self.client.query(
            TableName=self.table_name,
            IndexName=schema.EVENTS_BY_NEWEST_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )

    # -- places ---------------------------------------------------------------------------

    def get_place(self, event_id: int, email: str) -> Place | None:
        item = self.get_item(schema.person_key(event_id, email))
        return items.place_from_item(item) if item else None

    def places(self, event_id: int, emails: list[str]) -> dict[str, Place]:
        """The places of ``emails`` (at most 100) as they are now, by email: one consistent
        ``BatchGetItem`` (plus a retry of any keys DynamoDB leaves unprocessed). An
        email that holds no place is absent from the answer."""
        found = self._batch_get(partial(schema.person_key, event_id), emails)
        return {place.email: place for place in map(items.place_from_item, found)}

    def attendee_keys(self, event_id: int, after: int | None, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` entries of the event's attendee list after booking key ``after``,
        in booking order: (email, booking key) from ``EventsByNewest`` (keys only).

        A GSI is eventually consistent: an entry may be a moment behind its place
        (a ticket just taken missing, one just cancelled still there). Callers
        check entries against ``places``.
        """
        condition = "GSI1PK = :p"
        values = {":p": items.string(schema.attendee_partition(event_id))}
        if after is not None:
            condition += " AND GSI1SK > :after"
            values[":after"] = items.number(after)
        response = self._query(
            IndexName=schema.EVENTS_BY_NEWEST_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            Limit=limit,
        )
        return [items.attendee_entry_from_index_item(item) for item in response["Items"]]

    def waiting_range(self, event_id: int, after: int, up_to: int, limit: int) -> list[Place]:
        """Up to ``limit`` waiting places with keys in ``after < waitKey <= up_to``, in order
        (a strongly consistent ``Query`` of ``WaitingList``, keys only)."""
        response = self._query(
            IndexName=schema.WAITING_LIST_INDEX,
            KeyConditionExpression="PK = :pk AND waitKey BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": items.string(schema.event_partition(event_id)),
                ":low": items.number(after + 1),
                ":high": items.number(up_to),
            },
            ConsistentRead=True,
            Limit=limit,
        )
        return [items.waiting_place_from_index_item(item) for item in response["Items"]]

    def waitlist_heads(self, event_id: int, limit: int) -> list[Place]:
        """The first ``limit`` people on the waiting list, in order (strongly consistent)."""
        response = self._query(
            IndexName=schema.WAITING_LIST_INDEX,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": items.string(schema.event_partition(event_id))},
            ConsistentRead=True,
            Limit=limit,
        )
        return [items.waiting_place_from_index_item(item) for item in response["Items"]]

    def waiting_key_at(self, event_id: int, rank: int) -> int | None:
        """The wait key of the ``rank``-th place (1-based) stored as waiting, or None if
        fewer are: the front of the list in keys-only pages (strongly consistent; one
        page holds thousands of entries)."""
        start: StartKey | None = None
        seen = 0
        while True:
            page = self.waiting_list_page(event_id, start, rank - seen)
            seen += len(page.items)
            if seen >= rank:
                return items.waiting_place_from_index_item(page.items[-1]).wait_key
            if page.next_key is None:
                return None
            start = page.next_key

    def snapshot(self, event_id: int, email: str, wait_key: int) -> Snapshot:
        """The place, the event and the position-index nodes for ``wait_key``, all at one
        moment (``TransactGetItems``: serialisable with every transaction).

        Reading them apart would let a promotion fall between the reads: the place
        would still say "waiting" while the counts already say "promoted".
        """
        [place_item], index = self._read_with_index(
            event_id, wait_key, [schema.person_key(event_id, email)]
        )
        return Snapshot(
            place=items.place_from_item(place_item) if place_item else None,
            event=index.event,
            counts=index.counts,
        )

    def index_snapshot(self, event_id: int, key: int | None) -> IndexSnapshot:
        """The event and the position-index nodes on ``key``'s path (none for None), at one
        moment (``TransactGetItems``): how many keys up to ``key`` are counted, against
        the event's ``promotedCount`` and ``leftCount`` of that same moment."""
        _, index = self._read_with_index(event_id, key, [])
        return index

    def _read_with_index(
        self, event_id: int, key: int | None, others: list[schema.Key]
    ) -> tuple[list[dict[str, Any] | None], IndexSnapshot]:
        """``others``, the event and the nodes ``key``'s position needs, in one
        ``TransactGetItems`` (serialisable with every transaction)."""
        nodes = ranks.nodes_to_read(key) if key is not None else []
        keys = [*others, schema.event_key(event_id)]
        keys += [schema.rank_node_key(event_id, node) for node in nodes]
        found = self._transact_get(keys)
        event_item = found[len(others)]
        index = IndexSnapshot(
            event=items.event_from_item(event_item) if event_item else None,
            counts={
                node: ranks.counts_from_item(item)
                for node, item in zip(nodes, found[len(others) + 1 :], strict=True)
                if item
            },
        )
        return found[: len(others)], index

    # -- audit reads: bounded pages that can resume ------------------------------------------

    def partition_page(self, event_id: int, start: StartKey | None, limit: int) -> QueryPage:
        """Up to ``limit`` items of one event's partition in sort-key order (consistent).

        The audit reads a partition this way so that it can stop between pages
        and resume from ``next_key`` in a later invocation.
        """
        return self._page(
            start,
            limit,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": items.string(schema.event_partition(event_id))},
        )

    def waiting_list_page(self, event_id: int, start: StartKey | None, limit: int) -> QueryPage:
        """Up to ``limit`` entries of the ``WaitingList`` index in ``waitKey`` order (consistent).

        Keys only: ``PK``, ``SK`` and ``waitKey``. Read in key order, a repeated
        ``waitKey`` shows as two neighbours, so the audit needs no set of keys.
        """
        return self._page(
            start,
            limit,
            IndexName=schema.WAITING_LIST_INDEX,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": items.string(schema.event_partition(event_id))},
        )

    def place_exists(self, event_id: int, email: str) -> bool:
        """Whether a place is stored under exactly this email (consistent).

        A one-item ``Query`` rather than ``GetItem``, so that the audit's IAM
        policy stays ``dynamodb:Query`` alone.
        """
        key = schema.person_key(event_id, email)
        response = self._query(
            KeyConditionExpression="PK = :pk AND SK = :sk",
            ExpressionAttributeValues={":pk": key["PK"], ":sk": key["SK"]},
            ConsistentRead=True,
            Select="COUNT",
        )
        return response["Count"] > 0

    def event_partition(self, event_id: int) -> EventPartition:
        """Every item of one event (consistent), parsed: for tests and tools on small events."""
        partition = EventPartition(event=None)
        pages = self.query_pages(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": items.string(schema.event_partition(event_id))},
            ConsistentRead=True,
        )
        for item in (item for page in pages for item in page["Items"]):
            if schema.is_event_item(item):
                partition.event = items.event_from_item(item)
            elif schema.is_place_item(item):
                try:
                    partition.places.append(items.place_from_item(item))
                except MalformedItem as error:
                    partition.malformed.append(str(error))
        return partition

    # -- transactions -----------------------------------------------------------------------

    def book(self, event_id: int, email: str, request_key: str | None, now_ms: int) -> None:
        self._transact(
            writes.book(
                self.table_name, event_id, email, request_key, now_iso(), now_ms, booking_key_now()
            )
        )

    def join_waitlist(
        self, event_id: int, email: str, wait_key: int, request_key: str | None, now_ms: int
    ) -> None:
        self._transact(
            writes.join_waitlist(
                self.table_name, event_id, email, wait_key, request_key, now_iso(), now_ms
            )
        )

    def cancel_and_release(self, event_id: int, email: str) -> None:
        self._transact(writes.cancel_and_release(self.table_name, event_id, email))

    def cancel_and_promote(self, event_id: int, email: str, head: Place) -> None:
        self._transact(
            writes.cancel_and_promote(
                self.table_name, event_id, email, head, now_iso(), booking_key_now()
            )
        )

    def cancel_and_pass(self, event_id: int, email: str) -> None:
        self._transact(writes.cancel_and_pass(self.table_name, event_id, email))

    def settle_promotions(self, event_id: int, pending: list[Place]) -> None:
        self._transact(
            writes.settle_promotions(
                self.table_name, event_id, pending, now_iso(), booking_key_now()
            )
        )

    def leave_waitlist(self, event_id: int, email: str, wait_key: int) -> None:
        self._transact(writes.leave_waitlist(self.table_name, event_id, email, wait_key))

    def change_event(
        self,
        read: Event,
        change: EventChange,
        new_total: int,
        heads: list[Place],
        by_count: int = 0,
    ) -> None:
        """One step of a settings and capacity change (``writes.change_event``)."""
        self._transact(
            writes.change_event(
                self.table_name,
                read,
                change,
                new_total,
                heads,
                now_iso(),
                booking_key_now(),
                by_count,
            )
        )

    def close_sales(self, event_id: int) -> None:
        self._transact(writes.close_sales(self.table_name, event_id))

    def reopen_sales(self, read: Event, now_ms: int) -> None:
        self._transact(writes.reopen_sales(self.table_name, read, now_ms))

    def cancel_event(self, event_id: int) -> None:
        self._transact(writes.cancel_event(self.table_name, event_id, now_iso()))

    def release_places(self, event_id: int, places: list[Place], read_cursor: str) -> str:
        """Mark ``places`` released; the sweep's cursor after them (``places_after`` takes it)."""
        self._transact(
            writes.release_places(self.table_name, event_id, places, read_cursor, now_iso())
        )
        return schema.person_sort_key(places[-1].email)

    def places_after(self, event_id: int, cursor: str, limit: int) -> list[Place]:
        """Up to ``limit`` places of the event in sort-key order, after the sort key
        ``cursor`` ("": from the first). Consistent: the release sweep's pages."""
        params: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :person)",
            "ExpressionAttributeValues": {
                ":pk": items.string(schema.event_partition(event_id)),
                ":person": items.string(schema.PERSON_PREFIX),
            },
        }
        start = {**schema.event_key(event_id), "SK": items.string(cursor)} if cursor else None
        page = self._page(start, limit, **params)
        return [items.place_from_item(item) for item in page.items]

    def place_and_event(self, event_id: int, email: str) -> tuple[Place | None, Event | None]:
        """The place and its event at one moment (``TransactGetItems``)."""
        [place_item], index = self._read_with_index(
            event_id, None, [schema.person_key(event_id, email)]
        )
        return (items.place_from_item(place_item) if place_item else None, index.event)

    def back_off(self, attempt: int) -> None:
        """Wait a jittered moment before deciding again after losing a race."""
        self.retry.back_off(attempt)

    # -- building blocks ----------------------------------------------------------------------
    # The public ones (get_item, query_pages, transact_items, update_if) also serve the
    # storage package's other modules (notices, webhooks), so every request of the
    # table goes through one retry policy.

    def get_item(self, key: schema.Key) -> dict[str, Any] | None:
        """One item, read consistently (None if absent)."""
        response = self.retry.run(
            "GetItem",
            partial(self.client.get_item, TableName=self.table_name, Key=key, ConsistentRead=True),
        )
        return response.get("Item")

    def _transact_get(self, keys: list[schema.Key]) -> list[dict[str, Any] | None]:
        """The items at ``keys`` at one moment (None where absent): one ``TransactGetItems``."""
        response = self.retry.run(
            "TransactGetItems",
            partial(
                self.client.transact_get_items,
                TransactItems=[{"Get": {"TableName": self.table_name, "Key": k}} for k in keys],
            ),
        )
        return [answer.get("Item") for answer in response["Responses"]]

    def _batch_get(self, key_of: Callable[[_Id], schema.Key], ids: list[_Id]) -> list[Item]:
        """The items of ``ids`` (at most 100) that exist, in any order: one consistent
        ``BatchGetItem``, and another for any keys DynamoDB leaves unprocessed."""
        keys: list[Any] = [key_of(i) for i in ids]
        found: list[Item] = []
        for attempt in range(1, self.retry.max_attempts + 1):
            if not keys:
                return found
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            response = self.retry.run(
                "BatchGetItem", partial(self.client.batch_get_item, RequestItems=request)
            )
            found += response["Responses"].get(self.table_name, [])
            unprocessed = response.get("UnprocessedKeys", {}).get(self.table_name)
            keys = list(unprocessed["Keys"]) if unprocessed else []
            if keys:
                self.retry.back_off(attempt)
        raise ServiceBusy("BatchGetItem: keys left unprocessed")

    def _query(self, **params: Any) -> QueryOutputTypeDef:
        """One ``Query`` request (one page) of the table or an index, retried on its own."""
        call: Callable[[], QueryOutputTypeDef] = partial(
            self.client.query, TableName=self.table_name, **params
        )
        return self.retry.run("Query", call)

    def _page(self, start: StartKey | None, limit: int, **params: Any) -> QueryPage:
        """One consistent page of a query, retried on its own."""
        if start is not None:
            params["ExclusiveStartKey"] = start
        response = self._query(
            ConsistentRead=True,
            Limit=limit,
            **params,
        )
        next_key = response.get("LastEvaluatedKey")
        return QueryPage(list(response["Items"]), dict(next_key) if next_key else None)

    def query_pages(self, **params: Any) -> Iterator[QueryOutputTypeDef]:
        """Every page of one query, each page's request retried on its own."""
        while True:
            response = self._query(**params)
            yield response
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            params = {**params, "ExclusiveStartKey": start}

    def _transact(self, operations: list[writes.Operation]) -> None:
        """Run one transaction, retrying transient failures with the same idempotency token.

        Raises ``ConditionFailed`` naming the roles whose conditions failed.
        """
        reasons = self.transact_items([operation for _, operation in operations])
        if reasons is not None:
            failure = _condition_failure(operations, reasons)
            assert failure is not None, "transact_items returns only condition failures"
            raise failure

    def transact_items(self, transact_items: list[Any]) -> list[dict[str, Any]] | None:
        """Send one ``TransactWriteItems`` (one ``ClientRequestToken`` for every retry).

        None when it was applied; the cancellation reasons, one per item (with the
        old item where the request asked for it), when a condition failed. Any
        other cancellation or error is raised.
        """
        token = str(uuid.uuid4())
        try:
            self.retry.run(
                "TransactWriteItems",
                partial(
                    self.client.transact_write_items,
                    TransactItems=transact_items,
                    ClientRequestToken=token,
                ),
            )
        except ClientError as error:
            if _error_code(error) != "TransactionCanceledException":
                raise
            answer: dict[str, Any] = dict(error.response)
            reasons: list[dict[str, Any]] = list(answer.get("CancellationReasons", []))
            if not any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise
            return reasons
        return None

    def update_if(
        self, key: schema.Key, update: Condition, condition: Condition, returns: str = "NONE"
    ) -> tuple[bool, dict[str, Any]]:
        """One conditional ``UpdateItem``, retried on its own.

        ``(True, attributes)`` (as ``returns`` asks) when applied; ``(False, old item)``
        when the condition failed (DynamoDB returns it: no second read to tell why).
        """
        names = {**update.names, **condition.names}
        values = {**update.values, **condition.values}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": key,
            "UpdateExpression": update.expression,
            "ConditionExpression": condition.expression,
            "ReturnValues": returns,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            response = self.retry.run("UpdateItem", partial(self.client.update_item, **request))
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            answer: dict[str, Any] = dict(error.response)
            return False, answer.get("Item") or {}
        return True, dict(response.get("Attributes") or {})


def _condition_failure(
    operations: list[writes.Operation], reasons: list[Any]
) -> ConditionFailed | None:
    """Which roles' conditions failed, with their items as DynamoDB returned them."""
    old: dict[Role, dict[str, Any] | None] = {
        role: reason.get("Item")
        for (role, _), reason in zip(operations, reasons, strict=False)
        if reason.get("Code") == "ConditionalCheckFailed"
    }
    if not old:
        return None
    event_item = old.get(Role.EVENT)
    return ConditionFailed(
        failed=frozenset(old),
        old_event=items.event_from_item(event_item) if event_item else None,
        old_places={
            role: items.place_from_item(item)
            for role, item in old.items()
            if item and role in (Role.PERSON, Role.HEAD)
        },
    )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
