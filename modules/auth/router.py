from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from core.deps import Context, CurrentPrincipal, app_context, client_ip, require_role
from core.errors import AppError, InvalidCredentials, ValidationFailed
from core.jsonbody import parse_json
from core.openapi import declare
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from core.security import Principal, TokenPair
from modules.auth.schemas import (
    ClientCredentialsIn,
    ClientTokenOut,
    LoginIn,
    PartnerCredentialsOut,
    PartnerIn,
    PartnerOut,
    RefreshIn,
    RegisteredOut,
    RegisterIn,
    RoleIn,
    TokenPairOut,
    UserOut,
)
from modules.auth.service import AuthService, InvalidClient

router = APIRouter(tags=["auth"], route_class=ApiRoute)
UserOnly = Annotated[Principal, Depends(require_role("user", "organizer", "admin"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


async def auth_service(request: Request) -> AuthService:
    return AuthService(app_context(request))


Auth = Annotated[AuthService, Depends(auth_service)]


def _pair(tokens: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


@router.post("/auth/register", status_code=201, response_model=Envelope[RegisteredOut])
async def register(body: RegisterIn, auth: Auth) -> JSONResponse:
    user, tokens = await auth.register(body.email, body.password, body.name)
    out = RegisteredOut(user=UserOut.of(user), **_pair(tokens).model_dump())
    return ok(out, status=201)


@router.post("/auth/login", response_model=Envelope[TokenPairOut], responses=declare(401))
async def login(body: LoginIn, request: Request, auth: Auth, ctx: Context) -> JSONResponse:
    ip, account = client_ip(request), body.email.lower()
    await ctx.limiter.before_login("login", account, ip)
    try:
        tokens = await auth.login(body.email, body.password)
    except InvalidCredentials:
        await ctx.limiter.login_failed("login", account, ip)
        raise
    return ok(_pair(tokens))


@router.post("/auth/refresh", response_model=Envelope[TokenPairOut], responses=declare(401))
async def refresh(body: RefreshIn, auth: Auth) -> JSONResponse:
    return ok(_pair(await auth.refresh(body.refresh_token)))


@router.post("/auth/logout", status_code=204)
async def logout(body: RefreshIn, auth: Auth, principal: UserOnly) -> Response:
    await auth.logout(body.refresh_token, principal)
    return Response(status_code=204)


@router.get("/auth/me", response_model=Envelope[UserOut | PartnerOut])
async def me(principal: CurrentPrincipal, auth: Auth) -> JSONResponse:
    if principal.is_partner:
        return ok(PartnerOut.of(await auth.partner(principal.id)))
    return ok(UserOut.of(await auth.user(principal.id)))


class UnsupportedGrant(AppError):
    status_code, code, message = (
        400,
        "UNSUPPORTED_GRANT_TYPE",
        "Only grant_type=client_credentials is supported",
    )


async def _credentials(request: Request) -> ClientCredentialsIn:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raw: Any = dict(await request.form())
        else:
            raw = parse_json(await request.body() or b"{}")
        return ClientCredentialsIn.model_validate(raw)
    except (ValueError, HTTPException) as exc:  # HTTPException: Starlette's broken multipart
        errors = (
            [
                {"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            if isinstance(exc, ValidationError)
            else [{"field": "body", "message": "expected a form or JSON body"}]
        )
        raise ValidationFailed("The token request is not valid", errors=errors) from None


@router.post(
    "/auth/token",
    response_model=ClientTokenOut,
    responses=declare(401),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": ClientCredentialsIn.model_json_schema()
                },
                "application/json": {"schema": ClientCredentialsIn.model_json_schema()},
            }
        }
    },
)
async def client_token(request: Request, auth: Auth, ctx: Context) -> JSONResponse:
    """OAuth2 client-credentials grant (RFC 6749 §4.4) for partners."""
    body = await _credentials(request)
    if body.grant_type != "client_credentials":
        raise UnsupportedGrant(extra={"error": "unsupported_grant_type"})
    ip = client_ip(request)
    await ctx.limiter.before_login("token", body.client_id, ip)
    try:
        token = await auth.client_credentials(body.client_id, body.client_secret)
    except InvalidClient:
        await ctx.limiter.login_failed("token", body.client_id, ip)
        raise
    out = ClientTokenOut(access_token=token, expires_in=ctx.tokens.access_ttl)
    return JSONResponse(out.model_dump(), headers={"Cache-Control": "no-store"})


@router.post("/partners", status_code=201, response_model=Envelope[PartnerCredentialsOut])
async def create_partner(body: PartnerIn, auth: Auth, _: Admin) -> JSONResponse:
    partner, secret = await auth.create_partner(body.name)
    out = PartnerCredentialsOut(**PartnerOut.of(partner).model_dump(), client_secret=secret)
    return ok(out, status=201, headers={"Cache-Control": "no-store"})


@router.post("/partners/{partner_id}/rotate-secret", response_model=Envelope[PartnerCredentialsOut])
async def rotate_partner_secret(partner_id: str, auth: Auth, _: Admin) -> JSONResponse:
    partner, secret = await auth.rotate_partner_secret(partner_id)
    out = PartnerCredentialsOut(**PartnerOut.of(partner).model_dump(), client_secret=secret)
    return ok(out, headers={"Cache-Control": "no-store"})


@router.patch("/users/{user_id}", response_model=Envelope[UserOut])
async def change_role(user_id: str, body: RoleIn, auth: Auth, _: Admin) -> JSONResponse:
    return ok(UserOut.of(await auth.set_role(user_id, body.role)))
