"""Serverless entry point: AWS Lambda (API Gateway HTTP API v2 / REST v1) through Mangum.

The app, its database pool and its Redis client are built once per container, at the first
invocation, and reused by every warm invocation that follows, all on one event loop that the
container keeps. Mangum's own lifespan handling would open and close them around every
invocation, so it is off and the app is started here. Expired holds are released by a
scheduled `ticketboss expire-holds` rather than a background loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mangum import Mangum

from core.app import start_app
from modules.api import create_api

app = create_api()
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
_adapter = Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    asyncio.set_event_loop(loop)  # Mangum runs the request on the current loop: keep it ours
    if not hasattr(app.state, "ctx"):
        loop.run_until_complete(start_app(app, background=False))
    return _adapter(event, context)
