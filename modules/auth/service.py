"""Accounts, sessions (access + rotating refresh tokens) and partner credentials."""

from __future__ import annotations

import secrets
import uuid

from core import clock
from core.deps import AppContext
from core.errors import Conflict, Forbidden, InvalidCredentials, InvalidToken, NotFound
from core.revocation import TokenVersions
from core.security import (
    Principal,
    TokenPair,
    hash_password,
    new_client_secret,
    verify_password,
)
from core.storage.errors import DuplicateKey, Missing
from core.storage.records import Partner, RefreshToken, Role, User, new_id


class EmailTaken(Conflict):
    code, message = "EMAIL_TAKEN", "An account with this email already exists"


class InvalidClient(InvalidCredentials):
    code, message = "INVALID_CLIENT", "Unknown client or wrong secret"


class AuthService:
    def __init__(self, ctx: AppContext) -> None:
        self.storage = ctx.storage
        self.tokens = ctx.tokens
        self.versions = TokenVersions(ctx.cache, ctx.storage)

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
        return user, await self._issue(user, family_id=uuid.uuid4().hex)

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
            await self.storage.tokens.revoke_family(claims.family_id)
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
        try:
            user = await self.storage.users.bump_token_version(principal.id, clock.now())
        except Missing:
            raise InvalidToken() from None
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
