"""The web front's session: its refresh token in a cookie script cannot read, and the CSRF
defence of every route that reads or sets that cookie.

API clients keep tokens in JSON. The web front asks for cookie mode with the header
`X-TicketBoss-Client: web` (a cross-site form cannot send a custom header, and a cross-site
script cannot without a CORS preflight this server does not grant). The cookie is httpOnly,
Secure, SameSite=Strict and sent only to /api/v1/auth/refresh and /api/v1/auth/logout.

CSRF: an `Origin` that is neither this server's, PUBLIC_URL's nor one of CORS_ORIGINS is
refused (403 `CSRF_REFUSED`) on these routes whatever else the request carries; a request that
reads the cookie must name its origin (browsers send `Origin` with every POST).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from core.config import Settings
from core.deps import app_context
from core.errors import Forbidden, InvalidToken

WEB_HEADER = "x-ticketboss-client"
REFRESH_COOKIE = "tb_refresh"
COOKIE_PATHS = ("/api/v1/auth/refresh", "/api/v1/auth/logout")


class CsrfRefused(Forbidden):
    code, message = "CSRF_REFUSED", "Cross-site requests are refused here"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(request: Request, settings: Settings) -> set[str]:
    return {
        origin_of(str(request.base_url)),
        origin_of(settings.public_url),
        *(o.lower() for o in settings.cors_origin_list),
    }


def is_web(request: Request) -> bool:
    return request.headers.get(WEB_HEADER) == "web"


async def web_guard(request: Request) -> None:
    """The CSRF check (a dependency: it runs before the body is read)."""
    origin = request.headers.get("origin")
    settings = app_context(request).settings
    if origin is not None and origin.lower() not in allowed_origins(request, settings):
        raise CsrfRefused()
    if origin is None and is_web(request) and REFRESH_COOKIE in request.cookies:
        raise CsrfRefused("A request that carries the session cookie must name its Origin")


def presented(request: Request, token: str | None) -> str:
    """The refresh token of the request: the body's, or the web front's cookie."""
    if token:
        return token
    cookie = request.cookies.get(REFRESH_COOKIE) if is_web(request) else None
    if not cookie:
        raise InvalidToken("No refresh token (in the body, or the web front's cookie)")
    return cookie


def keep_in_cookie(response: Response, refresh_token: str, max_age: int) -> None:
    for path in COOKIE_PATHS:
        response.set_cookie(
            REFRESH_COOKIE,
            refresh_token,
            max_age=max_age,
            path=path,
            secure=True,
            httponly=True,
            samesite="strict",
        )


def drop_cookie(response: Response) -> None:
    for path in COOKIE_PATHS:
        response.delete_cookie(
            REFRESH_COOKIE, path=path, secure=True, httponly=True, samesite="strict"
        )
