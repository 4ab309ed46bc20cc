from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from core.deps import Context, require_role
from core.security import Principal
from modules.auth.service import AuthService


async def auth_service(ctx: Context) -> AuthService:
    return AuthService(ctx)


Auth = Annotated[AuthService, Depends(auth_service)]
Admin = Annotated[Principal, Depends(require_role("admin"))]
