"""Access tokens made by hand, as an attacker (or a test) would sign them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt


def forge(claims: dict[str, Any], *, key: object, alg: str = "HS256", kid: str = "k1") -> str:
    """An admin access token for `u1`, signed with `key`, with `claims` over the defaults."""
    now = datetime.now(UTC)
    base = {
        "sub": "u1",
        "role": "admin",
        "typ": "access",
        "iss": "ticketboss",
        "aud": "ticketboss-api",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({**base, **claims}, key, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]
