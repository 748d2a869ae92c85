"""The DynamoDB client and the store, created lazily on first use and reused.

Nothing is created at import: a Lambda cold start pays only for what a request
needs, and Chalice's test client and ``chalice local`` set the stage's
environment only around each request, so it is read on use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from chalicelib.storage.schema import ENDPOINT_URL_ENV, TABLE_NAME_ENV
from chalicelib.storage.store import TicketStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_stores: dict[tuple[str, str | None], TicketStore] = {}


def make_client(endpoint_url: str | None = None) -> DynamoDBClient:
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
    """The store for the table named in the environment, created on first use and reused."""
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
