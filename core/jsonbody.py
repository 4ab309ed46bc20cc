"""The one parser for JSON request bodies: bounded depth, no NaN, no numbers that overflow.

Python's `json.loads` recurses once per nesting level, so a 40 KB body of brackets raises
RecursionError; orjson refuses anything deeper than 1,024 levels and any number that does not
fit a double, each with a plain decode error. Every request body is parsed here.

A key given twice in one object is refused too: parsers disagree on which one wins (orjson and
Python keep the last, others the first), and a proxy or a signature check that read the other
one would see another request. orjson does not report duplicates, so the parsed keys are counted
against the body's colons: every key has one, so equal counts mean no key was dropped. Only a
body with colons inside its strings (times, URLs) is parsed a second time to look.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from core.errors import InvalidJson

__all__ = ["InvalidJson", "is_json", "parse_json"]


def parse_json(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidJson() from None
    if _key_count(value) != raw.count(b":") and _has_duplicate_key(raw):
        raise InvalidJson("A key appears twice in one object of the request body")
    return value


def _key_count(value: Any) -> int:
    """How many keys the objects in `value` hold (iterative: bodies nest up to 1,024 deep)."""
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            count += len(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Duplicate
    return found


class _Duplicate(Exception):
    pass


def _has_duplicate_key(raw: bytes) -> bool:
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except _Duplicate:
        return True
    except RecursionError:
        raise InvalidJson("The request body nests too deeply") from None
    except ValueError:
        return False  # the standard library is stricter than orjson here; orjson's reading stands
    return False


def is_json(content_type: str | None) -> bool:
    """True for the media types FastAPI reads as JSON: application/json and application/*+json.
    (FastAPI validates any other body, or one without a type, as raw bytes: it is never parsed.)"""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
