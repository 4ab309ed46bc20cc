"""Race a live TicketBoss deployment and check afterwards that nothing was oversold or lost.

    python bench/race.py --url https://tickets.example.com [options]

Standard library only: copy this file anywhere with Python 3.11+. It fires many concurrent
requests at the partner contract (`POST /reservations`) and at the bookings API
(`POST /api/v1/bookings`), then reads the deployment back and checks:

- no oversell: the seats taken equal the seats the 201 answers acknowledged, and the seats
  left are never negative;
- nothing lost: every acknowledged reservation or booking can be read back;
- no false refusal: a 409 "not enough seats" is right only if, at the end of the race (seats
  only decrease during it), fewer seats than it asked for were left;
- every other answer is counted and shown (a 5xx fails the run).

Run it against a deployment nobody else is booking on at the same time (other traffic moves
the counts it compares). Exit status 0 when every check passes, 1 otherwise.

Reservations need a partner: `--client-id/--client-secret` (OAuth2 client credentials), or
nothing when the deployment runs with TICKETBOSS_ANONYMOUS_PARTNERS=true. Bookings need an
event on sale: `--event` and `--tier`, with a user's `--email/--password` (or `--register`
to make fresh users).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Http:
    """One keep-alive connection per thread to the deployment."""

    base: urllib.parse.SplitResult
    local: threading.local = field(default_factory=threading.local)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.base.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.base.hostname or "localhost", self.base.port, timeout=60)
            self.local.conn = conn
        return conn

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        sent = {"content-type": "application/json"} | (headers or {})
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, self.base.path.rstrip("/") + path, payload, sent)
                response = conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")


def race(n: int, work: Any) -> list[Any]:
    """Run `work(i)` for i in range(n) from n threads released at once."""
    start = threading.Barrier(n)

    def one(i: int) -> Any:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def race_reservations(api: Http, args: argparse.Namespace) -> list[str]:
    headers: dict[str, str] = {}
    partner_id = args.partner_id
    if args.client_id:
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": args.client_id,
                "client_secret": args.client_secret,
            }
        )
        conn = api._conn()
        conn.request(
            "POST",
            "/api/v1/auth/token",
            form,
            {"content-type": "application/x-www-form-urlencoded"},
        )
        reply = conn.getresponse()
        token = json.loads(reply.read())["access_token"]
        headers["Authorization"] = f"Bearer {token}"
        partner_id = partner_id or args.client_id
    status, before = api.call("GET", "/reservations", headers=headers)
    if status != 200:
        return [f"GET /reservations answered {status}: {before}"]
    rng = random.Random(args.seed)
    asks = [rng.randint(1, args.max_seats) for _ in range(args.clients)]

    def reserve(i: int) -> tuple[int, Any]:
        body = {"partnerId": partner_id or f"race-{i % 20}", "seats": asks[i]}
        return api.call(
            "POST", "/reservations", body, headers | {"Idempotency-Key": uuid.uuid4().hex}
        )

    started = time.monotonic()
    answers = race(args.clients, reserve)
    elapsed = time.monotonic() - started
    status, after = api.call("GET", "/reservations", headers=headers)
    made = [(asks[i], body) for i, (code, body) in enumerate(answers) if code == 201]
    listed = {
        r["reservationId"]
        for r in api.call("GET", "/reservations/list?limit=1000", headers=headers)[1]
    }
    problems = _common_checks(
        "reservations",
        answers,
        asks,
        seats_taken=before["availableSeats"] - after["availableSeats"],
        acknowledged=sum(seats for seats, _ in made),
        left=after["availableSeats"],
        elapsed=elapsed,
    )
    lost = [body["reservationId"] for _, body in made if body["reservationId"] not in listed]
    if len(made) <= 1000 and lost:
        problems.append(
            f"reservations: {len(lost)} acknowledged reservations are missing: {lost[:5]}"
        )
    return problems


def race_bookings(api: Http, args: argparse.Namespace) -> list[str]:
    if not args.event:
        return ["bookings: --event (and --tier) name an event on sale to race"]
    tokens = _tokens(api, args)
    path = f"/api/v1/events/{urllib.parse.quote(args.event)}/availability"

    def left_in_tier() -> int:
        status, body = api.call("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body}")
        return next(t["available"] for t in body["data"]["tiers"] if t["code"] == args.tier)

    before = left_in_tier()
    rng = random.Random(args.seed + 1)
    asks = [rng.randint(1, args.max_seats) for _ in range(args.clients)]

    def book(i: int) -> tuple[int, Any]:
        body = {"eventId": args.event, "tier": args.tier, "quantity": asks[i]}
        headers = {
            "Authorization": f"Bearer {tokens[i % len(tokens)]}",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        return api.call("POST", "/api/v1/bookings", body, headers)

    started = time.monotonic()
    answers = race(args.clients, book)
    elapsed = time.monotonic() - started
    after = left_in_tier()
    made = [(i, body["data"]) for i, (code, body) in enumerate(answers) if code == 201]
    problems = _common_checks(
        "bookings",
        answers,
        asks,
        seats_taken=before - after,
        acknowledged=sum(b["quantity"] for _, b in made),
        left=after,
        elapsed=elapsed,
    )
    for i, booking in made:
        auth = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        status, body = api.call("GET", f"/api/v1/bookings/{booking['id']}", headers=auth)
        if status != 200 or body["data"]["status"] != "confirmed":
            problems.append(
                f"bookings: acknowledged booking {booking['id']} reads back as {status}: {body}"
            )
    return problems


def _tokens(api: Http, args: argparse.Namespace) -> list[str]:
    if args.email:
        status, body = api.call(
            "POST", "/api/v1/auth/login", {"email": args.email, "password": args.password}
        )
        if status != 200:
            raise SystemExit(f"login failed ({status}): {body}")
        return [body["data"]["accessToken"]]
    if not args.register:
        raise SystemExit("bookings need --email/--password, or --register to make users")
    tokens = []
    for _ in range(args.register):
        email = f"race-{uuid.uuid4().hex[:12]}@example.com"
        status, body = api.call(
            "POST",
            "/api/v1/auth/register",
            {"email": email, "password": uuid.uuid4().hex, "name": "Race"},
        )
        if status != 201:
            raise SystemExit(f"register failed ({status}): {body}")
        tokens.append(body["data"]["accessToken"])
    return tokens


def _common_checks(
    what: str,
    answers: list[tuple[int, Any]],
    asks: list[int],
    *,
    seats_taken: int,
    acknowledged: int,
    left: int,
    elapsed: float,
) -> list[str]:
    codes = Counter(code for code, _ in answers)
    print(
        f"{what}: {len(answers)} requests in {elapsed:.2f}s, answers {dict(codes)}, "
        f"seats acknowledged {acknowledged}, taken {seats_taken}, left {left}"
    )
    problems = []
    if seats_taken != acknowledged:
        problems.append(f"{what}: {seats_taken} seats were taken but {acknowledged} acknowledged")
    if left < 0:
        problems.append(f"{what}: {left} seats left (oversold)")
    false_refusals = [
        asks[i] for i, (code, _) in enumerate(answers) if code == 409 and asks[i] <= left
    ]
    if false_refusals:
        problems.append(f"{what}: {len(false_refusals)} refusals while enough seats remained")
    if any(code >= 500 for code in codes):
        problems.append(f"{what}: server errors: {[a for a in answers if a[0] >= 500][:3]}")
    unexpected = set(codes) - {201, 409, 429, 503}
    if unexpected:
        problems.append(
            f"{what}: unexpected answers {sorted(unexpected)}: {[a for a in answers if a[0] in unexpected][:3]}"
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the deployment, e.g. http://127.0.0.1:8000")
    parser.add_argument("--only", choices=("reservations", "bookings"), help="race one surface")
    parser.add_argument("--clients", type=int, default=200, help="concurrent requests per race")
    parser.add_argument("--max-seats", type=int, default=3, help="each request asks 1..N seats")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client-id", help="partner client id (reservations)")
    parser.add_argument("--client-secret")
    parser.add_argument("--partner-id", help="partnerId to send (default: the client id)")
    parser.add_argument("--event", help="event id to book (bookings)")
    parser.add_argument("--tier", default="GA")
    parser.add_argument("--email", help="a user's email (bookings)")
    parser.add_argument("--password")
    parser.add_argument("--register", type=int, default=0, help="register N fresh users instead")
    args = parser.parse_args()
    api = Http(urllib.parse.urlsplit(args.url))
    problems = []
    if args.only in (None, "reservations"):
        problems += race_reservations(api, args)
    if args.only in (None, "bookings") and (args.event or args.only):
        problems += race_bookings(api, args)
    for problem in problems:
        print(f"FAIL {problem}")
    print("all checks passed" if not problems else f"{len(problems)} check(s) failed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
