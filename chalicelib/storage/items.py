"""Item mapping, both ways: each item type's ``*_to_item`` and ``*_from_item`` side by side.

Attribute names live here (and in the conditions and updates that name them in
``chalicelib.storage.conditions`` and ``chalicelib.storage.writes``); keys come
from ``chalicelib.storage.schema``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from chalicelib.models import EndpointStatus, Event, Place, Status, WebhookEndpoint
from chalicelib.storage import ranks, schema

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, "AttributeValueTypeDef"]

_deserializer = TypeDeserializer()


class MalformedItem(ValueError):
    """An item that no code path of the service writes (a hand edit or a bug): the audit
    reports it; the booking paths never see one."""


def number(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def string(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


# -- the event --------------------------------------------------------------------------


def event_to_item(event: Event) -> Item:
    item: Item = {
        **schema.event_key(event.event_id),
        "GSI1PK": string(schema.EVENT_LIST_PARTITION),
        "GSI1SK": number(event.event_id),
        "eventId": number(event.event_id),
        "name": string(event.name),
        "totalTickets": number(event.total_tickets),
        "availableTickets": number(event.available_tickets),
        "bookedTickets": number(event.booked_tickets),
        "waitingCount": number(event.waiting_list_count),
        "lastWaitKey": number(event.last_wait_key),
        "promotedCount": number(event.promoted_count),
        "leftCount": number(event.left_count),
        "pendingPromotions": number(event.pending_promotions),
        "createdAt": string(event.created_at),
    }
    if event.owner_id is not None:
        item["ownerId"] = string(event.owner_id)
    if event.waiting_list_cap is not None:
        item["waitingListCap"] = number(event.waiting_list_cap)
    if event.sales_open_at is not None:
        item["salesOpenAt"] = number(event.sales_open_at)
    if event.sales_close_at is not None:
        item["salesCloseAt"] = number(event.sales_close_at)
    return item


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
        owner_id=data.get("ownerId"),
        waiting_list_cap=_int_or_none(data.get("waitingListCap")),
        promoted_count=int(data.get("promotedCount", 0)),
        sales_open_at=_int_or_none(data.get("salesOpenAt")),
        sales_close_at=_int_or_none(data.get("salesCloseAt")),
        sales_closed=bool(data.get("salesClosed", False)),
        cancelled_at=data.get("cancelledAt"),
        released_count=int(data.get("releasedCount", 0)),
        release_cursor=data.get("releaseCursor"),
        settings_version=int(data.get("settingsVersion", 0)),
        left_count=int(data.get("leftCount", 0)),
        last_promoted_key=int(data.get("lastPromotedKey", 0)),
        pending_promotions=int(data.get("pendingPromotions", 0)),
    )


def owned_event_to_item(event: Event) -> Item:
    """The organiser's listing of their event: keys only (the event item has the rest)."""
    assert event.owner_id is not None, "only an owned event is listed"
    return {**schema.owned_event_key(event.owner_id, event.event_id)}


def owned_event_id_from_item(item: dict[str, Any]) -> int:
    return schema.event_id_of_owned(item["SK"]["S"])


# -- a person's place ---------------------------------------------------------------------


def place_to_item(place: Place, now: str) -> Item:
    """A new place taken at ``now``: a ticket (listed under its event's attendees by its
    ``booking_key``), or a waiting entry with its ``waitKey``."""
    item: Item = {
        **schema.person_key(place.event_id, place.email),
        "status": string(place.status),
        "joinedAt": string(now),
    }
    if place.status == Status.BOOKED:
        item["bookedAt"] = string(now)
    if place.booking_key is not None:
        item.update(attendee_index_keys(place.event_id, place.booking_key))
    if place.wait_key is not None:
        item["waitKey"] = number(place.wait_key)
    if place.request_key:
        item["requestKey"] = string(place.request_key)
    return item


def place_from_item(item: dict[str, Any]) -> Place:
    data = _plain(item)
    raw_status = data.get("status", Status.WAITLISTED)
    if raw_status not in (Status.BOOKED, Status.WAITLISTED):
        raise MalformedItem(f"place with unknown status {raw_status!r}")
    return Place(
        event_id=schema.event_id_of(data["PK"]),
        email=schema.email_of(data["SK"]),
        status=Status(raw_status),
        wait_key=_int_or_none(data.get("waitKey")),
        request_key=data.get("requestKey"),
        promoted_from_wait_key=_int_or_none(data.get("promotedFromWaitKey")),
        released_at=data.get("releasedAt"),
        booking_key=_booking_key(data),
        joined_at=data.get("joinedAt"),
        booked_at=data.get("bookedAt"),
    )


def attendee_index_keys(event_id: int, booking_key: int) -> Item:
    """The attributes that list a ticket in its event's attendee list (``EventsByNewest``)."""
    return {
        "GSI1PK": string(schema.attendee_partition(event_id)),
        "GSI1SK": number(booking_key),
    }


def in_attendee_index(item: dict[str, Any]) -> bool:
    """Whether an item carries either attribute of an attendee-list entry (raw item)."""
    return "GSI1PK" in item or "GSI1SK" in item


def _booking_key(data: dict[str, Any]) -> int | None:
    """The place's booking key, if it is listed under its own event's attendees."""
    listed_under = data.get("GSI1PK")
    key = data.get("GSI1SK")
    if key is None or listed_under != schema.attendee_partition(schema.event_id_of(data["PK"])):
        return None
    return int(key)


def attendee_entry_from_index_item(item: dict[str, Any]) -> tuple[str, int]:
    """An ``EventsByNewest`` entry of an attendee list (keys only): the email and its key."""
    return schema.email_of(item["SK"]["S"]), int(item["GSI1SK"]["N"])


def waiting_place_from_index_item(item: dict[str, Any]) -> Place:
    """The ``WaitingList`` index is keys-only: an entry there is a waiting place."""
    return place_from_item({**item, "status": string(Status.WAITLISTED)})


# -- a node of the position index ---------------------------------------------------------
# (its from-item side is ``ranks.counts_from_item``: the audit reads raw items)


def rank_node_to_item(event_id: int, node: ranks.NodeRef, counts: dict[int, int]) -> Item:
    """A node with the given counts per child, as the joins that made them would leave it."""
    item: Item = {**schema.rank_node_key(event_id, node)}
    for child, count in counts.items():
        item[ranks.cell(child)] = number(count)
    return item


# -- an organiser's webhook endpoint ------------------------------------------------------


def webhook_endpoint_to_item(endpoint: WebhookEndpoint) -> Item:
    """A new endpoint (its failure state starts empty; the worker's updates add it)."""
    item: Item = {
        **schema.webhook_key(endpoint.owner_id, endpoint.webhook_id),
        "ownerId": string(endpoint.owner_id),
        "webhookId": string(endpoint.webhook_id),
        "url": string(endpoint.url),
        "secret": string(endpoint.secret),
        "status": string(endpoint.status),
        "createdAt": string(endpoint.created_at),
        "consecutiveFailures": number(endpoint.consecutive_failures),
    }
    if endpoint.event_id is not None:
        item["eventId"] = number(endpoint.event_id)
    return item


def webhook_endpoint_from_item(item: dict[str, Any]) -> WebhookEndpoint:
    data = _plain(item)
    raw_status = data.get("status", EndpointStatus.ENABLED)
    if raw_status not in (EndpointStatus.ENABLED, EndpointStatus.DISABLED):
        raise MalformedItem(f"webhook endpoint with unknown status {raw_status!r}")
    return WebhookEndpoint(
        owner_id=data["ownerId"],
        webhook_id=data["webhookId"],
        url=data["url"],
        event_id=_int_or_none(data.get("eventId")),
        secret=data["secret"],
        created_at=data["createdAt"],
        status=EndpointStatus(raw_status),
        consecutive_failures=int(data.get("consecutiveFailures", 0)),
        failing_since_ms=_int_or_none(data.get("failingSince")),
        last_failure_ms=_int_or_none(data.get("lastFailureAt")),
        disabled_at=data.get("disabledAt"),
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None
