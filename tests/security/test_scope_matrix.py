"""The scope matrix, generated from the application's route table: every operation declares who may call it, and
an API key holding any one scope is admitted exactly where its scope is the one declared. A route added later
is covered without touching this file, and fails here until it declares."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from marketplace.accounts.models import Scope
from marketplace.demo.factories import plan_body, product_body
from marketplace.web.principal import SCOPE, VISITORS, Access, Required
from tests.catalog.test_products import CLEAN_SAMPLE
from tests.delivery.conftest import PRICE_MINOR, Market, Product, open_market
from tests.fixtures.api import Api
from tests.security.scopes import api_product, key_headers, missing_scope

CALLER = {"principal", "admin"}
# Why a key is refused where no scope admits it.
NOT_FOR_KEYS = {
    Access.PERSON: "this operation requires a user's access token, not an API key",
    Access.ADMIN: "platform administrators only",
}


@pytest.fixture
async def shop(api: Api) -> Market:
    return await open_market(api)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: HTTPRouteHandler

    @property
    def required(self) -> Required | None:
        return self.handler.opt.get(SCOPE)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: Litestar) -> Iterator[Operation]:
    """Every operation of the service's own handlers (not Litestar's OPTIONS answers or its OpenAPI pages)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not inspect.unwrap(handler.fn).__module__.startswith("litestar."):
                yield from (Operation(method, route.path_format, handler) for method in sorted(handler.http_methods))


def undeclared(app: Litestar) -> list[str]:
    """Operations that do not declare a scope or an `Access`, or whose declaration and caller disagree: a
    public route resolves no caller, every other route does (resolving it is what checks the declaration)."""
    found = []
    for operation in operations(app):
        takes_caller = bool(CALLER & set(operation.handler.parsed_fn_signature.parameters))
        if not isinstance(operation.required, Required):
            found.append(f"{operation}: declares no scope")
        elif takes_caller == (operation.required is Access.PUBLIC):
            found.append(f"{operation}: declares {operation.required} but takes_caller={takes_caller}")
    return found


def test_every_operation_declares_who_may_call_it(app: Litestar) -> None:
    assert len(list(operations(app))) > 60
    assert undeclared(app) == []


def test_an_operation_that_declares_nothing_is_found() -> None:
    @get("/undeclared", sync_to_thread=False)
    def handler() -> None: ...

    assert undeclared(Litestar(route_handlers=[handler])) == ["GET /undeclared: declares no scope"]


@dataclass
class World:
    """A provider and a buyer, each with an API key of every single scope, and objects of theirs to name in
    requests: the provider's listed product, the buyer's paid order and its licence."""

    shop: Market
    document: dict[str, Any]
    keys: dict[str, dict[Scope, dict[str, str]]]
    ids: dict[str, str]
    bodies: dict[str, dict[str, Any]]

    def acting_for(self, required: Required | None) -> str:
        """Whose keys call a route: a provider describes its products, a buyer does the rest."""
        return "provider" if required is Scope.CATALOG_WRITE else "buyer"

    async def call(self, operation: Operation, party: str, headers: dict[str, str]) -> httpx.Response:
        """The operation, called as its OpenAPI document describes it: the party's own organisation and the
        world's objects in its path and required query parameters (a random id for others), and a body of
        the documented media type (a valid one for the main writes), so that nothing refuses the request
        before its caller is resolved."""
        organization = self.shop.provider_org if party == "provider" else self.shop.buyer_org
        ids = {**self.ids, "organization_id": organization["id"]}
        spec = self.document["paths"][operation.path][operation.method.lower()]
        parameters = spec.get("parameters", [])
        path = operation.path.format(**{p["name"]: _id(ids, p["name"]) for p in parameters if p["in"] == "path"})
        query = {p["name"]: _id(ids, p["name"]) for p in parameters if p["in"] == "query" and p.get("required")}
        content = spec.get("requestBody", {}).get("content", {})
        body: dict[str, Any] = {"json": self.bodies.get(str(operation), {})} if "application/json" in content else {}
        if "multipart/form-data" in content:
            body = {"files": {"file": ("sample.csv", CLEAN_SAMPLE, "text/csv")}}
        return await self.shop.api.client.request(operation.method, path, params=query, headers=headers, **body)


def _id(ids: dict[str, str], name: str) -> str:
    return ids.get(name) or str(uuid.uuid4())


async def world(app: Litestar, shop: Market) -> World:
    product = await api_product(shop)
    order_id = await shop.paid_order(product, "api")
    licence_id = (await shop.licence(order_id))["id"]
    keys = {
        party: {scope: await key_headers(shop, organization, scope) for scope in Scope}
        for party, organization in (("provider", shop.provider_org), ("buyer", shop.buyer_org))
    }
    # audit entries and leaves are numbered, not named by uuids
    numbers = {"entry_id": "1", "leaf_index": "0", "tree_size": "1", "first": "1", "second": "1"}
    ids = {"product_id": product.id, "order_id": order_id, "licence_id": licence_id, **numbers}
    return World(shop, app.openapi_schema.to_schema(), keys, ids, valid_bodies(shop, product))


def valid_bodies(shop: Market, product: Product) -> dict[str, dict[str, Any]]:
    trade = {
        "product_id": product.id,
        "plan_id": product.plan_id,
        "buyer_organization_id": shop.buyer_org["id"],
        "scenario": "traffic_planning",
        "delivery_mode": "api",
        "accept_licence_terms": True,
    }
    reason = {"reason": "checking what an API key may do"}
    return {
        "POST /api/v1/compliance/preview": trade,
        "POST /api/v1/orders": trade,
        "POST /api/v1/orders/{order_id}/dispute": reason,
        "POST /api/v1/products": product_body(shop.provider_org["id"]),
        "POST /api/v1/products/{product_id}/plans": plan_body(PRICE_MINOR),
    }


def _problem_detail(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    return str(response.json().get("detail", ""))


def verdict(required: Required | None, scope: Scope, response: httpx.Response) -> str | None:
    """What is wrong with the answer to a key holding only `scope`, or None."""
    if isinstance(required, Scope):
        expected = None if scope is required else required.value
        right = missing_scope(response) == expected and response.status_code != 401
    elif required in NOT_FOR_KEYS:
        right = (response.status_code, _problem_detail(response)) == (403, NOT_FOR_KEYS[required])
    else:  # public: the key is no credential here, and no scope is asked for
        right = missing_scope(response) is None
    if right and response.status_code < 500:
        return None
    return f"{response.status_code} {response.text[:200]}"


async def check(world: World, operation: Operation) -> list[str]:
    """What is wrong with one operation: called with every single-scope key, with no credential, and (an
    administrators' operation) by a person who is no administrator."""
    required, party = operation.required, world.acting_for(operation.required)
    wrong = []
    for scope, headers in world.keys[party].items():
        if (problem := verdict(required, scope, await world.call(operation, party, headers))) is not None:
            wrong.append(f"{operation} with {scope}: {problem}")
    if required is not Access.PUBLIC:
        # a route that serves visitors answers them as any stranger; every other wants a credential
        expected = 200 if operation.handler.opt.get(VISITORS) else 401
        anonymous = await world.call(operation, party, {})
        if anonymous.status_code != expected:
            wrong.append(f"{operation} without a credential: {anonymous.status_code}")
    if required is Access.ADMIN:
        person = await world.call(operation, party, world.shop.buyer.headers)
        if (person.status_code, _problem_detail(person)) != (403, NOT_FOR_KEYS[Access.ADMIN]):
            wrong.append(f"{operation} for a person who is no administrator: {person.status_code}")
    return wrong


async def test_a_key_is_admitted_exactly_where_its_scope_is_declared(app: Litestar, shop: Market) -> None:
    matrix = await world(app, shop)
    wrong: list[str] = []
    for operation in sorted(operations(app), key=str):
        if operation.path in matrix.document["paths"]:  # the API's; the console's are the test below
            wrong.extend(await check(matrix, operation))
    assert wrong == [], "\n".join(wrong)


async def test_no_api_credential_opens_the_console(app: Litestar, shop: Market) -> None:
    """The console's pages and forms answer a console session only: neither an administrator's bearer token
    nor an API key of any scope gets one (a page sends them to sign in; a form refuses them)."""
    matrix = await world(app, shop)
    credentials = [shop.admin.headers, *(headers for keys in matrix.keys.values() for headers in keys.values())]
    opened: list[str] = []
    probed = 0
    for operation in sorted(operations(app), key=str):
        if operation.path in matrix.document["paths"] or operation.required is Access.PUBLIC:
            continue  # the API's, or open to all (the sign-in page, the console's scripts)
        console = operation.path.startswith("/console") or operation.path in ("/admin", "/dashboard")
        assert console, f"{operation} is in neither the API document nor the console"
        path = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), operation.path)
        probed += 1
        for headers in credentials:
            response = await shop.api.client.request(operation.method, path, headers=headers)
            if response.is_success:
                opened.append(f"{operation} opened with {sorted(headers)}")
    assert probed > 10  # the console's pages and forms
    assert opened == []
