"""HTTPS deliveries go to the checked address, yet TLS still verifies the certificate against
the URL's host name (sent as SNI and Host): pinning the address does not weaken TLS."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core import clock
from core.storage import build_storage
from core.storage.records import Delivery, Webhook
from modules.webhooks.dispatcher import Dispatcher
from tests.support.receiver import Receiver
from tests.webhooks.conftest import fast_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `name`, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def attempt(
    sqlite_url: str, url: str, trust: ssl.SSLContext
) -> tuple[int | None, str | None]:
    storage = build_storage(sqlite_url)
    dispatcher = Dispatcher(storage, fast_settings(sqlite_url))
    await dispatcher.client.aclose()
    dispatcher.client = httpx.AsyncClient(verify=trust, follow_redirects=False, trust_env=False)
    now = clock.now()
    hook = Webhook("w", "o", "admin", url, ("*",), SECRET, now, now)
    delivery = Delivery("msg_tls", "w", "c", "webhook.test", "s", 1, {"type": "t"}, now, now, now)
    try:
        sent = await dispatcher.send(hook, delivery, now)
    finally:
        await dispatcher.close()
        await storage.close()
    return sent.status_code, sent.error


async def test_the_certificate_is_verified_against_the_host_name(
    tmp_path: Path, sqlite_url: str
) -> None:
    server, client = self_signed(tmp_path, "localhost")
    async with Receiver(tls=server) as receiver:
        assert await attempt(sqlite_url, receiver.url, client) == (200, None)
    [got] = receiver.received
    assert got.headers["host"] == receiver.url.split("/")[2]  # localhost:<port>
    got.verify(SECRET)


async def test_a_certificate_for_another_name_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    server, client = self_signed(tmp_path, "other.example")
    async with Receiver(tls=server) as receiver:
        status, error = await attempt(sqlite_url, receiver.url, client)
    assert status is None and error == "tls_error"
    assert receiver.received == []
