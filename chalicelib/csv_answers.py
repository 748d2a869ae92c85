"""Lists as CSV: content negotiation, RFC 4180 text, and no spreadsheet formulas.

A list answer is one page either way: Chalice (API Gateway and Lambda behind
it) buffers a whole answer, it cannot stream, so a CSV answer is a page like the
JSON one, and the cursor of the next page travels in a header.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"
#: Characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection
#: list: = + - @, and tab and carriage return, which some import as a new cell).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: A cell that starts with the escape itself is escaped too, so that two different
#: values never show alike (``=x`` becomes ``'=x``, and ``'=x`` becomes ``''=x``).
ESCAPED_STARTS = (*FORMULA_STARTS, "'")


def wants_csv(accept: str | None) -> bool:
    """Whether ``Accept`` prefers ``text/csv`` to JSON (JSON when it does not say, or ties).

    Media ranges are weighed by their ``q`` (RFC 9110); wildcards count for JSON.
    """
    if not accept:
        return False
    weights: dict[str, float] = {}
    for media_range in accept.split(","):
        media_type, *parameters = (part.strip().lower() for part in media_range.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type] = max(weight, weights.get(media_type, 0.0))
    json_weight = max(weights.get(t, 0.0) for t in (JSON_MEDIA_TYPE, "application/*", "*/*"))
    csv_weight = max(weights.get(MEDIA_TYPE, 0.0), weights.get("text/*", 0.0))
    return csv_weight > 0 and csv_weight > json_weight


def safe_cell(value: Any) -> str:
    """One cell's text; text a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not isinstance(value, int) and text.startswith(ESCAPED_STARTS):
        return "'" + text
    return text


def render(columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header row of ``columns``, then one line per row (RFC 4180: CRLF, quoted as needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = list(columns)
    writer.writerow(names)
    for row in rows:
        writer.writerow([safe_cell(row[name]) for name in names])
    return out.getvalue()
