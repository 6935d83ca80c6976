"""The API conforms to its own OpenAPI document.

Schemathesis loads the document from a dedicated app instance in-process and fuzzes every operation
in it, with no filter, so an endpoint added later is covered without touching this file. Each
generated request is sent with an administrator's bearer token (admin routes included) and checked
with every built-in check of schemathesis (`case.call_and_validate()`), on valid and invalid (negative)
data alike: no 5xx, only documented status codes, content types, headers and response bodies,
schema-violating requests refused, schema-valid ones accepted, authentication enforced, OPTIONS and
405 answers that list the right methods. It runs in both passes, on SQLite and on PostgreSQL.

Schemathesis drives the app from its own event loop in a thread, so the app gets an engine of its own,
whose pool lives on that loop and is disposed of when schemathesis ends the app's lifespan after the
test; it shares the run's database, which conftest empties after the test.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation import GenerationMode

from marketplace.accounts.service import AccountService
from marketplace.app import create_app
from marketplace.audit.service import AuditService
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker, unit_of_work
from marketplace.events.service import EventService
from marketplace.web.idempotency import IDEMPOTENCY_HEADER
from tests.fixtures.api import PASSWORD, Api

Case = schemathesis.Case[Any]
VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
SCHEMA_PATH = "/schema/openapi.json"
ME_PATH = "/api/v1/me"
T = TypeVar("T")
load_all_checks()
BUILT_IN_CHECKS = [check for check in CHECKS.get_all() if not isinstance(check, type)]


def run_in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop in a thread: the test runs in pytest's thread, whose loop
    is idle but not ours, and the app's loop belongs to schemathesis."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="conformance-setup") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Administrator:
    """The platform administrator whose bearer token every generated request carries.

    `DELETE /api/v1/me` is fuzzed like any other operation and deletes this account; the test then
    makes a new administrator, and requests generated earlier get the new token in place of the old."""

    def __init__(self, settings: Settings, app: Litestar) -> None:
        self.settings = settings
        self.app = app
        self.token = ""
        self.issued: set[str] = set()
        self.renew()

    def renew(self) -> None:
        async def create() -> uuid.UUID:
            engine = create_engine(self.settings)
            try:
                async with unit_of_work(create_sessionmaker(engine)) as session:
                    user = await AccountService(session, AuditService(session), EventService(session)).create_admin(
                        email=f"conformance.admin.{uuid.uuid4().hex[:8]}@example.com",
                        password=PASSWORD,
                        name="Conformance admin",
                        actor="test",
                    )
                    return user.id
            finally:
                await engine.dispose()

        user_id = run_in_own_loop(create())
        self.token = self.app.state.runtime.token_keyring.issue(user_id).token
        self.issued.add(self.token)

    def authorize(self, case: Case) -> None:
        """Some cases are generated before any is sent: put the current administrator's token in
        place of a deleted one's. A valid generated Idempotency-Key is made unique: drawn from a small
        space, keys repeat across operations, and a key reused with another request is refused (422) by
        design -- a rule between requests, which tests/orders/test_idempotency.py covers."""
        credential = str(case.headers.get("Authorization", "")).removeprefix("Bearer ")
        if credential in self.issued and credential != self.token:
            case.headers["Authorization"] = f"Bearer {self.token}"
        key = case.headers.get(IDEMPOTENCY_HEADER) if case.headers else None
        if isinstance(key, str) and VALID_KEY.fullmatch(key):
            case.headers[IDEMPOTENCY_HEADER] = f"{key[:200]}-{uuid.uuid4().hex}"

    def after(self, case: Case, response: schemathesis.Response) -> None:
        if case.method.upper() == "DELETE" and case.path == ME_PATH and response.status_code < 300:
            self.renew()


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def known_ids_hook(known: list[str]) -> Callable[..., st.SearchStrategy[dict[str, Any]]]:
    """Random UUIDs in a path only ever meet 404: half of the time, put ids that exist there instead.

    Only well-formed UUIDs are replaced, so negative cases keep their malformed path values."""

    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any]
    ) -> st.SearchStrategy[dict[str, Any]]:
        names = [name for name, value in (path_parameters or {}).items() if _is_uuid(value)]
        if not names:
            return st.just(path_parameters)
        existing = st.fixed_dictionaries({name: st.sampled_from(known) for name in names})
        return st.one_of(st.just(path_parameters), existing.map(lambda ids: {**path_parameters, **ids}))

    return flatmap_path_parameters


@pytest.fixture
async def existing_ids(api: Api) -> list[str]:
    """A person owning an admitted buyer organisation and a pending one, made through the HTTP API:
    the ids of the person, both organisations and the memberships go into generated paths."""
    reviewer = await api.admin()
    owner = await api.person("Buyer")
    buyer = await api.admitted_organization(owner, reviewer, kind="buyer")
    pending = await api.organization(owner, kind="provider")
    members = await api.client.get(f"/api/v1/organizations/{buyer['id']}/members", headers=owner.headers)
    assert members.status_code == 200, members.text
    return [buyer["id"], pending["id"], owner.id, *(m["id"] for m in members.json())]


@pytest.fixture
def conformance_schema(
    request: pytest.FixtureRequest, settings: Settings, app: Litestar, existing_ids: list[str]
) -> schemathesis.BaseSchema:
    # schemathesis 4.32's lazy schemas name the node after each operation through `_nodeid`, an
    # attribute pytest 9.2's nodes no longer have: give it one (it only affects report names).
    request.node._nodeid = request.node.nodeid
    # `app` is only depended on so that conftest empties the tables afterwards.
    # Schemathesis sends one request at a time, all from one event loop. Pooled connections: a new one
    # per request (NullPool) doubled the test's time on PostgreSQL.
    own_settings = settings.model_copy(update={"database_pool_size": 2})
    conformance_app = create_app(own_settings)
    schema = schemathesis.openapi.from_asgi(SCHEMA_PATH, conformance_app)
    # Stated, not left to the library's defaults: requests that break the document (negative data) as
    # well as valid ones, and every built-in check enabled.
    schema.config.generation.update(modes=list(GenerationMode))
    assert all(schema.config.checks.get_by_name(name=check.__name__).enabled for check in BUILT_IN_CHECKS)
    administrator = Administrator(own_settings, conformance_app)

    @schema.auth(refresh_interval=None)
    class AdministratorBearer:
        def get(self, case: Case, context: schemathesis.AuthContext) -> str:
            return administrator.token

        def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    schema.hook(known_ids_hook(existing_ids))
    request.node.stash[ADMINISTRATOR] = administrator
    return schema


ADMINISTRATOR = pytest.StashKey[Administrator]()
schema = schemathesis.pytest.from_fixture("conformance_schema")


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI failures reproduce
    database=None,
    # These judge how fast and how directly schemathesis draws cases, not the API; a loaded CI
    # machine must not fail the test for them.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@pytest.mark.long
@schema.parametrize()
def test_every_operation_conforms_to_the_openapi_document(case: Case, request: pytest.FixtureRequest) -> None:
    administrator = request.node.stash[ADMINISTRATOR]
    administrator.authorize(case)
    response = case.call_and_validate()
    administrator.after(case, response)
