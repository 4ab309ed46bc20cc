"""`ticketboss`: serve, migrate, seed, create-admin, reconcile, expire-holds, prune-changes,
deliver-webhooks, mail.

The commands act through the same services as the HTTP API, on a context built the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from core import clock
from core.app import close_context, open_context
from core.config import ConfigError, Settings, load_settings
from core.deps import AppContext
from core.logging import configure_logging, get_logger
from core.security import SYSTEM
from modules.activity.service import ActivityService
from modules.auth.schemas import MIN_PASSWORD_LENGTH
from modules.auth.service import AuthService
from modules.bookings.service import BookingService
from modules.events.schemas import EventCreate, TierIn
from modules.events.service import EventService, announce_changes
from modules.notifications.outbox import start_mail_from_changes
from modules.notifications.sender import masked, sender_of
from modules.webhooks.dispatcher import Dispatcher
from modules.webhooks.fanout import start_fan_out

APP_FACTORY = "modules.api:serve_api"
# uvicorn's h11 protocol, closing as proxies do (core/http_protocol.py).
HTTP_PROTOCOL = "core.http_protocol:TicketBossProtocol"


class CommandError(Exception):
    """Printed as one line; the command exits non-zero."""


async def _with_context[R](settings: Settings, work: Callable[[AppContext], Awaitable[R]]) -> R:
    """Open the app context (migrating the schema), run `work`, close it."""
    try:
        ctx = await asyncio.wait_for(open_context(settings, migrate=True), timeout=30)
    except Exception as exc:  # report any driver failure as one clear line
        raise CommandError(
            f"cannot reach the {settings.database_kind} database: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else 'no details'}"
        ) from None
    try:
        return await work(ctx)
    finally:
        await close_context(ctx)


async def _migrate(ctx: AppContext) -> None:
    print(f"schema is up to date ({ctx.storage.kind})")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    asyncio.run(_with_context(settings, _migrate))
    _warn_if_exposed(settings, args.host)
    _raise_open_files_limit()
    with contextlib.ExitStack() as cleanup:
        if args.workers > 1 and not settings.prometheus_multiproc_dir:
            # Workers are separate processes: they share metrics through files in this folder.
            metrics_dir = tempfile.mkdtemp(prefix="ticketboss-metrics-")
            cleanup.callback(shutil.rmtree, metrics_dir, ignore_errors=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        if args.workers > 1 and settings.redis_url is None:
            # ... and one cache, which the workers reach as if it were a real Redis.
            from core.embedded_redis import EmbeddedRedis  # imports fakeredis

            os.environ["REDIS_URL"] = cleanup.enter_context(EmbeddedRedis()).url
            # A Python server sharing the machine with its workers answers slower than Redis
            # under load; waiting longer beats failing open (rate limits, claims), unless a
            # timeout was set.
            if settings.redis_timeout_seconds is None:
                os.environ["REDIS_TIMEOUT_SECONDS"] = "5"
        _run_uvicorn(uvicorn, settings, args)


def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor, and a stampede holds thousands (idle keep-alive,
    live streams): raise the soft limit to the hard one (workers inherit it). Past the hard
    limit only the administrator can go: `ulimit -Hn`, systemd's LimitNOFILE, Docker's
    --ulimit nofile."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _warn_if_exposed(settings: Settings, host: str) -> None:
    """A development server is for this machine: its defaults (a secret kept in a local file,
    fakeredis, open partner modes when enabled) are not meant for a network."""
    if settings.environment != "development":
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        configure_logging(settings.log_level, settings.json_logs)
        get_logger(__name__).warning(
            "development_server_exposed",
            host=host,
            detail="ENVIRONMENT=development is for this machine: set ENVIRONMENT=production "
            "and JWT_SECRET before listening on a network",
        )


def _run_uvicorn(uvicorn: Any, settings: Settings, args: argparse.Namespace) -> None:
    from core.supervisor import Supervisor

    config = uvicorn.Config(
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
        http=HTTP_PROTOCOL,
        # A replacement worker on a loaded machine can miss uvicorn's 5 s health ping while it
        # starts, and is killed for it, one after another.
        timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
    )
    if args.workers > 1:
        Supervisor(
            config,
            sockets=[config.bind_socket()],
            startup_seconds=settings.worker_startup_seconds,
        ).run()
    else:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            sys.exit(3)  # uvicorn's STARTUP_FAILURE


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> None:
    asyncio.run(_with_context(settings, _migrate))


DEMO_EVENTS = (  # name, venue, days from now, tier prices in cents (VIP, Front Row, GA)
    ("Aurora Live at the Greek", "Greek Theatre, Los Angeles", 30, (5000, 3500, 2000)),
    ("Midnight Jazz Sessions", "Blue Note, New York", 45, (1200, 800, 300)),
    ("Berlin Techno Marathon", "Tresor, Berlin", 60, (800, 600, 250)),
)


async def _seed(ctx: AppContext) -> None:
    events = EventService(ctx)
    now = clock.now()
    for index, (name, venue, days, (vip, front, ga)) in enumerate(DEMO_EVENTS):
        event_id = f"demo-{index + 1}"
        if await ctx.storage.events.get(event_id, include_deleted=True) is not None:
            print(f"exists  {event_id}: {name}")
            continue
        starts = (now + timedelta(days=days)).replace(hour=20, minute=0, second=0, microsecond=0)
        data = EventCreate(
            name=name,
            venue=venue,
            starts_at=starts,
            ends_at=starts + timedelta(hours=4),
            # Plain text: the event page shows descriptions as written, not as Markdown.
            description=f"{name}: a demo event made by the ticketboss seed command.",
            max_per_user=8,
            tiers=[
                TierIn(code="VIP", name="VIP", price_cents=vip, capacity=50),
                TierIn(code="FRONT_ROW", name="Front Row", price_cents=front, capacity=150),
                TierIn(code="GA", name="General Admission", price_cents=ga, capacity=1000),
            ],
        )
        await events.create(SYSTEM, data, event_id=event_id)
        await events.transition(SYSTEM, event_id, "publish")
        print(f"created {event_id}: {name}")


def cmd_seed(settings: Settings, _: argparse.Namespace) -> None:
    asyncio.run(_with_context(settings, _seed))


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> None:
    if len(args.password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")

    async def work(ctx: AppContext) -> None:
        user, created = await AuthService(ctx).ensure_admin(args.email, args.password, args.name)
        print(
            f"created admin {user.email} ({user.id})"
            if created
            else f"promoted {user.email} to admin"
        )

    asyncio.run(_with_context(settings, work))


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: AppContext) -> int:
        drifts = await BookingService(ctx).reconcile(fix=args.fix)
        for d in drifts:
            print(f"drift {d.describe()}")
        verdict = "repaired" if args.fix else "found"
        print(f"{len(drifts)} counter(s) with drift {verdict}" if drifts else "no drift")
        return len(drifts)

    if asyncio.run(_with_context(settings, work)) and not args.fix:
        sys.exit(1)


def cmd_expire_holds(settings: Settings, _: argparse.Namespace) -> None:
    async def work(ctx: AppContext) -> None:
        print(f"released {await BookingService(ctx).release_expired()} expired hold(s)")

    asyncio.run(_with_context(settings, work))


def cmd_prune_changes(settings: Settings, _: argparse.Namespace) -> None:
    async def work(ctx: AppContext) -> None:
        before = clock.now() - timedelta(days=settings.change_retention_days)
        pruned = await ActivityService(ctx).prune(before)
        print(
            f"pruned {pruned} change record(s) older than {settings.change_retention_days:g} days"
        )

    asyncio.run(_with_context(settings, work))


def cmd_deliver_webhooks(settings: Settings, _: argparse.Namespace) -> None:
    """For cron and serverless, where no `serve` runs the relay and the dispatcher: relay the
    change log to its consumers, then send every due delivery (one pass each)."""

    async def work(ctx: AppContext) -> None:
        await announce_changes(ctx)
        await start_fan_out(ctx)
        await start_mail_from_changes(ctx)  # the relay's every consumer, or its mail is lost
        relayed = 0
        while batch := await ctx.outbox.run_once():
            relayed += batch
        dispatcher = Dispatcher(ctx.storage, ctx.settings)
        sent = 0
        try:
            while claimed := await dispatcher.run_once():
                sent += claimed
        finally:
            await dispatcher.close()
        print(f"relayed {relayed} change record(s); attempted {sent} webhook delivery(ies)")

    asyncio.run(_with_context(settings, work))


def cmd_mail(settings: Settings, args: argparse.Namespace) -> None:
    """The mail outbox, newest first (addresses masked); `--send` sends what is due first."""

    async def work(ctx: AppContext) -> None:
        if args.send:
            sender, sent = sender_of(ctx), 0
            while claimed := await sender.run_once():
                sent += claimed
            print(f"attempted {sent} message(s)")
        for m in await ctx.storage.mail.find(status=args.status, before_id=None, limit=args.limit):
            print(
                f"{m.id}  {m.status:<9}  attempts={m.attempts}  {m.template:<17}  "
                f"{masked(m.to)}  {m.last_error or ''}".rstrip()
            )

    asyncio.run(_with_context(settings, work))


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
    sub.add_parser(
        "prune-changes", help="delete change records past CHANGE_RETENTION_DAYS (cron)"
    ).set_defaults(run=cmd_prune_changes)
    sub.add_parser(
        "deliver-webhooks", help="relay the change log and send due webhook deliveries (cron)"
    ).set_defaults(run=cmd_deliver_webhooks)
    mail = sub.add_parser("mail", help="list the mail outbox; --send sends due mail (cron)")
    mail.add_argument("--status", choices=("pending", "succeeded", "failed"))
    mail.add_argument("--limit", type=int, default=50)
    mail.add_argument("--send", action="store_true", help="send due mail first")
    mail.set_defaults(run=cmd_mail)
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
