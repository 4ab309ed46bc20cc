from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from core.deps import AppContext as AppContextType
from core.deps import Context, CurrentPrincipal, app_context, client_ip, require_role
from core.errors import AppError, InvalidCredentials, RateLimited, ValidationFailed
from core.jsonbody import parse_json
from core.logging import get_logger
from core.openapi import declare
from core.routing import ApiRoute
from core.schemas import Envelope, ok
from core.security import Principal, TokenPair
from modules.auth import audit
from modules.auth.schemas import (
    ChangeEmailIn,
    ChangePasswordIn,
    ClientCredentialsIn,
    ClientTokenOut,
    ForgotPasswordIn,
    LoginIn,
    PartnerCredentialsOut,
    PartnerIn,
    PartnerOut,
    RefreshIn,
    RegisteredOut,
    RegisterIn,
    ResendVerificationIn,
    ResetPasswordIn,
    RoleIn,
    TokenPairOut,
    UserOut,
    VerifyEmailIn,
)
from modules.auth.service import AuthService, InvalidClient
from modules.auth.web import drop_cookie, is_web, keep_in_cookie, presented, web_guard

log = get_logger(__name__)
router = APIRouter(tags=["auth"], route_class=ApiRoute, dependencies=[Depends(web_guard)])
UserOnly = Annotated[Principal, Depends(require_role("user", "organizer", "admin"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


async def auth_service(request: Request) -> AuthService:
    return AuthService(app_context(request))


Auth = Annotated[AuthService, Depends(auth_service)]


def _pair(tokens: TokenPair, request: Request) -> TokenPairOut:
    """The pair as JSON; for the web front, without the refresh token (its cookie has it)."""
    return TokenPairOut(
        access_token=tokens.access_token,
        refresh_token=None if is_web(request) else tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


def _session(
    response: JSONResponse, tokens: TokenPair, request: Request, ctx: AppContextType
) -> JSONResponse:
    if is_web(request):
        keep_in_cookie(response, tokens.refresh_token, ctx.tokens.refresh_ttl)
    return response


@router.post("/auth/register", status_code=201, response_model=Envelope[RegisteredOut])
async def register(body: RegisterIn, request: Request, auth: Auth, ctx: Context) -> JSONResponse:
    user, tokens = await auth.register(body.email, body.password, body.name)
    out = RegisteredOut(user=UserOut.of(user), **_pair(tokens, request).model_dump())
    return _session(ok(out, status=201), tokens, request, ctx)


@router.post("/auth/login", response_model=Envelope[TokenPairOut], responses=declare(401))
async def login(body: LoginIn, request: Request, auth: Auth, ctx: Context) -> JSONResponse:
    ip, account = client_ip(request), body.email.lower()
    email = audit.mask_email(account)
    try:
        await ctx.limiter.before_login("login", account, ip)
    except RateLimited as exc:
        retry_after = exc.headers["Retry-After"]
        await audit.record_refusal(
            ctx, "login_refused", account, ip=ip, retry_after=retry_after, email=email
        )
        raise
    try:
        tokens = await auth.login(body.email, body.password)
    except InvalidCredentials:
        await ctx.limiter.login_failed("login", account, ip)
        await audit.record(ctx, "login_failed", account_id=None, ip=ip, email=email)
        raise
    await ctx.limiter.login_succeeded("login", account, ip)
    return _session(ok(_pair(tokens, request)), tokens, request, ctx)


@router.post("/auth/refresh", response_model=Envelope[TokenPairOut], responses=declare(401, 403))
async def refresh(body: RefreshIn, request: Request, auth: Auth, ctx: Context) -> JSONResponse:
    """Rotate the pair. The web front (`X-TicketBoss-Client: web`) may send `{}`: its
    refresh token comes from its cookie, and the new one goes back there."""
    tokens = await auth.refresh(presented(request, body.refresh_token))
    return _session(ok(_pair(tokens, request)), tokens, request, ctx)


@router.post("/auth/logout", status_code=204, responses=declare(401, 403))
async def logout(body: RefreshIn, request: Request, auth: Auth, principal: UserOnly) -> Response:
    await auth.logout(presented(request, body.refresh_token), principal)
    response = Response(status_code=204)
    if is_web(request):
        drop_cookie(response)
    return response


@router.post("/auth/change-password", response_model=Envelope[TokenPairOut], responses=declare(401))
async def change_password(
    body: ChangePasswordIn, request: Request, auth: Auth, ctx: Context, principal: UserOnly
) -> JSONResponse:
    """Replace the password (the current one is required): every session of the account
    ends; the answer is a new token pair for this one. Wrong current passwords count
    against the account like failed logins."""
    ip = client_ip(request)
    await ctx.limiter.before_login("change-password", principal.id, ip)
    try:
        tokens = await auth.change_password(principal, body.current_password, body.new_password)
    except InvalidCredentials:
        await ctx.limiter.login_failed("change-password", principal.id, ip)
        raise
    response = ok(_pair(tokens, request), headers={"Cache-Control": "no-store"})
    return _session(response, tokens, request, ctx)


_later: set[asyncio.Task[None]] = set()
"""Work under way after its answer (a task nobody holds may be collected)."""
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted (whether or not the account exists); no body"}
}


def after_answer(what: str, work: Coroutine[Any, Any, None]) -> Response:
    """202 now, `work` afterwards: neither the answer nor its timing says whether the address
    has an account."""

    async def run() -> None:
        try:
            await work
        except Exception as exc:  # answered already: the requester simply asks again
            log.warning(f"{what}_failed", error=type(exc).__name__)

    task = asyncio.create_task(run())
    _later.add(task)
    task.add_done_callback(_later.discard)
    return Response(status_code=202)


async def counted(ctx: AppContextType, what: str, account: str, ip: str) -> None:
    """Limited like logins, every request counting (a request that mails costs a mail)."""
    await ctx.limiter.before_login(what, account, ip)
    await ctx.limiter.login_failed(what, account, ip)


@router.post(
    "/auth/forgot-password",
    status_code=202,
    response_class=Response,
    responses={**declare(429), **ACCEPTED},
)
async def forgot_password(
    body: ForgotPasswordIn, request: Request, auth: Auth, ctx: Context
) -> Response:
    """Mail a reset link, valid RESET_TOKEN_TTL_SECONDS and once, if the account exists.
    Always 202, answered before any of the work runs. Limited like logins."""
    account = body.email.lower()
    await counted(ctx, "forgot", account, client_ip(request))
    return after_answer("forgot_password", auth.forgot_password(account))


@router.post(
    "/auth/resend-verification",
    status_code=202,
    response_class=Response,
    responses={**declare(429), **ACCEPTED},
)
async def resend_verification(
    body: ResendVerificationIn, request: Request, auth: Auth, ctx: Context
) -> Response:
    """Mail a new verification code (EMAIL_CODE_TTL_SECONDS, once) if the address has an
    account not verified yet; it replaces the previous code. Always 202, answered before any
    of the work runs. Limited like logins."""
    account = body.email.lower()
    await counted(ctx, "resend", account, client_ip(request))
    return after_answer("resend_verification", auth.resend_verification(account))


@router.post(
    "/auth/verify-email", response_model=Envelope[UserOut], responses=declare(400, 409, 429)
)
async def verify_email(
    body: VerifyEmailIn, request: Request, auth: Auth, ctx: Context
) -> JSONResponse:
    """Spend a mailed code: the address is verified (or, after a change of address, the
    account moves to it, and the old address is told). 400 `VERIFICATION_CODE_INVALID`
    (wrong, used, replaced, another account's), `VERIFICATION_CODE_EXPIRED` or
    `VERIFICATION_ATTEMPTS_EXCEEDED` (EMAIL_CODE_MAX_ATTEMPTS tries per code); nothing
    changes then. 409 `EMAIL_TAKEN` if another account took the new address meanwhile."""
    ip, account = client_ip(request), body.email.lower()
    await ctx.limiter.before_login("verify", account, ip)
    try:
        user = await auth.verify_email(account, body.code)
    except AppError:
        await ctx.limiter.login_failed("verify", account, ip)
        raise
    return ok(UserOut.of(user))


@router.post(
    "/auth/change-email",
    status_code=202,
    response_class=Response,
    responses={
        **declare(400, 401, 409, 429),
        202: {"description": "A code was mailed to the new address; no body"},
    },
)
async def change_email(
    body: ChangeEmailIn, request: Request, auth: Auth, ctx: Context, principal: UserOnly
) -> Response:
    """Move the account to a new address (the current password is required): a code goes to
    the new address, and the account moves once it comes back through verify-email. Wrong
    current passwords count against the account like failed logins."""
    ip = client_ip(request)
    await ctx.limiter.before_login("change-email", principal.id, ip)
    try:
        await auth.change_email(principal, body.current_password, body.new_email)
    except InvalidCredentials:
        await ctx.limiter.login_failed("change-email", principal.id, ip)
        raise
    return Response(status_code=202)


@router.post("/auth/reset-password", status_code=204, responses=declare(400, 429))
async def reset_password(
    body: ResetPasswordIn, request: Request, auth: Auth, ctx: Context
) -> Response:
    """Set a new password with the token of a reset link: every session of the account ends.
    400 `RESET_TOKEN_INVALID` (unknown, used, replaced) or `RESET_TOKEN_EXPIRED`; nothing
    changes then."""
    ip = client_ip(request)
    await ctx.limiter.before_login("reset", "token", ip)
    try:
        await auth.reset_password(body.token, body.password)
    except AppError:
        await ctx.limiter.login_failed("reset", "token", ip)
        raise
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
    client_id = body.client_id[:64]
    try:
        await ctx.limiter.before_login("token", body.client_id, ip)
    except RateLimited as exc:
        retry_after = exc.headers["Retry-After"]
        await audit.record_refusal(
            ctx, "token_refused", client_id, ip=ip, retry_after=retry_after, client_id=client_id
        )
        raise
    try:
        token = await auth.client_credentials(body.client_id, body.client_secret)
    except InvalidClient:
        await ctx.limiter.login_failed("token", body.client_id, ip)
        await audit.record(ctx, "token_failed", account_id=None, ip=ip, client_id=client_id)
        raise
    await ctx.limiter.login_succeeded("token", body.client_id, ip)
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
