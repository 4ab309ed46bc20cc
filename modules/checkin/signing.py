"""Tickets as compact JWS (RFC 7515) signed with an event's Ed25519 key (EdDSA, RFC 8037),
through PyJWT over `cryptography`. Ed25519 signatures are deterministic: a ticket signed
twice with one key is the same string, so its QR code never changes while the key signs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.storage.records import SigningKey

CLAIMS = ("tid", "eid", "tier", "iat")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key(event_id: str, kid: str, now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(event_id, kid, pem, b64url(raw), now)


def jwk(key: SigningKey) -> dict[str, str]:
    """The public half as an RFC 8037 OKP JWK."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": key.kid,
        "x": key.public_x,
    }


@lru_cache(maxsize=512)
def _private(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@lru_cache(maxsize=512)
def _public(x: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


def sign(key: SigningKey, *, tid: str, eid: str, tier: str, iat: datetime) -> str:
    claims = {"tid": tid, "eid": eid, "tier": tier, "iat": int(iat.timestamp())}
    return jwt.encode(
        claims, _private(key.private_key), algorithm="EdDSA", headers={"kid": key.kid}
    )


def verify(token: str, keys: Sequence[SigningKey]) -> dict[str, Any] | None:
    """The claims if `token` is a JWS signed by one of `keys` (by its `kid`) and carries every
    claim as a string (iat a number); None for anything else, whatever is wrong with it."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys if k.kid == kid), None)
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            _public(key.public_x),
            algorithms=["EdDSA"],
            options={"require": list(CLAIMS), "verify_iat": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    if not all(isinstance(claims[c], str) for c in CLAIMS[:3]):
        return None
    return claims
