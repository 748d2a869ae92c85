"""Hypothesis strategies that follow a declared schema, the way a client generator would.

They read only the schema, never the service's code: a string gets its
``pattern`` (matched whole, as ECMA-262 reads ``^...$``) and its length bounds,
an integer its ``minimum`` and ``maximum``, an object its ``required`` and
optional properties, ``oneOf`` any one of its options. (``hypothesis-jsonschema``
would do the same, but no release of it runs on the Hypothesis this project uses.)
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from chalicelib.contract.check import ANNOTATIONS, KEYWORDS
from chalicelib.contract.schemas import Schema

#: What the generator understands: exactly what the service's checks enforce.
KNOWN = KEYWORDS | ANNOTATIONS


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    unknown = set(schema) - KNOWN
    assert not unknown, f"the generator does not know {unknown}"
    if "oneOf" in schema:
        return st.one_of([from_schema(option) for option in schema["oneOf"]])
    kind = schema["type"]
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "string":
        return _string(schema)
    if kind == "object":
        return _object(schema).filter(lambda value: len(value) >= schema.get("minProperties", 0))
    if kind == "null":
        return st.none()
    raise AssertionError(f"no strategy for type {kind}")


def _string(schema: Schema) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        text = st.from_regex(schema["pattern"], fullmatch=True)
    else:
        text = st.text(min_size=low, max_size=high)
    return text.filter(lambda value: low <= len(value) and (high is None or len(value) <= high))


def _object(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: from_schema(properties[name]) for name in sorted(required)},
        optional={
            name: from_schema(item) for name, item in properties.items() if name not in required
        },
    )
