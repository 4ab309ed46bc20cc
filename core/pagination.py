"""Opaque cursors for every list: base64url of a position the backend understands."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query

from core.errors import AppError

MAX_OFFSET = 10_000
"""Deepest page of a ranked search: further pages would make the database skip that many rows."""


Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        description="`meta.nextCursor` of the previous page, as it was given: opaque; "
        "anything the server did not make is 400 INVALID_CURSOR",
    ),
]
"""The `cursor` query parameter of every list."""


class InvalidCursor(AppError):
    status_code, code, message = 400, "INVALID_CURSOR", "The cursor is not valid"


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The position inside a cursor; 400 INVALID_CURSOR for anything we did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error):
        raise InvalidCursor() from None
    if not value or not value.isprintable() or len(value) > 64:
        raise InvalidCursor()
    return value


def encode_offset(offset: int) -> str:
    return encode_cursor(f"o:{offset}")


def decode_offset(cursor: str) -> int:
    """An offset cursor of a ranked list (search results), bounded by MAX_OFFSET."""
    value = decode_cursor(cursor)
    digits = value.removeprefix("o:")
    if not value.startswith("o:") or not digits.isdigit() or int(digits) > MAX_OFFSET:
        raise InvalidCursor()
    return int(digits)
