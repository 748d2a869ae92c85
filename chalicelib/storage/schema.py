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
                                                                 standing; a ticket is also an
                                                                 ``EventsByNewest`` entry under
                                                                 ``ATTENDEES#<id>`` (below)
events created by   ``ORGANISER#<sub>``   ``CREATED#<day>``      an organiser's daily cap on
an organiser, a day                                              events (``under_daily_cap``)
an organiser's      ``ORGANISER#<sub>``   ``EVENT#<id, 18        an organiser's own events,
event                                     digits>``              newest first (written with the
                                                                 event, in one transaction)
position index      ``EVENT#<id>``        ``RANK#<level>#<n>``   a waiting person's position in
node                                                             a fixed number of reads, at any
                                                                 list length (``ranks``)
notice              ``NOTICE#<domain      ``NOTICE#<effect>``    once per domain event and effect
                    event id>``                                  (an email, the webhooks): claimed
                                                                 before, marked done after
                                                                 (``notices``); expires by TTL
webhook endpoint    ``ORGANISER#<sub>``   ``WEBHOOK#<id>``       an organiser lists their
                                                                 endpoints; a domain event of
                                                                 event E owned by O finds O's
                                                                 enabled endpoints for E or for
                                                                 all events: one ``Query`` of O's
                                                                 ``WEBHOOK#`` items (at most
                                                                 ``MAX_ENDPOINTS_PER_ORGANISER``);
                                                                 the delivery worker reads and
                                                                 updates one endpoint's failures
webhook count       ``ORGANISER#<sub>``   ``WEBHOOKS``           the per-organiser cap on
                                                                 endpoints (``under_endpoint_cap``,
                                                                 in the registering transaction)
==================  ====================  =====================  =================================

Stream
------
The table's stream (new and old images) carries every change to
``chalicelib.notifications``, which derives domain events from the event and
place items and ignores the rest; the booking paths write nothing for it.

Indexes
-------
``WaitingList`` (LSI: ``PK`` + ``waitKey`` N, keys only). Only waiting places
carry ``waitKey``, so the index holds exactly the waiting list of each event,
in FIFO order. An LSI (not a GSI) because promotion must read the head of the
list with a strongly consistent read.

``EventsByNewest`` (GSI: ``GSI1PK`` + ``GSI1SK`` N, keys only) holds two kinds
of list, each in its own index partition:

* ``GSI1PK`` = ``EVENTS``, ``GSI1SK`` = event id: events newest first (the event
  item). Keys-only, so the counter updates on every booking never write to it.
* ``GSI1PK`` = ``ATTENDEES#<id>``, ``GSI1SK`` = the place's booking key (see
  ``chalicelib.clock.booking_key``): an event's ticket holders in booking
  order. Only a booked place carries these keys: booking sets them, a
  promotion sets them, and cancelling deletes the place (and so its entry).
  A GSI is eventually consistent: a list read from it is checked against the
  places themselves (``TicketStore.places``).
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
#: An organiser's listing of one of their events: ``EVENT#`` and the id in this many digits,
#: so that sort-key order is id order (ids have at most 18 digits).
OWNED_EVENT_PREFIX = "EVENT#"
OWNED_EVENT_DIGITS = 18
EVENT_LIST_PARTITION = "EVENTS"
ATTENDEES_PREFIX = "ATTENDEES#"
NOTICE_PREFIX = "NOTICE#"
#: The attribute DynamoDB's time to live deletes expired items by (notices only).
EXPIRES_AT = "expiresAt"
WEBHOOK_PREFIX = "WEBHOOK#"
WEBHOOK_COUNT_SK = "WEBHOOKS"

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
    # Notifications read every change from here (``chalicelib.notifications``).
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
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
    return {"PK": {"S": owner_partition(owner_id)}, "SK": {"S": CREATED_PREFIX + day}}


def owner_partition(owner_id: str) -> str:
    """The partition of one organiser's items: their daily counters and their events."""
    return ORGANISER_PREFIX + owner_id


def owned_event_sort_key(event_id: int) -> str:
    return f"{OWNED_EVENT_PREFIX}{event_id:0{OWNED_EVENT_DIGITS}d}"


def owned_event_key(owner_id: str, event_id: int) -> Key:
    """The item that lists ``event_id`` among ``owner_id``'s events."""
    return {"PK": {"S": owner_partition(owner_id)}, "SK": {"S": owned_event_sort_key(event_id)}}


def event_id_of_owned(sort_key: str) -> int:
    """The inverse of ``owned_event_sort_key``."""
    return int(sort_key.removeprefix(OWNED_EVENT_PREFIX))


def webhook_key(owner_id: str, webhook_id: str) -> Key:
    """One of ``owner_id``'s webhook endpoints (in the organiser's own partition)."""
    return {"PK": {"S": owner_partition(owner_id)}, "SK": {"S": WEBHOOK_PREFIX + webhook_id}}


def webhook_id_of(sort_key: str) -> str:
    """The inverse of ``webhook_key``'s sort key."""
    return sort_key.removeprefix(WEBHOOK_PREFIX)


def webhook_count_key(owner_id: str) -> Key:
    """The count of ``owner_id``'s endpoints, which the per-organiser cap conditions on."""
    return {"PK": {"S": owner_partition(owner_id)}, "SK": {"S": WEBHOOK_COUNT_SK}}


def attendee_partition(event_id: int) -> str:
    """The ``EventsByNewest`` partition of an event's ticket holders, in booking order."""
    return f"{ATTENDEES_PREFIX}{event_id}"


def notice_key(domain_event_id: str, effect: str) -> Key:
    """The marker that makes ``effect`` of one domain event happen once."""
    return {"PK": {"S": NOTICE_PREFIX + domain_event_id}, "SK": {"S": NOTICE_PREFIX + effect}}


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
