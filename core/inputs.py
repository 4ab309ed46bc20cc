"""What every input must be, in one place: text without control characters, and numbers and
dates of their own JSON type.

Control characters are refused because no field needs them and PostgreSQL cannot store NUL
(`invalid byte sequence for encoding "UTF8": 0x00`) while SQLite and MongoDB can: refusing them
at the edge keeps every backend answering the same. Tab, line feed and carriage return stay
allowed (a description may have lines).

Numbers and dates are strict because pydantic's lax mode turns `true` into 1, `"2"` into 2 and
`1900000000` into a date: a client that sends those has a bug we should name, not guess around.
An integral number written with a fraction (`8.0`) is an integer, though: JSON Schema's
"integer" says so, and generated clients and fuzzers send it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Strict

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL_MESSAGE = "must not contain control characters"
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
"""`CONTROL` as a JSON Schema pattern, for the OpenAPI document (core/openapi.py declares it on
every text input). Lone surrogates are left out: no JSON text generator or client sends them,
and a pattern cannot hold them portably."""

PATH_ID_PATTERN = r"^(?!\.\.?$)[^/\u0000-\u001f\u007f-\u009f]+$"
"""A path id: text with no control character and no slash, and not a dot-segment (`.` or
`..`), which every HTTP client resolves away before sending, so the request would reach
another route."""


def has_control(value: str) -> bool:
    """True if `value` holds a control character (other than tab, LF, CR) or a lone surrogate."""
    return CONTROL.search(value) is not None


def clean_strings(value: Any) -> Any:
    """`value` unchanged, or ValueError if it (or a string inside it) has a control character."""
    if isinstance(value, str):
        if has_control(value):
            raise ValueError(CONTROL_MESSAGE)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            clean_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            clean_strings(key)
            clean_strings(item)
    return value


def _date_text(value: Any) -> Any:
    if isinstance(value, int | float):  # bool is an int too
        raise ValueError("must be an ISO 8601 date-time string with a time zone")
    return value


def integral(value: Any) -> Any:
    """`8.0` as 8 (JSON Schema's integer); anything else unchanged, for the strict check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


StrictCount = Annotated[int, Strict()]
"""An integer sent as a JSON number without a fractional part: `2` or `2.0` (request bodies
turn `2.0` into `2` first: core/schemas.InputModel), not `true`, `"2"` or `2.5`. No validator
of its own: one inside the type would keep pydantic from writing its bounds into the JSON
Schema (`ge` instead of `minimum`)."""

StrictFlag = Annotated[bool, Strict()]
"""A JSON boolean: not `"yes"`, `1` or `"true"`."""

DateTimeText = Annotated[AwareDatetime, BeforeValidator(_date_text)]
"""An ISO 8601 date-time with a time zone; a number is not taken as a Unix time."""

__all__ = [
    "CONTROL_MESSAGE",
    "TEXT_PATTERN",
    "DateTimeText",
    "StrictCount",
    "StrictFlag",
    "clean_strings",
    "has_control",
    "integral",
]
