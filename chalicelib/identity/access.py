"""The caller, who may call which operation, and whom a request may act for.

Three levels, declared per operation in ``chalicelib.contract.operations``:

* ``PUBLIC``: anyone, no token (event information, the API description);
* ``SIGNED_IN``: any signed-in person with a verified email; they act for
  their own email only, taken from the token;
* ``ORGANISER``: a signed-in member of the ``organisers`` group; they create
  events (and own them), act as box office for their own events only, and
  read their own events' attendee and waiting lists.

No answer reveals whether *another* email holds a place, unless the caller is
that event's organiser: a request may only name someone else's email as the
event's owner.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from chalicelib.errors import Forbidden, Unauthenticated


class Access(StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed-in"
    ORGANISER = "organiser"


@dataclass(frozen=True)
class Caller:
    """A verified identity: the token's subject, its verified (normalised) email, its role."""

    subject: str
    email: str
    is_organiser: bool


_caller: ContextVar[Caller | None] = ContextVar("caller", default=None)


def set_caller(caller: Caller | None) -> None:
    _caller.set(caller)


def current_caller() -> Caller:
    caller = _caller.get()
    if caller is None:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>", invalid_token=False)
    return caller


def require(access: Access, caller: Caller | None) -> None:
    """Refuse a caller below the operation's level: 401 without a caller, 403 without the role."""
    if access == Access.PUBLIC:
        return
    if caller is None:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>", invalid_token=False)
    if access == Access.ORGANISER and not caller.is_organiser:
        raise Forbidden("only organisers may do this")


def speaks_for_self(caller: Caller, email: str | None) -> bool:
    """True when the request acts for the caller's own email (or names none)."""
    return email is None or email == caller.email


def require_owner(
    caller: Caller, owner_id: str | None, event_id: int, to: str = "act for another email"
) -> None:
    """Organiser's rights (box office, the event's lists): only the event's own organiser.

    ``to`` says what was refused, in the 403's message.
    """
    if not caller.is_organiser or owner_id != caller.subject:
        raise Forbidden(f"only the organiser of event {event_id} may {to}")
