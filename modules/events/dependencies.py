from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from core.deps import Context, require_role
from core.security import Principal
from modules.events.service import EventService


async def event_service(ctx: Context) -> EventService:
    return EventService(ctx)


Events = Annotated[EventService, Depends(event_service)]
Organizer = Annotated[Principal, Depends(require_role("organizer", "admin"))]
