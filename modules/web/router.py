"""Serve the web front's pages, its static files, and the API docs from local assets.

Every page of the front is the same HTML shell: the ES modules under /static/js route by the URL
path and talk to /api/v1 like any other client. Nothing here reads storage or calls a service.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from core.middleware import PAGE_CSP

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGES = HERE / "pages"
# Revalidate every time (ETag → 304): the files are not fingerprinted, so never serve a stale one.
NO_CACHE = {"Cache-Control": "no-cache"}

# The paths the front's router (static/js/app.js) knows; each serves the shell.
FRONT_PATHS = (
    "/",
    "/login",
    "/register",
    "/forgot-password",
    "/reset-password",
    "/verify-email",
    "/account",
    "/events/{event_id}",
    "/bookings",
    "/tickets/{booking_id}",
    "/organizer",
    "/organizer/events/new",
    "/organizer/events/{event_id}/edit",
    "/organizer/events/{event_id}/sales",
    "/organizer/events/{event_id}/codes",
    "/organizer/events/{event_id}/waitlist",
    "/admin",
    "/scan",
)

router = APIRouter(include_in_schema=False)
_static = StaticFiles(directory=STATIC)
_shell = (PAGES / "shell.html").read_bytes()
_docs = (PAGES / "docs.html").read_text()
_redoc = (PAGES / "redoc.html").read_text()


async def shell() -> HTMLResponse:
    return HTMLResponse(_shell, headers=NO_CACHE)


for _path in FRONT_PATHS:
    router.add_api_route(_path, shell, methods=["GET", "HEAD"], response_class=HTMLResponse)


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"])
async def static(path: str, request: Request) -> Response:
    response = await _static.get_response(path, request.scope)
    response.headers.update(NO_CACHE)
    return response


def _docs_page(template: str, request: Request, headers: dict[str, str] = NO_CACHE) -> HTMLResponse:
    openapi_url = request.app.openapi_url or "/openapi.json"
    return HTMLResponse(template.replace("{{openapi_url}}", openapi_url), headers=headers)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the app's own copy (static/vendor/swagger-ui), started by a static script."""
    return _docs_page(_docs, request)


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from the app's own copy (static/vendor/redoc).

    ReDoc styles itself by inserting <style> elements, so this page's policy adds a fresh nonce
    to style-src (read by ReDoc from a meta tag) instead of allowing any inline style.
    """
    nonce = secrets.token_urlsafe(18)
    policy = PAGE_CSP[1].decode().replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")
    headers = NO_CACHE | {"Content-Security-Policy": policy}
    return _docs_page(_redoc.replace("{{nonce}}", nonce), request, headers)
