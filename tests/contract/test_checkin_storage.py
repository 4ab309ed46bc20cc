"""Check-in on every backend: a ticket's entry is recorded once however many scanners race
for it, an exit lets it in again, a nonce answered before gets that answer back, and keys,
lists and scanners are kept as given."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core import clock
from core.storage import ManagedStorage
from core.storage.errors import DuplicateKey, Missing
from core.storage.records import (
    CheckinList,
    Scan,
    Scanner,
    ScanResult,
    ScanType,
    SigningKey,
    new_id,
)


def a_scan(
    scanner: str,
    nonce: str,
    *,
    list_id: str = "list-1",
    ticket: str = "t-1",
    type: ScanType = "entry",
    refused: ScanResult | None = None,
    event_id: str = "ev-1",
) -> Scan:
    now = clock.now()
    return Scan(
        scanner_id=scanner,
        nonce=nonce,
        list_id=list_id,
        event_id=event_id,
        type=type,
        scanned_at=now,
        at=now,
        ticket_id=ticket,
        tier="GA",
        refused=refused,
        ticket={"id": ticket, "tier": "GA"},
    )


async def test_racing_entries_of_one_ticket_let_it_in_once(storage: ManagedStorage) -> None:
    ticket = new_id()
    answers = await asyncio.gather(
        *(storage.checkin.redeem(a_scan(f"s{i}", "n", ticket=ticket)) for i in range(8))
    )
    assert sorted(a.result for a in answers) == ["already_used"] * 7 + ["ok"]
    assert list(await storage.checkin.entries("ev-1", ticket_ids=[ticket])) == [ticket]


async def test_an_exit_lets_the_ticket_in_once_more(storage: ManagedStorage) -> None:
    ticket, redeem = new_id(), storage.checkin.redeem
    assert (await redeem(a_scan("s", "1", ticket=ticket, type="exit"))).result == "already_used"
    assert (await redeem(a_scan("s", "2", ticket=ticket))).result == "ok"
    assert (await redeem(a_scan("s", "3", ticket=ticket))).result == "already_used"
    assert (await redeem(a_scan("s", "4", ticket=ticket, type="exit"))).result == "ok"
    assert (await redeem(a_scan("s", "5", ticket=ticket, type="exit"))).result == "already_used"
    assert (await redeem(a_scan("s", "6", ticket=ticket))).result == "ok"
    other_list = a_scan("s", "7", ticket=ticket, list_id="list-2")
    assert (await redeem(other_list)).result == "ok"


async def test_a_nonce_answered_before_gets_that_answer(storage: ManagedStorage) -> None:
    ticket, scanner = new_id(), new_id()
    first = await storage.checkin.redeem(a_scan(scanner, "n1", ticket=ticket))
    again = await storage.checkin.redeem(a_scan(scanner, "n1", ticket=ticket))
    assert (first.result, first.replayed) == ("ok", False)
    assert (again.result, again.replayed, again.ticket) == ("ok", True, first.ticket)
    # Another ticket under a nonce already answered changes nothing.
    other = new_id()
    assert (await storage.checkin.redeem(a_scan(scanner, "n1", ticket=other))).result == "ok"
    assert await storage.checkin.entries("ev-1", ticket_ids=[other]) == {}


async def test_a_refused_scan_records_no_entry(storage: ManagedStorage) -> None:
    ticket, scanner = new_id(), new_id()
    refused = await storage.checkin.redeem(a_scan(scanner, "n", ticket=ticket, refused="revoked"))
    assert refused.result == "revoked"
    assert await storage.checkin.entries("ev-1", ticket_ids=[ticket]) == {}
    assert (await storage.checkin.redeem(a_scan(scanner, "m", ticket=ticket))).result == "ok"


async def test_counts_are_of_tickets_let_in_per_list_and_tier(storage: ManagedStorage) -> None:
    event = new_id()
    for n, ticket in enumerate(("a", "b", "a")):
        await storage.checkin.redeem(a_scan("s", f"n{n}", ticket=ticket, event_id=event))
    await storage.checkin.redeem(a_scan("s", "x", ticket="a", event_id=event, type="exit"))
    await storage.checkin.redeem(a_scan("s", "y", ticket="a", event_id=event))
    await storage.checkin.redeem(a_scan("s", "z", ticket="a", event_id=event, list_id="list-2"))
    counts = await storage.checkin.counts(event)
    assert [(c.list_id, c.tier, c.checked_in) for c in counts] == [
        ("list-1", "GA", 2),
        ("list-2", "GA", 1),
        (None, "GA", 2),
    ]
    assert set(await storage.checkin.entries(event, list_id="list-1")) == {"a", "b"}
    assert set(await storage.checkin.entries(event, list_id="list-2")) == {"a"}
    assert await storage.checkin.entries(event, list_id="list-3") == {}


async def test_keys_are_kept_oldest_first_and_removed_by_kid(storage: ManagedStorage) -> None:
    event, now = new_id(), clock.now()
    old = SigningKey(event, "k0", "pem-0", "x0", now)
    new = SigningKey(event, "k1", "pem-1", "x1", now + timedelta(seconds=1))
    await storage.checkin.add_key(new)
    await storage.checkin.add_key(old)
    with pytest.raises(DuplicateKey) as taken:
        await storage.checkin.add_key(SigningKey(event, "k0", "pem-2", "x2", now))
    assert taken.value.field == "kid"
    assert await storage.checkin.keys(event) == [old, new]
    await storage.checkin.remove_key(event, "k0")
    assert await storage.checkin.keys(event) == [new]
    with pytest.raises(Missing):
        await storage.checkin.remove_key(event, "k0")
    assert await storage.checkin.keys(new_id()) == []


async def test_lists_and_scanners_are_kept_and_a_scanner_revoked_once(
    storage: ManagedStorage,
) -> None:
    event, now = new_id(), clock.now()
    door = CheckinList(new_id(), event, "Front door", ("GA", "VIP"), now, opens_at=now)
    await storage.checkin.create_list(door)
    assert await storage.checkin.get_list(door.id) == door
    assert await storage.checkin.lists(event) == [door]
    scanner = Scanner(new_id(), event, "Gate 1", new_id() + new_id(), now)
    await storage.checkin.create_scanner(scanner)
    assert await storage.checkin.scanner_by_token(scanner.token_hash) == scanner
    revoked = await storage.checkin.revoke_scanner(scanner.id, now + timedelta(seconds=1))
    again = await storage.checkin.revoke_scanner(scanner.id, now + timedelta(seconds=9))
    assert revoked.revoked_at == again.revoked_at == now + timedelta(seconds=1)
    assert await storage.checkin.scanners(event) == [revoked]
    with pytest.raises(Missing):
        await storage.checkin.revoke_scanner(new_id(), now)
