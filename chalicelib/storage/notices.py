"""Notice markers: each effect of a domain event (an email, the webhooks) happens once.

The stream delivers records at least once, and a batch that fails is delivered
again from its failed record. So before an effect the handler *claims* the
marker of (domain event id, effect), and after it marks the marker *done*:

* a claim succeeds on a new marker, or on one whose claim lapsed (a handler that
  died mid-effect; its effect may or may not have happened, so a lapsed claim is
  retried: at least once, never silently dropped);
* a claim fails on a done marker (the effect happened: skip it), and on one
  claimed by a live handler (report the record failed; it comes back later).

A failed claim returns the marker as it was (``ReturnValuesOnConditionCheckFailure``),
so the caller knows which without another read. Markers expire by the table's
time to live (``expiresAt``) well after the stream's 24-hour retention.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from chalicelib.storage import items, schema
from chalicelib.storage.conditions import Condition

if TYPE_CHECKING:
    from chalicelib.storage.store import TicketStore

#: How long a claim holds: an effect is one SES call or a few SQS sends, each
#: bounded by a 5-second timeout; after this the claim counts as abandoned.
CLAIM_LEASE_MS = 30_000
#: Markers outlive the stream's retention (24 hours) comfortably.
MARKER_LIFETIME_S = 7 * 24 * 3600


class NoticeState(StrEnum):
    CLAIMED = "CLAIMED"
    DONE = "DONE"


class Claim(StrEnum):
    """What a claim found."""

    TAKEN = "TAKEN"  # ours now: do the effect, then mark it done
    DONE = "DONE"  # already done: skip
    BUSY = "BUSY"  # another handler holds a live claim: try again later


#: A new marker, a released one, or one whose claim lapsed before ``:now``.
claimable = Condition(
    "attribute_not_exists(#state) OR (#state = :claimed AND claimedUntil < :now)",
    names={"#state": "state"},
    values={":claimed": items.string(NoticeState.CLAIMED)},
)


def held_by(claim_until: int) -> Condition:
    """The marker still carries our claim (nobody took it over after it lapsed)."""
    return Condition(
        "#state = :claimed AND claimedUntil = :mine",
        names={"#state": "state"},
        values={
            ":claimed": items.string(NoticeState.CLAIMED),
            ":mine": items.number(claim_until),
        },
    )


class NoticeLedger:
    """Claims and completes notice markers in the booking table."""

    def __init__(self, store: TicketStore) -> None:
        self.store = store

    def claim(self, domain_event_id: str, effect: str, now_ms: int) -> tuple[Claim, int]:
        """Claim ``effect`` of ``domain_event_id``: what was found, and the claim's expiry."""
        until = now_ms + CLAIM_LEASE_MS
        take = Condition(
            f"SET #state = :claimed, claimedUntil = :until, {schema.EXPIRES_AT} = :expires",
            names={"#state": "state"},
            values={
                ":claimed": items.string(NoticeState.CLAIMED),
                ":until": items.number(until),
                ":expires": items.number(now_ms // 1000 + MARKER_LIFETIME_S),
            },
        )
        lapsed_before_now = Condition(values={":now": items.number(now_ms)})
        taken, old = self.store.update_if(
            schema.notice_key(domain_event_id, effect), take, claimable & lapsed_before_now
        )
        if taken:
            return Claim.TAKEN, until
        done = old.get("state", {}).get("S") == NoticeState.DONE
        return (Claim.DONE if done else Claim.BUSY), until

    def release(self, domain_event_id: str, effect: str, claim_until: int) -> None:
        """Give up our claim after the effect failed, so the stream's retry, which comes at
        once, can claim it again instead of waiting for the lease to lapse."""
        forget = Condition("REMOVE #state, claimedUntil", names={"#state": "state"})
        self._finish(domain_event_id, effect, claim_until, forget)

    def done(self, domain_event_id: str, effect: str, claim_until: int) -> None:
        """Mark the effect done; if our claim lapsed and was taken over, leave it to the taker
        (the effect then happens twice: the rare cost of at-least-once)."""
        mark = Condition(
            "SET #state = :done REMOVE claimedUntil",
            names={"#state": "state"},
            values={":done": items.string(NoticeState.DONE)},
        )
        self._finish(domain_event_id, effect, claim_until, mark)

    def _finish(
        self, domain_event_id: str, effect: str, claim_until: int, update: Condition
    ) -> None:
        """Apply ``update`` to the marker if it still carries our claim (else nothing)."""
        key = schema.notice_key(domain_event_id, effect)
        self.store.update_if(key, update, held_by(claim_until))
