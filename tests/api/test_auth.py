"""Auth flows on every backend: tokens, refresh rotation, roles, partners, and what is logged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.api import Api
from tests.support.tokens import forge


def rsa_key_pem() -> tuple[object, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public


BAD_TOKENS: dict[str, Callable[[object], str]] = {
    "tampered": lambda k: (
        forge({}, key=k)[:-3] + ("AAA" if not forge({}, key=k).endswith("AAA") else "BBB")
    ),
    "expired": lambda k: forge(
        {
            "exp": datetime.now(UTC) - timedelta(seconds=5),
            "iat": datetime.now(UTC) - timedelta(minutes=20),
        },
        key=k,
    ),
    "not_yet_valid": lambda k: forge(
        {
            "nbf": datetime.now(UTC) + timedelta(minutes=5),
            "iat": datetime.now(UTC) + timedelta(minutes=5),
        },
        key=k,
    ),
    "wrong_issuer": lambda k: forge({"iss": "evil"}, key=k),
    "wrong_audience": lambda k: forge({"aud": "someone-else"}, key=k),
    "alg_none": lambda k: jwt.encode(
        {"sub": "u1", "role": "admin", "typ": "access"},
        None,
        algorithm="none",
        headers={"kid": "k1"},
    ),  # type: ignore[arg-type]
    "unknown_kid": lambda k: forge({}, key=k, kid="k9"),
    "other_secret": lambda k: forge({}, key="x" * 40),
    "refresh_as_access": lambda k: forge({"typ": "refresh"}, key=k),
    "garbage": lambda k: "not.a.jwt",
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401_invalid_token(sqlite_api: Api, kind: str) -> None:
    api = sqlite_api
    r = await api.client.get(
        "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {BAD_TOKENS[kind](api.ctx.tokens.keys.signing_key)}"},
    )
    assert r.status_code == 401
    assert r.json()["code"] == "INVALID_TOKEN"
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_made_with_the_apps_key_passes(sqlite_api: Api) -> None:
    """The bad tokens above are one fault away from this one, so each fails for its fault."""
    user = await sqlite_api.user()
    token = forge(
        {"sub": user.id, "role": "user", "tv": 0}, key=sqlite_api.ctx.tokens.keys.signing_key
    )
    r = await sqlite_api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


async def test_hs_rs_confusion_is_rejected(sqlite_api: Api, tmp_path: Path) -> None:
    """A token signed with HS256 using the RSA public key as the secret must not pass RS256."""
    from core.security import TokenService
    from tests.support.api import make_settings

    private, public_pem = rsa_key_pem()
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # type: ignore[attr-defined]
    )
    service = TokenService(
        make_settings("sqlite:///x.db", jwt_algorithm="RS256", jwt_private_key_file=str(key_file))
    )
    from core.errors import InvalidToken
    from core.security import Principal

    good = service.access_token(Principal("u1", "user"))
    assert service.principal(good).id == "u1"
    # PyJWT refuses to HMAC-sign with a PEM key, so build the confused token by hand.
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = jwt.decode(good, options={"verify_signature": False})
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'}).encode())}.{b64(json.dumps(claims).encode())}"
    confused = (
        signing_input
        + "."
        + b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    )
    with pytest.raises(InvalidToken):
        service.principal(confused)


async def test_register_login_me_refresh_logout(sqlite_api: Api) -> None:
    api = sqlite_api
    email = f"Mixed.{uuid.uuid4().hex[:8]}@Example.com"
    r = await api.client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "a fine passphrase", "name": "Ada"},
    )
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["user"]["email"] == email.lower() and data["user"]["role"] == "user"
    assert data["tokenType"] == "Bearer" and data["expiresIn"] == 900
    r = await api.client.post(
        "/api/v1/auth/login", json={"email": email.upper(), "password": "a fine passphrase"}
    )
    assert r.status_code == 200
    pair = r.json()["data"]
    me = await api.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['accessToken']}"}
    )
    assert me.status_code == 200 and me.json()["data"]["email"] == email.lower()
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert r.status_code == 200
    rotated = r.json()["data"]
    r = await api.client.post(
        "/api/v1/auth/logout",
        json={"refreshToken": rotated["refreshToken"]},
        headers={"Authorization": f"Bearer {rotated['accessToken']}"},
    )
    assert r.status_code == 204
    r = await api.client.post(
        "/api/v1/auth/refresh", json={"refreshToken": rotated["refreshToken"]}
    )
    assert r.status_code == 401


async def test_email_taken_case_insensitively(sqlite_api: Api) -> None:
    api = sqlite_api
    user = await api.user()
    r = await api.client.post(
        "/api/v1/auth/register",
        json={"email": user.email.upper(), "password": "another passphrase", "name": "B"},
    )
    assert r.status_code == 409 and r.json()["code"] == "EMAIL_TAKEN"


async def test_concurrent_registrations_create_one_account(api: Api) -> None:
    body = {
        "email": f"race-{uuid.uuid4().hex[:8]}@example.com",
        "password": "racing passphrase",
        "name": "R",
    }
    results = await asyncio.gather(
        *(api.client.post("/api/v1/auth/register", json=body) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]


async def test_unknown_email_and_wrong_password_look_the_same(sqlite_api: Api) -> None:
    api = sqlite_api
    user = await api.user()
    wrong = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "not the password"}
    )
    unknown = await api.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "requestId"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"


async def test_unknown_email_still_spends_a_hash(sqlite_api: Api) -> None:
    """The unknown-email path runs one Argon2 verification (work, not a timing assertion)."""
    api = sqlite_api
    from pwdlib.hashers.argon2 import Argon2Hasher

    calls = 0
    original = Argon2Hasher.verify

    def counting(self: Argon2Hasher, password: str | bytes, hash: str | bytes) -> bool:
        nonlocal calls
        calls += 1
        return original(self, password, hash)

    Argon2Hasher.verify = counting  # type: ignore[method-assign]
    try:
        r = await api.client.post(
            "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "whatever it is"}
        )
    finally:
        Argon2Hasher.verify = original  # type: ignore[method-assign]
    assert r.status_code == 401 and calls == 1


async def test_refresh_reuse_revokes_the_whole_family(api: Api) -> None:
    user = await api.user()
    first = user.refresh
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": first})
    newest = r.json()["data"]["refreshToken"]
    reuse = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": first})
    assert reuse.status_code == 401 and reuse.json()["code"] == "INVALID_TOKEN"
    after = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": newest})
    assert after.status_code == 401


async def test_refresh_reuse_also_ends_the_accounts_access_tokens(api: Api) -> None:
    user = await api.user()
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh})
    rotated = r.json()["data"]["accessToken"]
    for token in (user.access_token, rotated):
        me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
    reuse = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh})
    assert reuse.status_code == 401
    for token in (user.access_token, rotated):
        me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401 and me.json()["code"] == "INVALID_TOKEN", me.text
    again = await api.client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    )
    fresh = again.json()["data"]["accessToken"]
    me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {fresh}"})
    assert me.status_code == 200  # the owner signs in again


@pytest.mark.parametrize("password", ["short1", "password123", "1234567890", "Qwertyuiop"])
async def test_weak_passwords_are_422(sqlite_api: Api, password: str) -> None:
    api = sqlite_api
    r = await api.client.post(
        "/api/v1/auth/register",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": password, "name": "W"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "password"


async def test_roles_and_partner_tokens(sqlite_api: Api) -> None:
    api = sqlite_api
    admin = await api.user("admin")
    user = await api.user()
    partner = await api.partner(admin)
    # users cannot reach admin routes
    r = await api.client.post("/api/v1/partners", json={"name": "x"}, headers=user.headers)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    r = await api.client.patch(
        f"/api/v1/users/{user.id}", json={"role": "organizer"}, headers=user.headers
    )
    assert r.status_code == 403
    # partners: role partner, 403 on admin and user-only routes
    me = await api.client.get("/api/v1/auth/me", headers=partner.headers)
    assert me.status_code == 200 and me.json()["data"]["role"] == "partner"
    r = await api.client.patch(
        f"/api/v1/users/{user.id}", json={"role": "organizer"}, headers=partner.headers
    )
    assert r.status_code == 403
    r = await api.client.post(
        "/api/v1/auth/logout", json={"refreshToken": user.refresh}, headers=partner.headers
    )
    assert r.status_code == 403
    r = await api.client.post("/api/v1/events", json={}, headers=partner.headers)
    assert r.status_code == 403
    # admins change roles
    r = await api.client.patch(
        f"/api/v1/users/{user.id}", json={"role": "organizer"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["data"]["role"] == "organizer"


async def test_client_credentials_grant(api: Api) -> None:
    admin = await api.user("admin")
    r = await api.client.post("/api/v1/partners", json={"name": "Resale Co"}, headers=admin.headers)
    creds = r.json()["data"]
    assert r.headers["Cache-Control"] == "no-store" and creds["clientSecret"]
    ok = await api.client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"],
        },
    )
    assert ok.status_code == 200
    assert set(ok.json()) == {"access_token", "token_type", "expires_in"}
    bad = await api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["clientId"],
            "client_secret": "wrong",
        },
    )
    assert bad.status_code == 401 and bad.json()["code"] == "INVALID_CLIENT"
    grant = await api.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "client_id": "a", "client_secret": "b"},
    )
    assert grant.status_code == 400 and grant.json()["code"] == "UNSUPPORTED_GRANT_TYPE"
    rotated = await api.client.post(
        f"/api/v1/partners/{creds['id']}/rotate-secret", headers=admin.headers
    )
    assert rotated.status_code == 200
    old = await api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"],
        },
    )
    assert old.status_code == 401


async def test_no_secret_is_ever_logged(sqlite_api: Api, capfd: pytest.CaptureFixture[str]) -> None:
    api = sqlite_api
    from core.logging import configure_logging

    configure_logging("DEBUG", json_output=True)
    password = "a very secret passphrase"
    email = f"log-{uuid.uuid4().hex[:8]}@example.com"
    r = await api.client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "L"}
    )
    pair = r.json()["data"]
    r = await api.client.post("/api/v1/auth/login", json={"email": email, "password": password})
    await api.client.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong " + password}
    )
    refreshed = (
        await api.client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    ).json()["data"]
    await api.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {refreshed['accessToken']}"}
    )
    admin = await api.user("admin")
    creds = (
        await api.client.post("/api/v1/partners", json={"name": "Logged"}, headers=admin.headers)
    ).json()["data"]
    await api.client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"],
        },
    )
    out, err = capfd.readouterr()
    logs = out + err
    assert '"event": "request"' in logs  # the access log did run
    for secret in (
        password,
        pair["accessToken"],
        pair["refreshToken"],
        refreshed["accessToken"],
        creds["clientSecret"],
        admin.password,
    ):
        assert secret not in logs


async def test_key_rotation_by_kid(sqlite_url: str) -> None:
    """Tokens signed with a previous secret stay valid under its kid; the new kid signs."""
    from core.security import Principal, TokenService
    from tests.support.api import make_settings

    old = TokenService(make_settings(sqlite_url, jwt_secret="o" * 40, jwt_kid="2025"))
    token = old.access_token(Principal("u1", "user"))
    rotated = TokenService(
        make_settings(
            sqlite_url, jwt_secret="n" * 40, jwt_kid="2026", jwt_previous_secrets=f"2025={'o' * 40}"
        )
    )
    assert rotated.principal(token).id == "u1"
    assert jwt.get_unverified_header(rotated.access_token(Principal("u1", "user")))["kid"] == "2026"
    retired = TokenService(make_settings(sqlite_url, jwt_secret="n" * 40, jwt_kid="2026"))
    from core.errors import InvalidToken

    with pytest.raises(InvalidToken):
        retired.principal(token)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("part", ["local", "upper-local", "domain"])
async def test_a_fullwidth_spelling_is_the_same_account(sqlite_api: Api, part: str) -> None:
    """Issue 14: NFKC makes compatibility forms (ａ, Ａ) their plain letters."""
    local = f"ada{uuid.uuid4().hex[:6]}"
    email = f"{local}@example.com"
    twin = {
        "local": f"{_fullwidth(local)}@example.com",
        "upper-local": f"{_fullwidth(local.upper())}@example.com",
        "domain": f"{local}@{_fullwidth('example')}.com",
    }[part]
    body = {"password": "correct horse battery", "name": "Ada"}
    r = await sqlite_api.client.post("/api/v1/auth/register", json=body | {"email": email})
    assert r.status_code == 201, r.text
    r = await sqlite_api.client.post("/api/v1/auth/register", json=body | {"email": twin})
    assert r.status_code == 409, r.text
    r = await sqlite_api.client.post(
        "/api/v1/auth/login", json={"email": twin, "password": body["password"]}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("mixed", ["\u0430dmin@example.com", "admin@ex\u0430mple.com"])
async def test_a_mixed_script_address_is_refused(sqlite_api: Api, mixed: str) -> None:
    """A Cyrillic а among Latin letters: meant to look like someone else's address."""
    r = await sqlite_api.client.post(
        "/api/v1/auth/register",
        json={"email": mixed, "password": "correct horse battery", "name": "Mallory"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
