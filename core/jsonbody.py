"""The one parser for JSON request bodies: bounded depth, no NaN, no numbers that overflow.

Python's `json.loads` recurses once per nesting level, so a 40 KB body of brackets raises
RecursionError; orjson refuses anything deeper than 1,024 levels and any number that does not
fit a double, each with a plain decode error. Every request body is parsed here.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import InvalidJson

__all__ = ["InvalidJson", "is_json", "parse_json"]


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidJson() from None


def is_json(content_type: str | None) -> bool:
    """True for the media types FastAPI reads as JSON: application/json and application/*+json.
    (FastAPI validates any other body, or one without a type, as raw bytes: it is never parsed.)"""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
