from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.deps import app_context, require_role
from core.security import Principal
from modules.auth.service import AuthService


async def auth_service(request: Request) -> AuthService:
    return AuthService(app_context(request))


Auth = Annotated[AuthService, Depends(auth_service)]
Admin = Annotated[Principal, Depends(require_role("admin"))]
