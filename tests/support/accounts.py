"""Typed test accounts: what a test needs to act as someone."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Account:
    """A registered user (any role) with a fresh token pair."""

    id: str
    email: str
    password: str
    role: str
    access_token: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def authorization(self) -> str:
        return self.headers["Authorization"]


@dataclass(frozen=True, slots=True)
class PartnerAccount:
    """A partner's credentials (the secret as shown once) and a client-credentials token."""

    id: str
    name: str
    client_id: str
    client_secret: str
    access_token: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def authorization(self) -> str:
        return self.headers["Authorization"]
