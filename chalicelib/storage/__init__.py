"""DynamoDB access: the only package that knows the table, its keys and its expressions.

schema      keys, prefixes, indexes, the table definition, access patterns
items       item mapping, both ways, per item type
conditions  the booking rules as named condition parts
writes      the transactions, composed from those parts (pure, no I/O)
store       ``TicketStore``: every request, retried, and failures with old items
client      the client and store, created lazily and reused
webhooks    organisers' webhook endpoints: their items, cap and failure records
"""

from chalicelib.storage.client import forget_stores, make_client, ticket_store
from chalicelib.storage.store import EventPartition, QueryPage, StartKey, TicketStore

__all__ = [
    "EventPartition",
    "QueryPage",
    "StartKey",
    "TicketStore",
    "forget_stores",
    "make_client",
    "ticket_store",
]
