"""DynamoDB access: the only module that knows table names, keys and expressions.

Key design (one table; see docs/data-model.md for the reasoning)
===============================================================

==================  ====================  =====================  =================================
item                PK                    SK                     access pattern it serves
==================  ====================  =====================  =================================
event id sequence   ``SEQUENCE#EVENT``    ``SEQUENCE``           allocate the next event id (ADD)
event               ``EVENT#<id>``        ``EVENT``              status; counters every write
                                                                 conditions on
person's place      ``EVENT#<id>``        ``PERSON#<email>``     one place per email (condition
                                                                 ``attribute_not_exists``);
                                                                 a person's standing
==================  ====================  =====================  =================================

Indexes
-------
``WaitingList`` (LSI: ``PK`` + ``waitKey`` N, keys only). Only waiting places
carry ``waitKey``, so the index holds exactly the waiting list of each event,
in FIFO order. An LSI (not a GSI) because promotion must read the head of the
list with a strongly consistent read.

``EventsByNewest`` (GSI: ``GSI1PK`` = ``EVENTS``, ``GSI1SK`` = event id N, keys
only). Lists events newest first. Keys-only, so the counter updates on every
booking never write to it.

Every booking, cancellation and waiting-list change is one ``TransactWriteItems``
that updates the event item (counters, conditions) together with the person's
place; the event item is therefore the single item every booking of an event
touches. Each transaction carries a ``ClientRequestToken`` so the retries in
``chalicelib.retry`` cannot apply it twice.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from chalicelib.errors import ServiceBusy
from chalicelib.models import BOOKED, WAITLISTED, Event, Place
from chalicelib.retry import RetryPolicy

TABLE_NAME_ENV = "TICKETS_TABLE"
ENDPOINT_URL_ENV = "DYNAMODB_ENDPOINT_URL"

SEQUENCE_KEY = {"PK": {"S": "SEQUENCE#EVENT"}, "SK": {"S": "SEQUENCE"}}
EVENT_SK = "EVENT"
PERSON_PREFIX = "PERSON#"
EVENT_LIST_PARTITION = "EVENTS"
WAITING_LIST_INDEX = "WaitingList"
EVENTS_BY_NEWEST_INDEX = "EventsByNewest"

TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
        {"AttributeName": "waitKey", "AttributeType": "N"},
        {"AttributeName": "GSI1PK", "AttributeType": "S"},
        {"AttributeName": "GSI1SK", "AttributeType": "N"},
    ],
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": WAITING_LIST_INDEX,
            "KeySchema": [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "waitKey", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": EVENTS_BY_NEWEST_INDEX,
            "KeySchema": [
                {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

_deserializer = TypeDeserializer()


def event_key(event_id: int) -> dict[str, Any]:
    return {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": EVENT_SK}}


def person_key(event_id: int, email: str) -> dict[str, Any]:
    return {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": PERSON_PREFIX + email}}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def event_from_item(item: dict[str, Any]) -> Event:
    data = _plain(item)
    return Event(
        event_id=int(data["eventId"]),
        name=data["name"],
        total_tickets=int(data["totalTickets"]),
        available_tickets=int(data["availableTickets"]),
        booked_tickets=int(data["bookedTickets"]),
        waiting_list_count=int(data["waitingCount"]),
        last_wait_key=int(data["lastWaitKey"]),
        created_at=data["createdAt"],
    )


def place_from_item(item: dict[str, Any]) -> Place:
    data = _plain(item)
    return Place(
        event_id=int(data["PK"].split("#", 1)[1]),
        email=data["SK"][len(PERSON_PREFIX) :],
        status=data.get("status", WAITLISTED),
        wait_key=_int_or_none(data.get("waitKey")),
        request_key=data.get("requestKey"),
        promoted_from_wait_key=_int_or_none(data.get("promotedFromWaitKey")),
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


@dataclass
class ConditionFailed(Exception):
    """A transaction was cancelled because conditions failed.

    ``old_items`` maps the role of each operation whose condition failed
    (``"event"``, ``"person"``, ``"head"``) to the item as it was, or ``None``
    when the item did not exist. Roles whose condition held are absent.
    """

    old_items: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def failed(self, role: str) -> bool:
        return role in self.old_items

    def event(self) -> Event | None:
        item = self.old_items.get("event")
        return event_from_item(item) if item else None

    def place(self, role: str = "person") -> Place | None:
        item = self.old_items.get(role)
        return place_from_item(item) if item else None


class TicketStore:
    """All reads and writes of the booking table. Thread-safe (boto3 clients are)."""

    def __init__(self, client: Any, table_name: str, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.table_name = table_name
        self.retry = retry or RetryPolicy()

    # -- events ---------------------------------------------------------------

    def next_event_id(self) -> int:
        """Allocate the next sequential event id (an id burnt by a failed create is skipped)."""
        response = self.retry.run(
            "UpdateItem",
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key=SEQUENCE_KEY,
                UpdateExpression="ADD lastValue :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            ),
        )
        return int(response["Attributes"]["lastValue"]["N"])

    def put_event(self, event: Event) -> None:
        """Create the event item; a replay of our own successful write counts as success."""
        creation_token = uuid.uuid4().hex
        item = {
            **event_key(event.event_id),
            "GSI1PK": {"S": EVENT_LIST_PARTITION},
            "GSI1SK": {"N": str(event.event_id)},
            "eventId": {"N": str(event.event_id)},
            "name": {"S": event.name},
            "totalTickets": {"N": str(event.total_tickets)},
            "availableTickets": {"N": str(event.available_tickets)},
            "bookedTickets": {"N": str(event.booked_tickets)},
            "waitingCount": {"N": str(event.waiting_list_count)},
            "lastWaitKey": {"N": str(event.last_wait_key)},
            "createdAt": {"S": event.created_at},
            "creationToken": {"S": creation_token},
        }
        try:
            self.retry.run(
                "PutItem",
                lambda: self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(PK)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            old = error.response.get("Item", {})
            if old.get("creationToken") != item["creationToken"]:
                raise RuntimeError(f"event id {event.event_id} allocated twice") from error

    def get_event(self, event_id: int) -> Event | None:
        item = self._get(event_key(event_id))
        return event_from_item(item) if item else None

    def list_events(self, limit: int, before_id: int | None) -> tuple[list[Event], bool]:
        """Events newest first, starting below ``before_id``; also says whether more exist."""
        condition = "GSI1PK = :p"
        values: dict[str, Any] = {":p": {"S": EVENT_LIST_PARTITION}}
        if before_id is not None:
            condition += " AND GSI1SK < :before"
            values[":before"] = {"N": str(before_id)}
        response = self.retry.run(
            "Query",
            lambda: self.client.query(
                TableName=self.table_name,
                IndexName=EVENTS_BY_NEWEST_INDEX,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=limit + 1,
            ),
        )
        ids = [int(item["GSI1SK"]["N"]) for item in response["Items"]]
        has_more = len(ids) > limit
        ids = ids[:limit]
        found = {event.event_id: event for event in self._batch_get_events(ids)}
        return [found[i] for i in ids if i in found], has_more

    def event_ids(self) -> Iterator[int]:
        """Every event id, oldest first (all pages of ``EventsByNewest``): for audits."""
        pages = self._query_pages(
            IndexName=EVENTS_BY_NEWEST_INDEX,
            KeyConditionExpression="GSI1PK = :p",
            ExpressionAttributeValues={":p": {"S": EVENT_LIST_PARTITION}},
        )
        for page in pages:
            yield from (int(item["GSI1SK"]["N"]) for item in page["Items"])

    def _batch_get_events(self, ids: list[int]) -> list[Event]:
        if not ids:
            return []
        pending: dict[str, Any] = {
            self.table_name: {"Keys": [event_key(i) for i in ids], "ConsistentRead": True}
        }
        events: list[Event] = []
        for attempt in range(1, self.retry.max_attempts + 1):
            response = self.retry.run(
                "BatchGetItem", partial(self.client.batch_get_item, RequestItems=pending)
            )
            events += [event_from_item(i) for i in response["Responses"].get(self.table_name, [])]
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return events
            self.retry.sleep(self.retry.delay(attempt))
        raise ServiceBusy("BatchGetItem: keys left unprocessed")

    # -- people ---------------------------------------------------------------

    def get_place(self, event_id: int, email: str) -> Place | None:
        item = self._get(person_key(event_id, email))
        return place_from_item(item) if item else None

    def waitlist_heads(self, event_id: int, limit: int) -> list[Place]:
        """The first ``limit`` people on the waiting list, in order (strongly consistent)."""
        response = self.retry.run(
            "Query",
            partial(
                self.client.query,
                TableName=self.table_name,
                IndexName=WAITING_LIST_INDEX,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": f"EVENT#{event_id}"}},
                ConsistentRead=True,
                Limit=limit,
            ),
        )
        return [
            place_from_item({**item, "status": {"S": WAITLISTED}}) for item in response["Items"]
        ]

    def count_waiting_up_to(self, event_id: int, wait_key: int) -> int:
        """How many people wait with a key <= ``wait_key``: that entry's 1-based position."""
        pages = self._query_pages(
            IndexName=WAITING_LIST_INDEX,
            KeyConditionExpression="PK = :pk AND waitKey <= :k",
            ExpressionAttributeValues={
                ":pk": {"S": f"EVENT#{event_id}"},
                ":k": {"N": str(wait_key)},
            },
            ConsistentRead=True,
            Select="COUNT",
        )
        return sum(page["Count"] for page in pages)

    def event_partition(self, event_id: int) -> tuple[Event | None, list[Place]]:
        """Every item of one event (consistent): for audits and invariant checks."""
        event: Event | None = None
        places: list[Place] = []
        for item in self._query_partition(f"EVENT#{event_id}"):
            if item["SK"]["S"] == EVENT_SK:
                event = event_from_item(item)
            elif item["SK"]["S"].startswith(PERSON_PREFIX):
                places.append(place_from_item(item))
        return event, places

    def _query_partition(self, pk: str) -> Iterator[dict[str, Any]]:
        pages = self._query_pages(
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from page["Items"]

    def _query_pages(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of one query, each page's request retried on its own."""
        while True:
            response = self.retry.run(
                "Query", partial(self.client.query, TableName=self.table_name, **params)
            )
            yield response
            start = response.get("LastEvaluatedKey")
            if not start:
                return
            params = {**params, "ExclusiveStartKey": start}

    # -- transactions -----------------------------------------------------------

    def book(self, event_id: int, email: str, request_key: str | None) -> None:
        """Take one free ticket for ``email``. Fails if sold out or the email holds a place."""
        now = now_iso()
        self._transact(
            [
                ("person", self._put_person(event_id, email, BOOKED, now, request_key)),
                (
                    "event",
                    self._update_event(
                        event_id,
                        "SET availableTickets = availableTickets - :one,"
                        " bookedTickets = bookedTickets + :one",
                        "availableTickets > :zero",
                    ),
                ),
            ]
        )

    def join_waitlist(
        self, event_id: int, email: str, wait_key: int, request_key: str | None
    ) -> None:
        """Append ``email`` to the waiting list: only when sold out and ``wait_key`` is newest."""
        now = now_iso()
        person = self._put_person(event_id, email, WAITLISTED, now, request_key)
        person["Put"]["Item"]["waitKey"] = {"N": str(wait_key)}
        self._transact(
            [
                ("person", person),
                (
                    "event",
                    self._update_event(
                        event_id,
                        "SET waitingCount = waitingCount + :one, lastWaitKey = :k",
                        "availableTickets = :zero AND lastWaitKey < :k",
                        {":k": {"N": str(wait_key)}},
                    ),
                ),
            ]
        )

    def cancel_and_release(self, event_id: int, email: str) -> None:
        """Cancel a ticket and return it to the pool. Fails if anyone is waiting."""
        self._transact(
            [
                ("person", self._delete_person(event_id, email, "#s = :booked")),
                (
                    "event",
                    self._update_event(
                        event_id,
                        "SET availableTickets = availableTickets + :one,"
                        " bookedTickets = bookedTickets - :one",
                        "waitingCount = :zero",
                    ),
                ),
            ]
        )

    def cancel_and_promote(self, event_id: int, email: str, head: Place) -> None:
        """Cancel a ticket and give it to ``head``. Fails if ``head`` is no longer waiting."""
        now = now_iso()
        self._transact(
            [
                ("person", self._delete_person(event_id, email, "#s = :booked")),
                (
                    "head",
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": person_key(event_id, head.email),
                            "UpdateExpression": "SET #s = :booked, bookedAt = :now,"
                            " promotedAt = :now, promotedFromWaitKey = :hk REMOVE waitKey",
                            "ConditionExpression": "#s = :waitlisted AND waitKey = :hk",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {
                                ":booked": {"S": BOOKED},
                                ":waitlisted": {"S": WAITLISTED},
                                ":now": {"S": now},
                                ":hk": {"N": str(head.wait_key)},
                            },
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ),
                (
                    "event",
                    self._update_event(
                        event_id,
                        "SET waitingCount = waitingCount - :one",
                        "attribute_exists(PK)",
                    ),
                ),
            ]
        )

    def leave_waitlist(self, event_id: int, email: str, wait_key: int) -> None:
        """Remove a waiting place; everyone behind it moves up one position."""
        self._transact(
            [
                (
                    "person",
                    self._delete_person(
                        event_id, email, "#s = :waitlisted AND waitKey = :k", wait_key
                    ),
                ),
                (
                    "event",
                    self._update_event(
                        event_id,
                        "SET waitingCount = waitingCount - :one",
                        "attribute_exists(PK)",
                    ),
                ),
            ]
        )

    # -- building blocks ----------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self.retry.run(
            "GetItem",
            lambda: self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True),
        )
        return response.get("Item")

    def _put_person(
        self, event_id: int, email: str, status: str, now: str, request_key: str | None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            **person_key(event_id, email),
            "status": {"S": status},
            "joinedAt": {"S": now},
        }
        if status == BOOKED:
            item["bookedAt"] = {"S": now}
        if request_key:
            item["requestKey"] = {"S": request_key}
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(PK)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _delete_person(
        self, event_id: int, email: str, condition: str, wait_key: int | None = None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if ":booked" in condition:
            values[":booked"] = {"S": BOOKED}
        if ":waitlisted" in condition:
            values[":waitlisted"] = {"S": WAITLISTED}
        if wait_key is not None:
            values[":k"] = {"N": str(wait_key)}
        return {
            "Delete": {
                "TableName": self.table_name,
                "Key": person_key(event_id, email),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _update_event(
        self,
        event_id: int,
        update: str,
        condition: str,
        extra_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":one": {"N": "1"}}
        if ":zero" in condition:
            values[":zero"] = {"N": "0"}
        values.update(extra_values or {})
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": event_key(event_id),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _transact(self, operations: list[tuple[str, dict[str, Any]]]) -> None:
        """Run one transaction, retrying transient failures with the same idempotency token.

        Raises ``ConditionFailed`` naming the roles whose conditions failed.
        """
        token = str(uuid.uuid4())
        items = [op for _, op in operations]
        try:
            self.retry.run(
                "TransactWriteItems",
                lambda: self.client.transact_write_items(
                    TransactItems=items, ClientRequestToken=token
                ),
            )
        except ClientError as error:
            if _error_code(error) != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            failed = {
                role: reason.get("Item")
                for (role, _), reason in zip(operations, reasons, strict=False)
                if reason.get("Code") == "ConditionalCheckFailed"
            }
            if not failed:
                raise
            raise ConditionFailed(failed) from error


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


# -- construction ---------------------------------------------------------------------

_stores: dict[tuple[str, str | None], TicketStore] = {}


def make_client(endpoint_url: str | None = None) -> Any:
    """A DynamoDB client with botocore's retries off (``chalicelib.retry`` owns retrying)."""
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=50,
        tcp_keepalive=True,
    )
    session = boto3.session.Session()
    return session.client("dynamodb", endpoint_url=endpoint_url, region_name=region, config=config)


def ticket_store() -> TicketStore:
    """The store for the table named in the environment, created on first use and reused.

    Read lazily (not at import) because Chalice's test client and ``chalice local``
    set the stage's environment only around each request.
    """
    table_name = os.environ.get(TABLE_NAME_ENV)
    if not table_name:
        raise RuntimeError(f"environment variable {TABLE_NAME_ENV} is not set")
    endpoint_url = os.environ.get(ENDPOINT_URL_ENV) or None
    key = (table_name, endpoint_url)
    store = _stores.get(key)
    if store is None:
        # Lambda runs one request at a time per instance; if threads (chalice
        # local) race here, both stores work and setdefault keeps the first.
        store = _stores.setdefault(key, TicketStore(make_client(endpoint_url), table_name))
    return store


def forget_stores() -> None:
    """Drop cached clients (tests switch between moto and DynamoDB Local)."""
    _stores.clear()
