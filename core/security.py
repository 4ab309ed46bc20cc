"""Password hashing (Argon2id via pwdlib) and JWTs (PyJWT) with a pinned algorithm and a key set."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
from anyio import to_thread
from cryptography.hazmat.primitives import serialization
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from core import clock
from core.config import ConfigError, Settings
from core.errors import InvalidToken
from core.storage.records import SYSTEM_ACTOR, Actor, Role

TokenType = Literal["access", "refresh", "admission"]
VERIFIED_TOKENS_KEPT = 10_000

# OWASP's Argon2id baseline: 19 MiB, 2 iterations, 1 lane.
_hasher = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))
# Verified against when an email is unknown, so that answer costs a hash's worth of time too.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def token_hash(token: str) -> str:
    """A random bearer secret (a reset token, a scanner's device token: 256 bits) as stored:
    a plain SHA-256 keeps it useless at rest, and stays fast enough to look it up by."""
    return hashlib.sha256(token.encode()).hexdigest()


async def hash_password(password: str) -> str:
    return await to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-work check: an unknown account still runs one Argon2 verification."""
    ok = await to_thread.run_sync(_hasher.verify, password, password_hash or _DUMMY_HASH)
    return ok and password_hash is not None


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by an access token."""

    id: str
    role: Role
    token_version: int = 0
    """The account's token version when the token was issued (`tv`; see core/revocation.py)."""

    @property
    def is_partner(self) -> bool:
        return self.role == "partner"

    @property
    def actor(self) -> Actor:
        """Who the change records name: the account by its role, or the system (the CLI)."""
        return SYSTEM_ACTOR if self.id == SYSTEM_ACTOR.id else Actor(self.role, self.id)


SYSTEM = Principal("system", "admin")
"""The operator acting through the CLI or start-up hooks (never a token's subject)."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: str
    jti: str
    family_id: str
    expires_at: datetime


class KeySet:
    """One signing key and every key still accepted for verification, by `kid`."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.kid = settings.jwt_kid
        self.verify_keys: dict[str, Any] = {}
        if self.algorithm == "HS256":
            current = settings.jwt_secret or development_secret(settings.data_dir)
            self.signing_key: Any = current
            self.verify_keys[self.kid] = current
            for kid, secret in _pairs(settings.jwt_previous_secrets):
                self.verify_keys[kid] = secret
        else:
            assert settings.jwt_private_key_file
            pem = Path(settings.jwt_private_key_file).read_bytes()
            private_key = serialization.load_pem_private_key(pem, password=None)
            self.signing_key = private_key
            self.verify_keys[self.kid] = private_key.public_key()
            for kid, path in _pairs(settings.jwt_public_key_files):
                self.verify_keys[kid] = serialization.load_pem_public_key(Path(path).read_bytes())


DEVELOPMENT_SECRET_FILE = "jwt-secret"


def development_secret(directory: Path) -> str:
    """The development signing secret: made at random on first start and kept (mode 0600) in
    the data directory, so tokens survive a restart and every `serve --workers N` worker signs
    with the same one. (Production refuses to start without JWT_SECRET: core/config.py.)"""
    path = directory / DEVELOPMENT_SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: link fails if a worker won the
    # race, and no worker ever reads a half-written file.
    fd, draft = tempfile.mkstemp(dir=directory, prefix=".jwt-secret-")
    try:
        os.write(fd, secrets.token_urlsafe(48).encode())
        os.fsync(fd)
        os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        os.unlink(draft)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret.encode()) < 32:
        raise ConfigError(f"{path} holds no usable secret: delete it to have a new one made")
    return secret


def _pairs(spec: str) -> list[tuple[str, str]]:
    pairs = [item.split("=", 1) for item in spec.split(",") if "=" in item]
    return [(k.strip(), v.strip()) for k, v in pairs]


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.keys = KeySet(settings)
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.access_ttl = settings.access_token_ttl_seconds
        self.refresh_ttl = settings.refresh_token_ttl_seconds
        self._verified: dict[str, tuple[float, Principal]] = {}

    def _encode(self, claims: dict[str, Any], ttl: int) -> str:
        now = datetime.now(UTC)  # the JWT library checks iat/nbf/exp against the wall clock
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=ttl),
            "jti": claims.get("jti") or uuid.uuid4().hex,
        }
        return jwt.encode(
            payload,
            self.keys.signing_key,
            algorithm=self.keys.algorithm,
            headers={"kid": self.keys.kid},
        )

    def access_token(self, principal: Principal) -> str:
        return self._encode(
            {
                "sub": principal.id,
                "role": principal.role,
                "tv": principal.token_version,
                "typ": "access",
            },
            self.access_ttl,
        )

    def refresh_token(self, user_id: str, family_id: str) -> tuple[str, RefreshClaims]:
        jti = uuid.uuid4().hex
        token = self._encode(
            {"sub": user_id, "typ": "refresh", "fam": family_id, "jti": jti}, self.refresh_ttl
        )
        claims = RefreshClaims(
            user_id, jti, family_id, clock.now() + timedelta(seconds=self.refresh_ttl)
        )
        return token, claims

    def decode(self, token: str, expected: TokenType) -> dict[str, Any]:
        """Verify signature, algorithm, kid, iss, aud, exp, nbf, iat and type; else InvalidToken."""
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.verify_keys.get(str(header.get("kid")))
            if key is None or header.get("alg") != self.keys.algorithm:
                raise InvalidToken()
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.keys.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if claims.get("typ") != expected:
            raise InvalidToken()
        return claims

    def principal(self, token: str) -> Principal:
        """The caller an access token proves (whether it was revoked since is checked apart:
        core/revocation.py). A token verified once is remembered until it expires: a signed
        token cannot change, so verifying it again would only repeat work."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        claims = self.decode(token, "access")
        role = claims.get("role")
        version = claims.get("tv", 0)
        if role not in ("user", "organizer", "admin", "partner") or type(version) is not int:
            raise InvalidToken()
        principal = Principal(id=str(claims["sub"]), role=role, token_version=version)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), principal)
        return principal

    def admission_token(self, account_id: str, event_id: str, until_ms: int) -> str:
        """The waiting room's pass: this account may buy for this event until `until_ms`."""
        now = datetime.now(UTC)
        payload = {
            "sub": account_id,
            "eid": event_id,
            "typ": "admission",
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": until_ms // 1000 + (1 if until_ms % 1000 else 0),
            "until": until_ms,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            payload,
            self.keys.signing_key,
            algorithm=self.keys.algorithm,
            headers={"kid": self.keys.kid},
        )

    def admission(self, token: str) -> tuple[str, str, int]:
        """(account, event, admitted until in ms) of a genuine admission token; InvalidToken
        for anything else (forged, another kind of token, past its `exp`)."""
        claims = self.decode(token, "admission")
        account, event, until = claims.get("sub"), claims.get("eid"), claims.get("until")
        if type(account) is not str or type(event) is not str or type(until) is not int:
            raise InvalidToken()
        return account, event, until

    def refresh_claims(self, token: str) -> RefreshClaims:
        claims = self.decode(token, "refresh")
        return RefreshClaims(
            user_id=str(claims["sub"]),
            jti=str(claims["jti"]),
            family_id=str(claims.get("fam")),
            expires_at=datetime.fromtimestamp(claims["exp"], tz=clock.now().tzinfo),
        )
