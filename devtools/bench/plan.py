"""The flash sale's plan: its events, counters and phases, laid out before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from chalicelib import booking
from devtools.bench.scenario import (
    BASELINE_COUNTERS,
    ORGANISER_ID,
    Job,
    prefill_bookings,
    put_baseline_counter,
)


@dataclass
class FlashSale:
    """The planned run: its phases, what runs between them, and the events they use."""

    phases: list[Job]
    before: dict[str, Callable[[], None]]
    sale_event_id: int
    large_window: int


def plan_flash_sale(store: Any, args: Any) -> FlashSale:
    """Create the events and counters, and lay out the phases (see ``devtools.bench``)."""
    client, table = store.client, store.table_name
    event = booking.create_event(store, "Flash sale", args.tickets, owner_id=ORGANISER_ID)
    warm = [f"warm{i:06d}@example.com" for i in range(args.warmup)]
    warm_event = booking.create_event(store, "Warm-up", max(1, args.warmup), owner_id=ORGANISER_ID)
    put_baseline_counter(client, table, BASELINE_COUNTERS[0], args.tickets)
    put_baseline_counter(client, table, BASELINE_COUNTERS[1], args.warmup)
    emails = [f"fan{i:06d}@example.com" for i in range(args.users)]
    buyers, waiters = emails[: args.tickets], emails[args.tickets :]
    quarter = args.tickets // 4
    quarters = [slice(i * quarter, args.tickets if i == 3 else (i + 1) * quarter) for i in range(4)]
    # Warm-up first (DynamoDB Local's JVM compiles its hot paths during the
    # first thousands of requests); then baseline and service alternate in ABBA
    # blocks, so that a database still warming up (or any drift) weighs on both
    # sides equally.
    phases: list[Job] = [
        ("warmup", warm_event.event_id, warm),
        ("warmup_baseline", 0, warm),
        *[
            (f"{name}_{block}", event.event_id if name == "book" else 0, buyers[part])
            for block, part in enumerate(quarters)
            for name in (("baseline", "book") if block % 2 == 0 else ("book", "baseline"))
        ],
        ("waitlist", event.event_id, waiters),
        ("cancel_promote", event.event_id, buyers[: args.cancels]),
    ]
    before: dict[str, Callable[[], None]] = {}
    window = min(1000, args.large_event // 2)
    if args.large_event:
        # Bookings 1..window, then (filled in directly) up to
        # large_event - window, then the last window bookings.
        large = booking.create_event(store, "Large event", args.large_event, owner_id=ORGANISER_ID)
        crowd = [f"crowd{i:06d}@example.com" for i in range(2 * window)]
        phases += [
            ("large_first", large.event_id, crowd[:window]),
            ("large_last", large.event_id, crowd[window:]),
        ]
        before["large_last"] = partial(
            prefill_bookings, client, table, large.event_id, args.large_event - 2 * window
        )
    return FlashSale(phases, before, event.event_id, window)
