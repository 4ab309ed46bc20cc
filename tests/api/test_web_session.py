"""The web front's session: asked for with `X-TicketBoss-Client: web`, its refresh token lives
in an httpOnly, Secure, SameSite=Strict cookie sent only to the refresh and logout paths, and
never in JSON; a request from another origin is refused before anything is read or spent. API
clients keep their tokens in JSON as before."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx

from tests.support.api import PASSWORD, Api

OURS = "http://testserver"
WEB = {"X-TicketBoss-Client": "web", "Origin": OURS}


def cookie_of(response: httpx.Response) -> tuple[str, list[str]]:
    """The refresh cookie's value and the attributes of each Set-Cookie that carries it."""
    values, attributes = set(), []
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie(header)
        morsel = jar["tb_refresh"]
        values.add(morsel.value)
        attributes.append(header.lower())
    assert len(values) == 1, values
    return values.pop(), attributes


async def web_login(api: Api, email: str) -> tuple[dict[str, object], str]:
    r = await api.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=WEB
    )
    assert r.status_code == 200, r.text
    value, _ = cookie_of(r)
    return r.json()["data"], value


async def refresh(api: Api, cookie: str, **headers: str) -> httpx.Response:
    return await api.client.post(
        "/api/v1/auth/refresh", json={}, headers=headers | {"Cookie": f"tb_refresh={cookie}"}
    )


async def test_the_refresh_token_lives_in_a_strict_httponly_cookie(sqlite_api: Api) -> None:
    ada = await sqlite_api.user()
    r = await sqlite_api.client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}, headers=WEB
    )
    assert r.status_code == 200 and r.json()["data"]["refreshToken"] is None
    first, attributes = cookie_of(r)
    assert sorted(a.split("path=")[1].split(";")[0] for a in attributes) == [
        "/api/v1/auth/logout",
        "/api/v1/auth/refresh",
    ]
    assert all("httponly" in a and "secure" in a and "samesite=strict" in a for a in attributes)
    rotated = await refresh(sqlite_api, first, **WEB)
    assert rotated.status_code == 200 and rotated.json()["data"]["refreshToken"] is None
    second, _ = cookie_of(rotated)
    assert second != first
    me = await sqlite_api.client.get(
        "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {rotated.json()['data']['accessToken']}"},
    )
    assert me.status_code == 200
    logout = await sqlite_api.client.post(
        "/api/v1/auth/logout",
        json={},
        headers=WEB
        | {
            "Cookie": f"tb_refresh={second}",
            "Authorization": f"Bearer {rotated.json()['data']['accessToken']}",
        },
    )
    assert logout.status_code == 204
    assert all("max-age=0" in h.lower() for h in logout.headers.get_list("set-cookie"))
    assert (await refresh(sqlite_api, second, **WEB)).status_code == 401


async def test_another_origin_is_refused_and_nothing_is_spent(sqlite_api: Api) -> None:
    ada = await sqlite_api.user()
    _, cookie = await web_login(sqlite_api, ada.email)
    evil = await refresh(sqlite_api, cookie, **(WEB | {"Origin": "https://evil.example"}))
    assert evil.status_code == 403 and evil.json()["code"] == "CSRF_REFUSED"
    form = await sqlite_api.client.post(
        "/api/v1/auth/refresh",
        content=b"refreshToken=x",
        headers={
            "Origin": "https://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"tb_refresh={cookie}",
        },
    )
    assert form.status_code == 403 and form.json()["code"] == "CSRF_REFUSED"
    nameless = await refresh(sqlite_api, cookie, **{"X-TicketBoss-Client": "web"})
    assert nameless.status_code == 403 and nameless.json()["code"] == "CSRF_REFUSED"
    assert (await refresh(sqlite_api, cookie)).status_code == 401  # no web header: no cookie
    assert (await refresh(sqlite_api, cookie, **WEB)).status_code == 200  # still unspent


async def test_api_clients_keep_their_tokens_in_json(sqlite_api: Api) -> None:
    ada = await sqlite_api.user()
    r = await sqlite_api.client.post(
        "/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}
    )
    assert r.status_code == 200 and not r.headers.get_list("set-cookie")
    token = r.json()["data"]["refreshToken"]
    again = await sqlite_api.client.post("/api/v1/auth/refresh", json={"refreshToken": token})
    assert again.status_code == 200 and again.json()["data"]["refreshToken"]
    assert not again.headers.get_list("set-cookie")
    assert (await sqlite_api.client.post("/api/v1/auth/refresh", json={})).status_code == 401
