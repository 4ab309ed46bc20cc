"""Accounts, sessions (access + rotating refresh tokens) and partner credentials."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import NoReturn

from core import clock
from core.deps import AppContext
from core.errors import AppError, Conflict, Forbidden, InvalidCredentials, InvalidToken, NotFound
from core.logging import get_logger
from core.revocation import TokenVersions
from core.security import (
    Principal,
    TokenPair,
    hash_password,
    new_client_secret,
    token_hash,
    verify_password,
)
from core.storage.errors import DuplicateKey, Missing
from core.storage.records import (
    CodePurpose,
    EmailCode,
    Partner,
    RefreshToken,
    ResetToken,
    Role,
    User,
    new_id,
)
from modules.auth import audit
from modules.notifications.outbox import new_mail


class EmailTaken(Conflict):
    code, message = "EMAIL_TAKEN", "An account with this email already exists"


class ResetTokenInvalid(AppError):
    status_code, code = 400, "RESET_TOKEN_INVALID"
    message = "This reset link is not valid (already used, replaced by a newer one, or unknown)"


class ResetTokenExpired(AppError):
    status_code, code, message = 400, "RESET_TOKEN_EXPIRED", "This reset link has expired"


class CodeInvalid(AppError):
    status_code, code = 400, "VERIFICATION_CODE_INVALID"
    message = "This code is not valid (wrong, already used, replaced by a newer one, or unknown)"


class CodeExpired(AppError):
    status_code, code = 400, "VERIFICATION_CODE_EXPIRED"
    message = "This code has expired; ask for a new one"


class CodeExhausted(AppError):
    status_code, code = 400, "VERIFICATION_ATTEMPTS_EXCEEDED"
    message = "Too many wrong codes; ask for a new one"


class SameEmail(AppError):
    status_code, code = 400, "EMAIL_UNCHANGED"
    message = "This is already the account's address"


log = get_logger(__name__)


def code_hash(salt: str, code: str) -> str:
    """A 6-digit code is guessable offline whatever the hash; the salt keeps equal codes
    apart, the short life and the attempt limit keep it from being guessed online."""
    return hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()


def matching(codes: list[EmailCode], code: str) -> EmailCode | None:
    """The code `code` is, compared in constant time with every candidate."""
    found = None
    for candidate in codes:
        if hmac.compare_digest(candidate.code_hash, code_hash(candidate.salt, code)):
            found = candidate
    return found


class InvalidClient(InvalidCredentials):
    code, message = "INVALID_CLIENT", "Unknown client or wrong secret"


class AuthService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.storage = ctx.storage
        self.tokens = ctx.tokens
        self.versions = TokenVersions(ctx.cache, ctx.storage)
        self.settings = ctx.settings

    async def register(
        self, email: str, password: str, name: str, role: Role = "user"
    ) -> tuple[User, TokenPair]:
        now = clock.now()
        user = User(
            id=new_id(),
            email=email.lower(),
            name=name,
            role=role,
            password_hash=await hash_password(password),
            created_at=now,
            updated_at=now,
        )
        try:
            await self.storage.users.create(user)
        except DuplicateKey:
            raise EmailTaken() from None
        try:
            await self.send_code(user, "verify", user.email)
        except Exception as exc:  # the account exists: its owner asks for the code again
            log.warning("verification_not_sent", account_id=user.id, error=type(exc).__name__)
        return user, await self._issue(user, family_id=uuid.uuid4().hex)

    async def send_code(self, user: User, purpose: CodePurpose, email: str) -> None:
        """Mail a new 6-digit code to `email` (replacing the account's live one of `purpose`)."""
        s, now = self.settings, clock.now()
        code, salt = f"{secrets.randbelow(1_000_000):06d}", secrets.token_hex(16)
        params = {
            "name": user.name,
            "code": code,
            "purpose": purpose,
            "minutes": max(1, s.email_code_ttl_seconds // 60),
        }
        mail = new_mail(f"{new_id()}-code", "verify_email", email, params, s)
        expires = now + timedelta(seconds=s.email_code_ttl_seconds)
        entry = EmailCode(user.id, purpose, email, code_hash(salt, code), salt, expires, now)
        await self.storage.email_codes.issue(entry, mail)

    async def resend_verification(self, email: str) -> None:
        """A new code for an account whose address is not verified yet; nothing otherwise
        (the caller answers the same either way)."""
        user = await self.storage.users.get_by_email(email.lower())
        if user is not None and user.email_verified_at is None:
            await self.send_code(user, "verify", user.email)

    async def verify_email(self, email: str, code: str) -> User:
        """Spend a code mailed to `email`: the account's address is verified, or (a change of
        address) the account moves to it and the old address is told. Every try counts
        against the code's attempts before it is compared, so racing guesses get no more."""
        now, email = clock.now(), email.lower()
        limit = self.settings.email_code_max_attempts
        counted = await self.storage.email_codes.attempt(email, now, limit)
        if not counted:
            await self._why_not(email, now, limit)
        found = matching(counted, code)
        if found is None:
            raise CodeInvalid()
        notice = None
        if found.purpose == "change":
            old = await self.storage.users.get(found.user_id)
            if old is None:
                raise CodeInvalid()
            params = {"name": old.name, "new_email": found.email}
            notice = new_mail(
                f"{new_id()}-moved", "email_changed", old.email, params, self.settings
            )
        try:
            user = await self.storage.email_codes.use(found, now, notice)
        except DuplicateKey:
            raise EmailTaken() from None
        if user is None:
            raise CodeInvalid()
        return user

    async def _why_not(self, email: str, now: datetime, limit: int) -> NoReturn:
        """Raise why no code sent to `email` could take a try."""
        codes = await self.storage.email_codes.find(email)
        if any(c.expires_at <= now for c in codes):
            raise CodeExpired()
        if any(c.attempts >= limit for c in codes):
            raise CodeExhausted()
        raise CodeInvalid()

    async def change_email(self, principal: Principal, current: str, new_email: str) -> None:
        """Needs the current password. The new address gets a code; the account moves only
        once the code comes back (verify_email), and the old address is told then."""
        user = await self.storage.users.get(principal.id)
        if user is None or not await verify_password(current, user.password_hash):
            raise InvalidCredentials()
        new_email = new_email.lower()
        if new_email == user.email:
            raise SameEmail()
        if await self.storage.users.get_by_email(new_email) is not None:
            raise EmailTaken()
        await self.send_code(user, "change", new_email)

    async def login(self, email: str, password: str) -> TokenPair:
        user = await self.storage.users.get_by_email(email.lower())
        if (
            not await verify_password(password, user.password_hash if user else None)
            or user is None
        ):
            raise InvalidCredentials()
        return await self._issue(user, family_id=uuid.uuid4().hex)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token is spent; presenting a spent one revokes its family."""
        claims = self.tokens.refresh_claims(refresh_token)
        outcome = await self.storage.tokens.spend(claims.jti, clock.now())
        if outcome == "spent":
            # Someone holds a copy of the session: its access tokens are theirs too.
            await self.storage.tokens.revoke_family(claims.family_id)
            await audit.record(
                self.ctx, "refresh_reused", account_id=claims.user_id, ip=None, family_revoked=True
            )
            await self._end_access_tokens(claims.user_id)
            raise InvalidToken("This refresh token was already used; the session has been revoked")
        user = await self.storage.users.get(claims.user_id) if outcome == "ok" else None
        if user is None:
            raise InvalidToken()
        return await self._issue(user, family_id=claims.family_id)

    async def logout(self, refresh_token: str, principal: Principal) -> None:
        """End the session (its refresh tokens) and every access token of the account issued
        so far: an access token cannot name its session, so the account's version moves on
        (other sessions get new access tokens at their next refresh)."""
        claims = self.tokens.refresh_claims(refresh_token)
        if claims.user_id != principal.id:
            raise Forbidden("This refresh token belongs to another account")
        await self.storage.tokens.revoke_family(claims.family_id)
        await self._end_access_tokens(principal.id)

    async def _end_access_tokens(self, user_id: str) -> None:
        """Every access token of the account issued so far stops working (its version moves)."""
        try:
            user = await self.storage.users.bump_token_version(user_id, clock.now())
        except Missing:
            raise InvalidToken() from None
        await self.versions.bumped(user.id, user.token_version, partner=False)

    async def change_password(self, principal: Principal, current: str, new: str) -> TokenPair:
        """Needs the current password. Every session of the account ends (its access tokens,
        its refresh tokens); the caller gets a fresh pair, a session of its own."""
        user = await self.storage.users.get(principal.id)
        if user is None or not await verify_password(current, user.password_hash):
            raise InvalidCredentials()
        try:
            user = await self.storage.users.set_password(
                user.id, await hash_password(new), clock.now()
            )
        except Missing:
            raise InvalidToken() from None
        await self.versions.bumped(user.id, user.token_version, partner=False)
        return await self._issue(user, family_id=uuid.uuid4().hex)

    async def forgot_password(self, email: str) -> None:
        """Mail a single-use reset link to the account, if there is one (the caller answers
        the same either way). A new request replaces the previous link."""
        token = secrets.token_urlsafe(32)
        hashed = token_hash(token)
        user = await self.storage.users.get_by_email(email.lower())
        if user is None:
            return
        s, now = self.settings, clock.now()
        params = {
            "name": user.name,
            "link": f"{s.public_url.rstrip('/')}/reset-password#token={token}",
            "minutes": s.reset_token_ttl_seconds // 60,
        }
        mail = new_mail(f"{new_id()}-reset", "password_reset", user.email, params, s)
        expires = now + timedelta(seconds=s.reset_token_ttl_seconds)
        await self.storage.resets.issue(ResetToken(user.id, hashed, expires, now), mail)

    async def reset_password(self, token: str, password: str) -> None:
        """Spend the token and set the password, one atomic step; every session ends."""
        password_hash = await hash_password(password)
        outcome, user = await self.storage.resets.reset(
            token_hash(token), password_hash, clock.now()
        )
        if outcome == "spent":
            raise ResetTokenExpired()
        if user is None:
            raise ResetTokenInvalid()
        await self.versions.bumped(user.id, user.token_version, partner=False)

    async def _issue(self, user: User, family_id: str) -> TokenPair:
        refresh_token, claims = self.tokens.refresh_token(user.id, family_id)
        await self.storage.tokens.add(
            RefreshToken(claims.jti, family_id, user.id, claims.expires_at)
        )
        access = self.tokens.access_token(Principal(user.id, user.role, user.token_version))
        return TokenPair(access, refresh_token, self.tokens.access_ttl)

    async def user(self, user_id: str) -> User:
        user = await self.storage.users.get(user_id)
        if user is None:
            raise NotFound("User not found")
        return user

    async def partner(self, partner_id: str) -> Partner:
        partner = await self.storage.partners.get(partner_id)
        if partner is None:
            raise NotFound("Partner not found")
        return partner

    async def set_role(self, user_id: str, role: Role) -> User:
        """Change the role; the account's access tokens issued so far stop working at once."""
        try:
            user = await self.storage.users.set_role(user_id, role, clock.now())
        except Missing:
            raise NotFound("User not found") from None
        await self.versions.bumped(user.id, user.token_version, partner=False)
        return user

    async def create_partner(self, name: str) -> tuple[Partner, str]:
        secret = new_client_secret()
        partner = Partner(
            id=new_id(),
            name=name,
            client_id=f"tbp_{secrets.token_hex(12)}",
            secret_hash=await hash_password(secret),
            created_at=clock.now(),
        )
        await self.storage.partners.create(partner)
        return partner, secret

    async def rotate_partner_secret(self, partner_id: str) -> tuple[Partner, str]:
        secret = new_client_secret()
        try:
            partner = await self.storage.partners.set_secret(
                partner_id, await hash_password(secret)
            )
        except Missing:
            raise NotFound("Partner not found") from None
        await self.versions.bumped(partner.id, partner.token_version, partner=True)
        return partner, secret

    async def client_credentials(self, client_id: str, client_secret: str) -> str:
        partner = await self.storage.partners.get_by_client_id(client_id)
        if (
            not await verify_password(client_secret, partner.secret_hash if partner else None)
            or partner is None
        ):
            raise InvalidClient()
        return self.tokens.access_token(Principal(partner.id, "partner", partner.token_version))

    async def ensure_admin(
        self, email: str, password: str, name: str = "Administrator"
    ) -> tuple[User, bool]:
        """Create the account as admin, or promote an existing one (password unchanged);
        the account, and whether it was created."""
        existing = await self.storage.users.get_by_email(email.lower())
        if existing is not None:
            return await self.set_role(existing.id, "admin"), False
        user, _ = await self.register(email, password, name, role="admin")
        return user, True
