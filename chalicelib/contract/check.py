"""Check a value against a declared schema: the JSON Schema keywords the contract uses.

A deliberately small interpreter: it knows exactly the keywords that
``chalicelib.contract.schemas`` uses for requests and refuses to run on any
other, so a constraint can never be published without being enforced.
``tests/test_contract.py`` shows that it agrees with a reference JSON Schema
validator on every declared schema.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from chalicelib.contract import schemas
from chalicelib.errors import InvalidRequest

#: Keywords that only describe (they constrain nothing).
ANNOTATIONS = frozenset({"description", "default", "title"})
KEYWORDS = frozenset(
    {
        "type",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "oneOf",
        "required",
        "properties",
        "additionalProperties",
        "minProperties",
    }
)
#: What a failed pattern means, in words.
PATTERN_PROBLEMS = {
    schemas.EMAIL_PATTERN: "is not a valid email address",
    schemas.NAME_PATTERN: (
        "must contain a visible character, and no control or bidirectional-override characters"
    ),
    schemas.EVENT_ID_DIGITS: "must be a positive integer of at most 18 digits",
    schemas.IDEMPOTENCY_KEY_PATTERN: "must be 1-100 letters, digits or . _ : -",
    schemas.RFC3339_PATTERN: "must be an RFC 3339 date-time with an offset, such as"
    " 2026-12-01T09:00:00Z",
    schemas.WEBHOOK_URL_PATTERN: "must be an absolute http(s) URL: scheme://host[:port][/path]"
    "[?query], with no credentials (user@), fragment (#) or spaces",
    schemas.WEBHOOK_ID_PATTERN: "must be a webhook id as POST /webhooks returned it (wh_ and"
    " 32 hex digits)",
    schemas.LIST_CURSOR_DIGITS: "must be the nextCursor of a previous page of this list"
    " (1 to 38 digits)",
}
_TYPE_PROBLEMS = {
    "string": "must be a string",
    "integer": "must be a whole number (a JSON integer)",
    "object": "must be a JSON object",
    "null": "must be null",
}
#: Field names quoted back in messages are user input: kept short.
_MAX_QUOTED_NAME = 40


def check(schema: schemas.Schema, value: Any, field: str) -> None:
    """Raise ``InvalidRequest`` naming ``field`` (or a field inside it) if ``value`` fails."""
    unknown = set(schema) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(f"the contract uses keywords check() does not enforce: {unknown}")
    if "oneOf" in schema:
        _check_one_of(schema, value, field)
        return
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        raise InvalidRequest(field, _TYPE_PROBLEMS.get(kind, f"must be of type {kind}"))
    if isinstance(value, str):
        _check_string(schema, value, field)
    elif isinstance(value, int):
        _check_number(schema, value, field)
    elif isinstance(value, dict):
        _check_object(schema, value, field)


def _has_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    raise ValueError(f"check() knows no type {kind!r}")


def _check_one_of(schema: schemas.Schema, value: Any, field: str) -> None:
    matches = 0
    for option in schema["oneOf"]:
        try:
            check(option, value, field)
        except InvalidRequest:
            continue
        matches += 1
    if matches != 1:
        raise InvalidRequest(field, f"must be {schema.get('description', 'of one listed kind')}")


def _check_string(schema: schemas.Schema, value: str, field: str) -> None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and len(value) < low:
        raise InvalidRequest(field, "must not be empty" if low == 1 else f"needs {low}+ characters")
    if high is not None and len(value) > high:
        raise InvalidRequest(field, f"must be at most {high} characters")
    pattern = schema.get("pattern")
    if pattern is not None and not _compiled(pattern).fullmatch(value):
        raise InvalidRequest(field, PATTERN_PROBLEMS.get(pattern, "has the wrong form"))


def _check_number(schema: schemas.Schema, value: int, field: str) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None and not low <= value <= high:
        raise InvalidRequest(field, f"must be between {low:,} and {high:,}")
    if low is not None and value < low:
        raise InvalidRequest(field, f"must be at least {low:,}")
    if high is not None and value > high:
        raise InvalidRequest(field, f"must be at most {high:,}")


def _check_object(schema: schemas.Schema, value: dict[str, Any], field: str) -> None:
    properties: dict[str, schemas.Schema] = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        for name in value:
            if name not in properties:
                quoted = name if len(name) <= _MAX_QUOTED_NAME else name[:_MAX_QUOTED_NAME] + "..."
                raise InvalidRequest(quoted, "is not a field of this request")
    for name in schema.get("required", []):
        if name not in value:
            raise InvalidRequest(name, "is required")
    fewest = schema.get("minProperties")
    if fewest is not None and len(value) < fewest:
        raise InvalidRequest(field, f"must name at least one of: {', '.join(properties)}")
    for name, item in properties.items():
        if name in value:
            check(item, value[name], name)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A declared ``^...$`` pattern, matched whole (so ``$`` never admits a trailing newline)."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"contract patterns are anchored: {pattern}")
    return re.compile(pattern[1:-1])
