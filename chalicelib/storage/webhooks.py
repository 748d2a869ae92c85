"""Organisers' webhook endpoints in the table: the only module that reads or writes them.

Each endpoint is an item in its organiser's partition (``ORGANISER#<sub>`` /
``WEBHOOK#<id>``, see ``chalicelib.storage.schema``), next to a count item
(``WEBHOOKS``) that caps how many endpoints one organiser may have: registering
adds to the count and puts the endpoint in one transaction, under the cap's
condition, so two registrations at once cannot pass the cap. The cap also
bounds the one ``Query`` that finds an organiser's endpoints for a domain event.

The conditions here are module-level ``Condition`` values named for the rule they
keep (not ``conditions.PARTS``, which holds the booking rules and their guard
scenarios). Requests go through the store's building blocks (``get_item``,
``query_pages``, ``update_if``, ``transact_items``) and so its ``RetryPolicy``; a single-item
update that timed out may have been applied, so a failure count can be one too
high after a timeout, which only brings a disable a little nearer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import WebhookLimitReached
from chalicelib.models import EndpointStatus, WebhookEndpoint
from chalicelib.storage import items, schema
from chalicelib.storage.conditions import Condition
from chalicelib.storage.store import TicketStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

#: How many endpoints one organiser may register (all events and per event together).
MAX_ENDPOINTS_PER_ORGANISER = 10

#: Registering never overwrites an endpoint (ids are random; this makes it certain).
endpoint_is_new = Condition("attribute_not_exists(PK)")
#: Deleting, re-enabling and recording failures act only on an endpoint that still
#: exists: a worker finishing an attempt never brings a deleted endpoint back.
endpoint_exists = Condition("attribute_exists(PK)")


def under_endpoint_cap(cap: int) -> Condition:
    """The organiser has fewer than ``cap`` endpoints (no count item yet: none)."""
    return Condition(
        "(attribute_not_exists(endpointCount) OR endpointCount < :cap)",
        values={":cap": items.number(cap)},
    )


def still_failing(failures: int) -> Condition:
    """Disable only an enabled endpoint that has not succeeded since the failure that
    decided it: a success in between resets the count below ``failures``."""
    return endpoint_exists & Condition(
        "#status = :enabled AND consecutiveFailures >= :failures",
        names={"#status": "status"},
        values={
            ":enabled": items.string(EndpointStatus.ENABLED),
            ":failures": items.number(failures),
        },
    )


def add_endpoint(
    store: TicketStore, endpoint: WebhookEndpoint, cap: int = MAX_ENDPOINTS_PER_ORGANISER
) -> None:
    """Store a new endpoint and count it, in one transaction; ``WebhookLimitReached``
    when the organiser already has ``cap``."""
    count = under_endpoint_cap(cap)
    operations: list[TransactWriteItemTypeDef] = [
        {
            "Update": {
                "TableName": store.table_name,
                "Key": schema.webhook_count_key(endpoint.owner_id),
                "UpdateExpression": "ADD endpointCount :one",
                "ConditionExpression": count.expression,
                "ExpressionAttributeValues": {**count.values, ":one": items.number(1)},
            }
        },
        {
            "Put": {
                "TableName": store.table_name,
                "Item": items.webhook_endpoint_to_item(endpoint),
                "ConditionExpression": endpoint_is_new.expression,
            }
        },
    ]
    failed = _transact(store, operations)
    if failed and failed[0]:
        raise WebhookLimitReached(cap)
    if failed:
        raise RuntimeError("a new webhook id was already taken")


def delete_endpoint(store: TicketStore, owner_id: str, webhook_id: str) -> bool:
    """Delete the endpoint and uncount it; False when it does not exist."""
    operations: list[TransactWriteItemTypeDef] = [
        {
            "Delete": {
                "TableName": store.table_name,
                "Key": schema.webhook_key(owner_id, webhook_id),
                "ConditionExpression": endpoint_exists.expression,
            }
        },
        {
            "Update": {
                "TableName": store.table_name,
                "Key": schema.webhook_count_key(owner_id),
                "UpdateExpression": "ADD endpointCount :minusOne",
                "ExpressionAttributeValues": {":minusOne": items.number(-1)},
            }
        },
    ]
    return not _transact(store, operations)


def get_endpoint(store: TicketStore, owner_id: str, webhook_id: str) -> WebhookEndpoint | None:
    """One endpoint, read consistently (the worker reads it before each attempt)."""
    item = store.get_item(schema.webhook_key(owner_id, webhook_id))
    return items.webhook_endpoint_from_item(item) if item else None


def endpoints(store: TicketStore, owner_id: str) -> list[WebhookEndpoint]:
    """Every endpoint of ``owner_id``, oldest id first: one ``Query`` of their partition's
    ``WEBHOOK#`` items (the cap keeps it to one page)."""
    pages = store.query_pages(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues={
            ":pk": items.string(schema.owner_partition(owner_id)),
            ":prefix": items.string(schema.WEBHOOK_PREFIX),
        },
        ConsistentRead=True,
    )
    return [items.webhook_endpoint_from_item(item) for page in pages for item in page["Items"]]


def enable_endpoint(store: TicketStore, owner_id: str, webhook_id: str) -> WebhookEndpoint | None:
    """Enable it again with a clean failure record; None when it does not exist."""
    return _update(
        store,
        owner_id,
        webhook_id,
        Condition(
            "SET #status = :enabled, consecutiveFailures = :zero"
            " REMOVE failingSince, lastFailureAt, disabledAt",
            names={"#status": "status"},
            values={":enabled": items.string(EndpointStatus.ENABLED), ":zero": items.number(0)},
        ),
        endpoint_exists,
    )


def record_failure(
    store: TicketStore, owner_id: str, webhook_id: str, now_ms: int
) -> WebhookEndpoint | None:
    """Count a failed attempt (the streak starts now if it is the first); the endpoint
    afterwards, or None when it was deleted meanwhile."""
    return _update(
        store,
        owner_id,
        webhook_id,
        Condition(
            "SET consecutiveFailures = if_not_exists(consecutiveFailures, :zero) + :one,"
            " failingSince = if_not_exists(failingSince, :now), lastFailureAt = :now",
            values={
                ":zero": items.number(0),
                ":one": items.number(1),
                ":now": items.number(now_ms),
            },
        ),
        endpoint_exists,
    )


def record_success(store: TicketStore, owner_id: str, webhook_id: str) -> None:
    """A delivery went through: the failing streak is over."""
    _update(
        store,
        owner_id,
        webhook_id,
        Condition(
            "SET consecutiveFailures = :zero REMOVE failingSince",
            values={":zero": items.number(0)},
        ),
        endpoint_exists,
    )


def disable_endpoint(
    store: TicketStore, owner_id: str, webhook_id: str, failures: int, now_iso: str
) -> WebhookEndpoint | None:
    """Disable the endpoint if it is still failing (``still_failing``); the endpoint
    afterwards, or None when the condition did not hold."""
    return _update(
        store,
        owner_id,
        webhook_id,
        Condition(
            "SET #status = :disabled, disabledAt = :now",
            names={"#status": "status"},
            values={
                ":disabled": items.string(EndpointStatus.DISABLED),
                ":now": items.string(now_iso),
            },
        ),
        still_failing(failures),
    )


def _update(
    store: TicketStore, owner_id: str, webhook_id: str, update: Condition, condition: Condition
) -> WebhookEndpoint | None:
    """One conditional ``UpdateItem``; the item afterwards, or None if the condition failed."""
    key = schema.webhook_key(owner_id, webhook_id)
    applied, item = store.update_if(key, update, condition, returns="ALL_NEW")
    return items.webhook_endpoint_from_item(item) if applied else None


def _transact(store: TicketStore, operations: list[TransactWriteItemTypeDef]) -> list[bool]:
    """Run one transaction. ``[]`` when it was applied; otherwise, per operation, whether
    its condition failed."""
    reasons = store.transact_items(list(operations))
    if reasons is None:
        return []
    return [reason.get("Code") == "ConditionalCheckFailed" for reason in reasons]
