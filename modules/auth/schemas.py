from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, EmailStr, Field, field_validator

from core.schemas import CamelModel, CleanModel, InputModel
from core.storage.records import Partner, User
from modules.auth.common_passwords import COMMON_PASSWORDS

MIN_PASSWORD_LENGTH = 10


def _nfkc(value: object) -> object:
    """Fullwidth and other compatibility forms become their plain letters (ａ → a), so that a
    look-alike spelling is the same address, not a second account."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def _script(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def _one_script(value: str) -> str:
    """Refuse an address with a part whose letters mix scripts (a Cyrillic а among Latin
    letters): it is meant to look like someone else's. Each part (the local part, each domain
    label) may have its own script."""
    for part in re.split(r"[@.]", value):
        if len({_script(c) for c in part if c.isalpha()}) > 1:
            raise ValueError("the address mixes letters of different scripts")
    return value


Email = Annotated[EmailStr, BeforeValidator(_nfkc), AfterValidator(_one_script)]


EMAIL_RULES = (
    "An email address (RFC 5322, normalized to NFKC); special-use domains (.test, .invalid, "
    ".localhost, .local, .onion, .arpa) and parts mixing scripts are refused with 422"
)


def _not_common(value: str) -> str:
    if value.lower() in COMMON_PASSWORDS:
        raise ValueError("this password is too common; choose another")
    return value


NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=128,
        description="Not one of the commonly used passwords (422 otherwise)",
    ),
    AfterValidator(_not_common),
]
"""A password an account is given: long enough, not one of the common ones."""


class RegisterIn(InputModel):
    email: Email = Field(description=EMAIL_RULES)
    password: NewPassword
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class LoginIn(InputModel):
    email: Email = Field(description=EMAIL_RULES)
    password: str = Field(min_length=1, max_length=128)


class ChangePasswordIn(InputModel):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: NewPassword


class ForgotPasswordIn(InputModel):
    email: Email


class ResetPasswordIn(InputModel):
    token: str = Field(min_length=1, max_length=200)
    password: NewPassword


class VerifyEmailIn(InputModel):
    email: Email = Field(description="The address the code was mailed to")
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6-digit code of the message")


class ResendVerificationIn(InputModel):
    email: Email


class ChangeEmailIn(InputModel):
    current_password: str = Field(min_length=1, max_length=128)
    new_email: Email = Field(description=EMAIL_RULES)


class RefreshIn(InputModel):
    refresh_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Required, except from the web front (its httpOnly cookie carries it)",
    )


class TokenPairOut(CamelModel):
    access_token: str
    refresh_token: str | None = Field(
        description="null for the web front (X-TicketBoss-Client: web): an httpOnly cookie has it"
    )
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class UserOut(CamelModel):
    id: str
    email: str
    name: str
    role: str
    email_verified: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            email_verified=user.email_verified_at is not None,
            created_at=user.created_at,
        )


class RegisteredOut(TokenPairOut):
    user: UserOut


class PartnerOut(CamelModel):
    id: str
    name: str
    role: Literal["partner"] = "partner"
    client_id: str
    created_at: datetime

    @classmethod
    def of(cls, partner: Partner) -> PartnerOut:
        return cls(
            id=partner.id,
            name=partner.name,
            client_id=partner.client_id,
            created_at=partner.created_at,
        )


class PartnerIn(InputModel):
    name: str = Field(min_length=1, max_length=200)


class PartnerCredentialsOut(PartnerOut):
    client_secret: str = Field(description="Shown once; only its hash is stored")


class RoleIn(InputModel):
    role: Literal["user", "organizer", "admin"]


class ClientCredentialsIn(CleanModel):
    """RFC 6749 §4.4 token request (snake_case field names, as the RFC spells them)."""

    grant_type: str = Field(min_length=1, max_length=64)
    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str = Field(min_length=1, max_length=256)


class ClientTokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
