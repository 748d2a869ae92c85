"""The table: its keys, prefixes and indexes, and the access pattern each one serves.

Every key is built here and nowhere else, devtools and tests included.

==================  ====================  =====================  =================================
item                PK                    SK                     access pattern it serves
==================  ====================  =====================  =================================
event id sequence   ``SEQUENCE#EVENT``    ``SEQUENCE``           allocate the next event id (ADD)
event               ``EVENT#<id>``        ``EVENT``              status; the counters that every
                                                                 write of the event conditions on
person's place      ``EVENT#<id>``        ``PERSON#<email>``     one place per email (condition
                                                                 ``place_is_new``); a person's
                                                                 standing
events created by   ``ORGANISER#<sub>``   ``CREATED#<day>``      an organiser's daily cap on
an organiser, a day                                              events (``under_daily_cap``)
position index      ``EVENT#<id>``        ``RANK#<level>#<n>``   a waiting person's position in
node                                                             a fixed number of reads, at any
                                                                 list length (``ranks``)
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.storage.ranks import RANK_PREFIX, NodeRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

#: Environment variables that name the table and, for DynamoDB Local, its endpoint.
TABLE_NAME_ENV = "TICKETS_TABLE"
ENDPOINT_URL_ENV = "DYNAMODB_ENDPOINT_URL"

EVENT_PREFIX = "EVENT#"
EVENT_SK = "EVENT"
PERSON_PREFIX = "PERSON#"
SEQUENCE_PK = "SEQUENCE#EVENT"
SEQUENCE_SK = "SEQUENCE"
ORGANISER_PREFIX = "ORGANISER#"
CREATED_PREFIX = "CREATED#"
EVENT_LIST_PARTITION = "EVENTS"

WAITING_LIST_INDEX = "WaitingList"
EVENTS_BY_NEWEST_INDEX = "EventsByNewest"

Key = dict[str, "AttributeValueTypeDef"]

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


def event_partition(event_id: int) -> str:
    """The partition key shared by an event and every place in it."""
    return f"{EVENT_PREFIX}{event_id}"


def event_id_of(partition: str) -> int:
    """The inverse of ``event_partition``."""
    return int(partition.removeprefix(EVENT_PREFIX))


def event_key(event_id: int) -> Key:
    return {"PK": {"S": event_partition(event_id)}, "SK": {"S": EVENT_SK}}


def person_sort_key(email: str) -> str:
    return PERSON_PREFIX + email


def email_of(sort_key: str) -> str:
    """The inverse of ``person_sort_key``."""
    return sort_key.removeprefix(PERSON_PREFIX)


def person_key(event_id: int, email: str) -> Key:
    return {"PK": {"S": event_partition(event_id)}, "SK": {"S": person_sort_key(email)}}


def rank_node_key(event_id: int, node: NodeRef) -> Key:
    """One node of the event's position index (``chalicelib.storage.ranks``)."""
    return {"PK": {"S": event_partition(event_id)}, "SK": {"S": node.sort_key}}


def organiser_day_key(owner_id: str, day: str) -> Key:
    """The counter of events ``owner_id`` created on ``day`` (YYYY-MM-DD, UTC)."""
    return {"PK": {"S": ORGANISER_PREFIX + owner_id}, "SK": {"S": CREATED_PREFIX + day}}


def sequence_key() -> Key:
    return {"PK": {"S": SEQUENCE_PK}, "SK": {"S": SEQUENCE_SK}}


def is_event_item(item: dict[str, Any]) -> bool:
    return bool(item["SK"]["S"] == EVENT_SK)


def is_place_item(item: dict[str, Any]) -> bool:
    return bool(item["SK"]["S"].startswith(PERSON_PREFIX))


#: Item kinds within an event's partition, as ``item_kind`` names them.
EVENT_KIND = EVENT_SK
PERSON_KIND = PERSON_PREFIX.rstrip("#")
RANK_KIND = RANK_PREFIX.rstrip("#")


def item_kind(item: dict[str, Any]) -> str:
    """What an item of an event's partition is: its sort key up to the first ``#``.

    ``EVENT`` for the event, ``PERSON`` for a place; a kind added later (a
    ``RANK#...`` index entry, say) gets its own name without any change here,
    so the audit can count what it does not check instead of failing on it.
    """
    sort_key: str = item["SK"]["S"]
    return sort_key.split("#", 1)[0]
