"""Raw request bytes to a JSON object, or the 4xx that says what is wrong with them.

Everything here happens before ``json`` sees the text, or instead of trusting it:
Python's parser recurses (a deeply nested body raises ``RecursionError``), keeps
the last of duplicate keys, decodes UTF-16 and UTF-32 as readily as UTF-8,
accepts ``NaN``, and turns ``\\ud800`` into a lone surrogate that no log or
database can encode. Each of those is refused here with a message naming it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from chalicelib.contract.schemas import MAX_BODY_BYTES, MAX_JSON_DEPTH
from chalicelib.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

#: Characters refused in any string, keys included: C0 and C1 controls, DEL,
#: and lone surrogates (only ``\\u`` escapes can produce those).
FORBIDDEN_CHARACTERS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")
#: Digits a JSON integer may have: more than any stored number needs (DynamoDB
#: numbers have 38 digits), few enough that ``int()`` is cheap.
MAX_INTEGER_DIGITS = 40
_MEDIA_TYPE = "application/json"


def check_content_type(header: str | None) -> None:
    """Only JSON in UTF-8: ``application/json`` with no charset, or ``charset=utf-8``."""
    if header is None:
        return
    media_type, *parameters = (part.strip().lower() for part in header.split(";"))
    if media_type != _MEDIA_TYPE:
        raise UnsupportedMediaType(f"send {_MEDIA_TYPE} (got {media_type[:40]!r})")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("send JSON encoded as UTF-8 (charset=utf-8)")


def check_size(raw: bytes) -> None:
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"a request body may be at most {MAX_BODY_BYTES:,} bytes")


def parse_json_object(raw: str | bytes | None) -> dict[str, Any]:
    """The body as a JSON object; every refusal names the ``body``."""
    field = "body"
    if not raw:
        raise InvalidRequest(field, "a JSON object is required")
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    check_size(data)
    text = _utf8_text(data)
    _check_depth(text, field)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _Refused as refused:
        raise InvalidRequest(field, str(refused)) from None
    except ValueError:
        raise InvalidRequest(field, "is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(field, "must be a JSON object")
    _check_strings(value, field)
    return value


class _Refused(ValueError):
    """JSON that parses but is refused (the message says why)."""


def _utf8_text(data: bytes) -> str:
    # A NUL byte never occurs in UTF-8 JSON text: it means UTF-16 or UTF-32.
    if data.startswith(b"\xef\xbb\xbf") or b"\x00" in data:
        raise UnsupportedMediaType("send JSON encoded as UTF-8, without a byte order mark")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedMediaType("send JSON encoded as UTF-8") from None


def _check_depth(text: str, field: str) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH`` without recursing (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(field, f"nests deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Refused("has a duplicate key")
    return value


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _Refused(f"has an integer longer than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("has a number too large to store")
    return value


def _no_constant(name: str) -> float:
    raise _Refused(f"{name} is not JSON")


def _check_strings(value: Any, field: str) -> None:
    """No control character or lone surrogate in any string, keys included."""
    if isinstance(value, str):
        if FORBIDDEN_CHARACTERS.search(value):
            raise InvalidRequest(field, "has a control character or a lone surrogate in a string")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, field)
            _check_strings(item, field)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, field)
