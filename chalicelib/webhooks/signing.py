"""Standard Webhooks 1.0 signatures: what a receiver checks to trust a delivery.

A delivery carries three headers: ``webhook-id`` (the domain event's id, the same
on every retry, so a receiver can drop duplicates), ``webhook-timestamp`` (Unix
seconds of this attempt) and ``webhook-signature``: ``v1,`` and the base64
HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part
of the secret after ``whsec_``. Signing the id and the timestamp with the body
means a captured delivery cannot be replayed later (the timestamp is outside the
tolerance) or passed off as another event (the id is signed).

Secrets are shown to the organiser once, when the endpoint is registered; they
are stored to sign with, and never logged or returned again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
#: Random bytes in a new secret (Standard Webhooks asks for 24 to 64).
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
#: How far a delivery's timestamp may be from the receiver's clock, either way.
TOLERANCE_SECONDS = 5 * 60


class InvalidSignature(ValueError):
    """A delivery a receiver must not trust: the message says why (never the secret)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value of one attempt: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    msg_id: str,
    timestamp: str,
    body: str,
    signature_header: str,
    now_seconds: int,
    tolerance_seconds: int = TOLERANCE_SECONDS,
) -> None:
    """Raise ``InvalidSignature`` unless the headers sign ``body`` with ``secret``.

    ``signature_header`` may hold several space-separated signatures (a receiver
    rotating secrets); one ``v1`` match is enough. Compared in constant time.
    """
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs(now_seconds - sent_at) > tolerance_seconds:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    expected = sign(secret, msg_id, sent_at, body).encode()
    for candidate in signature_header.split(" "):
        if candidate.startswith(SIGNATURE_VERSION + ",") and hmac.compare_digest(
            candidate.encode(), expected
        ):
            return
    raise InvalidSignature("no webhook-signature matches")
