"""Changing a password needs the current one and ends every session of the account: its
access tokens and its refresh tokens, on every backend; the caller gets a new pair."""

from __future__ import annotations

from tests.support.api import PASSWORD, Api, make_settings, running_api

NEW = "a brand new passphrase 42"


async def test_a_changed_password_ends_every_other_session(api: Api) -> None:
    ada = await api.user()
    r = await api.client.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    other = r.json()["data"]  # a second session (another device)
    r = await api.client.post(
        "/api/v1/auth/change-password",
        json={"currentPassword": PASSWORD, "newPassword": NEW},
        headers=ada.headers,
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["data"]
    assert r.headers["cache-control"] == "no-store"
    me = await api.client.get("/api/v1/auth/me", headers=ada.headers)
    assert me.status_code == 401  # the old access token ended
    for refresh in (ada.refresh, other["refreshToken"]):
        r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": refresh})
        assert r.status_code == 401, r.text  # so did every refresh token
    bearer = {"Authorization": f"Bearer {fresh['accessToken']}"}
    assert (await api.client.get("/api/v1/auth/me", headers=bearer)).status_code == 200
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": fresh["refreshToken"]})
    assert r.status_code == 200, r.text
    old = await api.client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}
    )
    assert old.status_code == 401
    new = await api.client.post("/api/v1/auth/login", json={"email": ada.email, "password": NEW})
    assert new.status_code == 200


async def test_a_wrong_current_password_changes_nothing(api: Api) -> None:
    ada = await api.user()
    r = await api.client.post(
        "/api/v1/auth/change-password",
        json={"currentPassword": "not my password at all", "newPassword": NEW},
        headers=ada.headers,
    )
    assert r.status_code == 401 and r.json()["code"] == "INVALID_CREDENTIALS"
    assert (await api.client.get("/api/v1/auth/me", headers=ada.headers)).status_code == 200
    r = await api.client.post("/api/v1/auth/refresh", json={"refreshToken": ada.refresh})
    assert r.status_code == 200
    weak = await api.client.post(
        "/api/v1/auth/change-password",
        json={"currentPassword": PASSWORD, "newPassword": "short"},
        headers={"Authorization": f"Bearer {r.json()['data']['accessToken']}"},
    )
    assert weak.status_code == 422
    login = await api.client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    anonymous = await api.client.post(
        "/api/v1/auth/change-password", json={"currentPassword": PASSWORD, "newPassword": NEW}
    )
    assert anonymous.status_code == 401


async def test_wrong_current_passwords_are_limited_like_logins(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, rate_limit_enabled=True, rate_limit_login_account_ip="2/minute"
    )
    async with running_api(settings) as limited:
        ada = await limited.user()
        wrong = {"currentPassword": "not my password at all", "newPassword": NEW}
        answers = [
            (
                await limited.client.post(
                    "/api/v1/auth/change-password", json=wrong, headers=ada.headers
                )
            ).status_code
            for _ in range(3)
        ]
        assert answers == [401, 401, 429]
        right = {"currentPassword": PASSWORD, "newPassword": NEW}
        r = await limited.client.post(
            "/api/v1/auth/change-password", json=right, headers=ada.headers
        )
        assert r.status_code == 429  # refused before the password is even checked
        assert (await limited.client.get("/api/v1/auth/me", headers=ada.headers)).status_code == 200
