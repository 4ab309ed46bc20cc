"""Webhook URLs are chosen by callers, so every request to one is a potential SSRF.

A URL must be https, carry no credentials, and its host must resolve only to public
addresses (not loopback, private, link-local — cloud metadata lives there —, multicast,
reserved or unspecified). The check runs when a webhook is saved (a 422 with a clear code)
and again before every send, and the request then goes to the address that was checked,
not to a second lookup: a host that re-resolves to an internal address between the check
and the connection (DNS rebinding) is never reached. `WEBHOOK_ALLOW_PRIVATE=true` lifts the
scheme and address rules for development and tests (the settings refuse it in production).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import AppError

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
RESOLVE_SECONDS = 5.0


class UnsafeUrl(AppError):
    """422 with the rule the URL broke as its code."""

    status_code = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, errors=[{"field": "url", "message": message}])
        self.code = code


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request for a checked URL goes: the address that passed the check, and the
    host name for the Host header and TLS (SNI and certificate)."""

    url: str
    host: str
    port: int
    address: IPAddress

    @property
    def connect_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{ip}:{self.port}{path}{query}"

    @property
    def host_header(self) -> str:
        default = 443 if self.url.lower().startswith("https:") else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def why_refused(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_refused(address.ipv4_mapped)
    for kind, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return kind
    return None


def parse(url: str, *, allow_private: bool) -> tuple[str, int]:
    """The host and port of an acceptable URL (before resolution); UnsafeUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl("WEBHOOK_URL_INVALID", f"The URL is longer than {MAX_URL_LENGTH}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("WEBHOOK_URL_INVALID", "The URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl("WEBHOOK_URL_INVALID", "The URL must be an absolute https:// URL")
    if scheme == "http" and not allow_private:
        raise UnsafeUrl("WEBHOOK_URL_NOT_HTTPS", "Webhook URLs must use https://")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "WEBHOOK_URL_CREDENTIALS", "Webhook URLs must not carry credentials (user:pass@)"
        )
    if parts.fragment:
        raise UnsafeUrl("WEBHOOK_URL_INVALID", "Webhook URLs must not have a #fragment")
    return parts.hostname, port or (443 if scheme == "https" else 80)


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Check the URL and every address its host resolves to; the first address to use.

    Every address must pass, not just one: a client may connect to any of them."""
    host, port = parse(url, allow_private=allow_private)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                RESOLVE_SECONDS,
            )
        except (OSError, TimeoutError, UnicodeError):
            raise UnsafeUrl(
                "WEBHOOK_URL_UNRESOLVABLE", f"The host {host!r} does not resolve"
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise UnsafeUrl("WEBHOOK_URL_UNRESOLVABLE", f"The host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if (kind := why_refused(address)) is not None:
                # A name gets neither the address nor its kind: the caller would learn what
                # internal names resolve to, an oracle into the network behind us.
                message = (
                    f"{host} is a {kind} address"
                    if literal is not None
                    else f"The host {host!r} resolves to an address that is not public"
                )
                raise UnsafeUrl(
                    "WEBHOOK_URL_FORBIDDEN_ADDRESS",
                    f"{message}: webhooks only reach public addresses",
                )
    return Target(url=url, host=host, port=port, address=addresses[0])
