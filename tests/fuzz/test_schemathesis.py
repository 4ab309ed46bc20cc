"""Schemathesis against the real server on SQLite and PostgreSQL (issue 14): every operation of
/openapi.json, valid and invalid inputs, as a user and as an admin. No input may reach a 500,
and every answer must be one the document declares, in its schema, content type and headers.

Bounded and repeatable: a fixed number of examples per operation, derandomized (the same inputs
on every run), no deadline. `pytest -m fuzz` selects it; `-m "not fuzz"` leaves it out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modules.api import create_api
from tests.support.api import make_settings
from tests.support.races import account
from tests.support.server import Server
from tests.support.services import database_of_its_own

pytestmark = pytest.mark.fuzz
EXAMPLES = 15
STATEFUL_EXAMPLES = 20
load_all_checks()
CHECKS = REGISTERED_CHECKS.get_all()
"""Every check schemathesis has (`--checks all`), not only "no server error"."""
STATEFUL_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
"""The stateful phase checks the answers' conformance only: the other checks replay requests
(a resource after its deletion, an authentication left out), which changes the server's
state between a sequence's runs, and hypothesis then refuses the run as flaky."""
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The real server on SQLite, and on PostgreSQL (which refuses what SQLite stores, NUL)."""
    with database_of_its_own(request, request.param) as url, Server(url, workers=1) as running:
        yield running


def new_tokens(server: Server) -> dict[str, str]:
    """A new user's and a new admin's bearer tokens."""
    database_url = server.env["DATABASE_URL"]

    async def make() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            user = await account(http, database_url)
            admin = await account(http, database_url, "admin")
            return {"user": user.authorization, "admin": admin.authorization}

    return asyncio.run(make())


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    return new_tokens(server)


def _operations() -> list[schemathesis.APIOperation]:
    """Every operation of the document, read from the app itself (the document is static)."""
    app = create_api(make_settings("sqlite:///:memory:"))
    document = schemathesis.openapi.from_dict(app.openapi())
    return [result.ok() for result in document.get_all_operations()]  # type: ignore[union-attr]


OPERATIONS = _operations()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("role", ["user", "admin"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_input_breaks_the_contract(
    server: Server,
    tokens: dict[str, str],
    operation: schemathesis.APIOperation,
    role: str,
    mode: GenerationMode,
) -> None:
    headers = {"Authorization": tokens[role]}

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip("nothing in this operation can be made invalid")


@pytest.mark.parametrize("role", ["user", "admin"])
def test_sequences_of_calls_follow_the_document(server: Server, role: str) -> None:
    """Stateful: links (inferred from the document) feed one answer's ids into the next call,
    so the run reaches real events, bookings and orders instead of only unknown ids. Its own
    accounts: a sequence may log out or change the password, which ends the caller's tokens."""
    tokens = new_tokens(server)
    document = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    # A real event's live stream never ends: a link to it would hold the run until its timeout.
    # What a code unlocks follows the codes and seats earlier sequences left on the server, so
    # its answers change between hypothesis's replays of one sequence (FlakyStrategyDefinition);
    # the per-operation runs above cover it.
    document = document.exclude(path_regex="(/stream|/codes/check)$")
    headers = {"Authorization": tokens[role]}

    class Calls(document.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers, "timeout": 30}

        def validate_response(self, response: Any, case: schemathesis.Case, **_: Any) -> None:
            case.validate_response(response, checks=STATEFUL_CHECKS)

    Calls.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
