from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.deps import app_context, require_role
from core.security import Principal
from modules.events.service import EventService


async def event_service(request: Request) -> EventService:
    return EventService(app_context(request))


Events = Annotated[EventService, Depends(event_service)]
Organizer = Annotated[Principal, Depends(require_role("organizer", "admin"))]
