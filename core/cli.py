"""`ticketboss`: serve, migrate, seed, create-admin, reconcile, expire-holds."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config import ConfigError, Settings, load_settings
from core.security import hash_password
from core.storage import ManagedStorage, build_storage
from core.storage.port import DuplicateKey
from core.storage.records import Event, Tier, User, new_id, utcnow

APP_FACTORY = "modules.api:create_api"


class CommandError(Exception):
    """Printed as one line; the command exits non-zero."""


async def _with_storage[R](settings: Settings, work: Callable[[ManagedStorage], Awaitable[R]]) -> R:
    storage = build_storage(settings.database_url)
    try:
        try:
            await asyncio.wait_for(storage.migrate(), timeout=30)
        except Exception as exc:  # report any driver failure as one clear line
            raise CommandError(
                f"cannot reach the {settings.database_kind} database: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else 'no details'}"
            ) from None
        return await work(storage)
    finally:
        await storage.close()


async def _migrate(storage: ManagedStorage) -> None:
    print(f"schema is up to date ({storage.kind})")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    asyncio.run(_with_storage(settings, _migrate))
    metrics_dir = None
    if args.workers > 1 and not settings.prometheus_multiproc_dir:
        # Workers are separate processes: they share metrics through files in this folder.
        metrics_dir = tempfile.mkdtemp(prefix="ticketboss-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _run_uvicorn(uvicorn, args)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_uvicorn(uvicorn: Any, args: argparse.Namespace) -> None:
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        proxy_headers=True,
        timeout_keep_alive=args.keep_alive,
    )


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> None:
    asyncio.run(_with_storage(settings, _migrate))


DEMO_EVENTS = (
    ("Aurora Live at the Greek", "Greek Theatre, Los Angeles", 30, (5000, 3500, 2000)),
    ("Midnight Jazz Sessions", "Blue Note, New York", 45, (1200, 800, 300)),
    ("Berlin Techno Marathon", "Tresor, Berlin", 60, (800, 600, 250)),
)


async def _seed(storage: ManagedStorage) -> None:
    now = utcnow()
    for index, (name, venue, days, (vip, front, ga)) in enumerate(DEMO_EVENTS):
        event_id = f"demo-{index + 1}"
        starts = (now + timedelta(days=days)).replace(hour=20, minute=0, second=0, microsecond=0)
        event = Event(
            id=event_id,
            owner_id="system",
            name=name,
            venue=venue,
            starts_at=starts,
            ends_at=starts + timedelta(hours=4),
            status="draft",
            created_at=now,
            updated_at=now,
            description=f"{name} — demo event created by `ticketboss seed`.",
            max_per_user=8,
            tiers=(
                Tier("VIP", "VIP", vip * 100, 50),
                Tier("FRONT_ROW", "Front Row", front * 100, 150),
                Tier("GA", "General Admission", ga * 100, 1000),
            ),
        )
        try:
            await storage.events.create(event)
            await storage.events.transition(event_id, ("draft",), "published", now)
            print(f"created {event_id}: {name}")
        except DuplicateKey:
            print(f"exists  {event_id}: {name}")


def cmd_seed(settings: Settings, _: argparse.Namespace) -> None:
    asyncio.run(_with_storage(settings, _seed))


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> None:
    if len(args.password) < 10:
        raise CommandError("the password must be at least 10 characters long")

    async def work(storage: ManagedStorage) -> None:
        now = utcnow()
        existing = await storage.users.get_by_email(args.email)
        if existing is not None:
            await storage.users.set_role(existing.id, "admin", now)
            print(f"promoted {existing.email} to admin")
            return
        user = User(
            id=new_id(),
            email=args.email.lower(),
            name=args.name,
            role="admin",
            password_hash=await hash_password(args.password),
            created_at=now,
            updated_at=now,
        )
        await storage.users.create(user)
        print(f"created admin {user.email} ({user.id})")

    asyncio.run(_with_storage(settings, work))


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> None:
    async def work(storage: ManagedStorage) -> int:
        drifts = await storage.bookings.recount(datetime.now(UTC), fix=args.fix)
        for d in drifts:
            print(f"drift {d.event_id}/{d.tier}: counter {d.counter}, bookings {d.actual}")
        verdict = "repaired" if args.fix else "found"
        print(f"{len(drifts)} tier(s) with drift {verdict}" if drifts else "no drift")
        return len(drifts)

    if asyncio.run(_with_storage(settings, work)) and not args.fix:
        sys.exit(1)


def cmd_expire_holds(settings: Settings, _: argparse.Namespace) -> None:
    async def work(storage: ManagedStorage) -> None:
        print(f"released {await storage.bookings.release_expired(utcnow())} expired hold(s)")

    asyncio.run(_with_storage(settings, work))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticketboss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    # uvicorn's 5 s default lets a client reuse a connection just as the server closes it (the
    # request is reset, unanswered); keep idle connections longer than proxies do (ALB: 60 s).
    serve.add_argument("--keep-alive", type=float, default=75, metavar="SECONDS")
    serve.set_defaults(run=cmd_serve)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        run=cmd_migrate
    )
    sub.add_parser("seed", help="create demo events (safe to run twice)").set_defaults(run=cmd_seed)
    admin = sub.add_parser("create-admin", help="create (or promote) an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="Administrator")
    admin.set_defaults(run=cmd_create_admin)
    reconcile = sub.add_parser("reconcile", help="recount seats from bookings; report drift")
    reconcile.add_argument("--fix", action="store_true", help="repair the counters")
    reconcile.set_defaults(run=cmd_reconcile)
    sub.add_parser("expire-holds", help="release expired holds (cron)").set_defaults(
        run=cmd_expire_holds
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        args.run(settings, args)
    except (ConfigError, CommandError) as exc:
        print(f"ticketboss: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
