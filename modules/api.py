"""The one place that assembles the product from core and the feature modules."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from core.app import Feature, create_app
from core.config import Settings
from modules.activity.router import router as activity_router
from modules.auth.router import router as auth_router
from modules.bookings.router import router as bookings_router
from modules.bookings.service import sweep_expired_holds
from modules.checkin.router import router as checkin_router
from modules.codes.router import router as codes_router
from modules.events.router import router as events_router
from modules.events.service import announce_changes
from modules.notifications.outbox import start_mail_from_changes
from modules.notifications.router import router as mail_router
from modules.notifications.sender import send_mail
from modules.orders.router import router as orders_router
from modules.queue.router import router as queue_router
from modules.queue.service import admit_forever
from modules.reservations.router import router as reservations_router
from modules.reservations.service import bootstrap_event
from modules.tickets.router import router as tickets_router
from modules.tickets.service import bootstrap_show
from modules.waitlist.router import router as waitlist_router
from modules.web.router import router as web_router
from modules.webhooks.dispatcher import dispatch_webhooks
from modules.webhooks.fanout import start_fan_out
from modules.webhooks.router import router as webhooks_router

# Routes are matched in this order, one by one: the hot booking routes first, then the
# partner contract's (its paths share no prefix with the API's, so it shadows none).
FEATURES = (
    Feature(bookings_router, background=(sweep_expired_holds,)),
    Feature(reservations_router, api=False, on_startup=(bootstrap_event,)),
    Feature(auth_router),
    Feature(orders_router),
    Feature(events_router, on_startup=(announce_changes,)),
    Feature(queue_router, background=(admit_forever,)),
    Feature(waitlist_router),
    Feature(codes_router),
    Feature(activity_router),
    Feature(checkin_router),
    Feature(webhooks_router, on_startup=(start_fan_out,), background=(dispatch_webhooks,)),
    Feature(mail_router, api=False, on_startup=(start_mail_from_changes,), background=(send_mail,)),
    Feature(tickets_router, api=False, on_startup=(bootstrap_show,)),
    # Pages, static files and the docs: last, so no API route is shadowed.
    Feature(web_router, api=False),
)


def create_api(settings: Settings | None = None) -> FastAPI:
    return create_app(settings, FEATURES)


def serve_api() -> FastAPI:
    """The app of a `ticketboss serve` worker, which keeps it until the process ends.

    What exists by now (modules, classes, schemas: most of the process's objects) is moved out
    of the garbage collector's sight; a full collection walks every object it tracks, a pause
    of several milliseconds in the middle of whatever requests are running."""
    app = create_api()
    gc.freeze()
    return app
