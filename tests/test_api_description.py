"""The served OpenAPI document describes every operation: a description (the handler's docstring), a
stable, readable and unique operationId for generated clients, and every error it declares as a
problem (RFC 9457)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar import Litestar

from marketplace.kit.identifiers import uscc_check_char
from marketplace.kit.schemas import RequestBody
from marketplace.web.messages import problem_types

README = Path(__file__).resolve().parent.parent / "README.md"

OPERATIONS = ("get", "post", "put", "patch", "delete")
READABLE_ID = re.compile(r"^[a-z]+(_[a-z]+)*$")
# The probes answer 503 with the same body as 200 (each part's state), which monitors parse as one shape.
PROBES = {"/health", "/ready"}


def operations(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi_schema.to_schema()
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in OPERATIONS
    ]


def test_every_operation_has_a_description_and_a_readable_unique_operation_id(app: Litestar) -> None:
    found = operations(app)
    assert len(found) >= 70
    assert [(m, p) for m, p, operation in found if not operation.get("description", "").strip()] == []
    ids = [operation["operationId"] for _, _, operation in found]
    assert [i for i in ids if not READABLE_ID.fullmatch(i)] == []
    assert len(set(ids)) == len(ids)
    by_path = {(m, p): operation["operationId"] for m, p, operation in found}
    assert by_path[("post", "/api/v1/orders/{order_id}/pay")] == "order_pay"


def test_every_declared_error_is_a_problem(app: Litestar) -> None:
    undocumented = []
    for method, path, operation in operations(app):
        for status, response in operation["responses"].items():
            if path in PROBES and status == "503":
                continue
            if int(status) >= 400 and "application/problem+json" not in response.get("content", {}):
                undocumented.append((method, path, status))
    assert undocumented == []


def objects_where(node: Any, path: str, found_here: Callable[[dict[str, Any], str], bool]) -> list[str]:
    """The paths of the document's objects `found_here` picks."""
    found = []
    if isinstance(node, dict):
        if found_here(node, path):
            found.append(path)
        for key, value in node.items():
            found.extend(objects_where(value, f"{path}/{key}", found_here))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(objects_where(value, f"{path}/{index}", found_here))
    return found


def inline_objects(node: Any, path: str) -> list[str]:
    """Where an object with properties is written out in place instead of referring to a named schema."""
    return objects_where(
        node, path, lambda o, at: o.get("type") == "object" and bool(o.get("properties")) and at.count("/") > 2
    )


def test_no_object_is_written_out_where_a_named_schema_belongs(app: Litestar) -> None:
    """Operations' bodies, parameters and answers, and the fields of named schemas, refer to named schemas
    (a generated client gets one type per shape); only the named schemas themselves spell out properties."""
    document = app.openapi_schema.to_schema()
    assert inline_objects(document["paths"], "#/paths") == []
    schemas = document["components"]["schemas"]
    # a named schema is components/schemas/NAME; anything deeper with properties is an anonymous object
    assert [p for name, schema in schemas.items() for p in inline_objects(schema, f"#/c/{name}")] == []
    assert len(schemas) >= 100


def test_the_check_finds_an_object_written_out() -> None:
    planted = {"schema": {"type": "object", "properties": {"total": {"type": "integer"}}}}
    assert inline_objects({"/x": {"get": {"responses": {"200": planted}}}}, "#/paths") == [
        "#/paths//x/get/responses/200/schema"
    ]
    assert inline_objects({"type": "object", "properties": {"a": {}}}, "#/c/Named") == []


def free_form_objects(node: Any, path: str) -> list[str]:
    """Where the document says only "an object" (any members): a shape it does not give."""

    def free_form(o: dict[str, Any], _: str) -> bool:
        shaped = o.get("properties") or any(key in o for key in ("$ref", "anyOf", "oneOf", "allOf"))
        return o.get("type") == "object" and not shaped and o.get("additionalProperties") in (None, True, {})

    return objects_where(node, path, free_form)


def test_product_details_audit_payloads_and_problem_errors_have_their_shapes(app: Litestar) -> None:
    """What is still free-form is named here, so that a new one is seen; product details, audit payloads and a
    problem's errors are not among them."""
    document = app.openapi_schema.to_schema()
    schemas = document["components"]["schemas"]
    assert schemas["ProductRead"]["properties"]["details"] == {"$ref": "#/components/schemas/ProductDetails"}
    assert schemas["ProductDetails"]["additionalProperties"] is False
    assert free_form_objects(document, "#") == [
        "#/paths//.well-known/jwks.json/get/responses/200/content/application/json/schema",
        "#/paths//api/v1/catalog.jsonld/get/responses/200/content/application/ld+json/schema",
        "#/components/schemas/AggregateRead/properties/groups/items",
        "#/components/schemas/EventRead/properties/payload",
        "#/components/schemas/FindingRead/properties/evidence",
        "#/components/schemas/LicenceRead/properties/terms",
        "#/components/schemas/ReceiptRead/properties/detail",
        "#/components/schemas/RuleRead/properties/parameters",
    ]


def test_the_request_examples_are_realistic_and_valid(app: Litestar) -> None:
    """Each documented request example is one the service takes: it validates as its body, and its codes
    carry correct check characters."""
    schemas = app.openapi_schema.to_schema()["components"]["schemas"]
    documented = {name: schema["examples"] for name, schema in schemas.items() if schema.get("examples")}
    assert {"TradeRequest", "OrganizationCreate", "PlanCreate", "RegisterRequest", "AggregateRequest"} <= set(
        documented
    )
    bodies = {model.__name__: model for model in request_bodies()}
    for name, examples in documented.items():
        for example in examples:
            bodies[name].model_validate(example)
    [organization] = documented["OrganizationCreate"]
    assert organization["uscc"][-1] == uscc_check_char(organization["uscc"][:-1])


def request_bodies() -> list[type[RequestBody]]:
    found, pending = [], list(RequestBody.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return found


def test_every_problem_type_is_listed_in_the_document_and_the_readme(app: Litestar) -> None:
    described = app.openapi_schema.to_schema()["info"]["description"]
    readme = README.read_text(encoding="utf-8")
    types = problem_types()
    assert len(types) >= 30
    for code, (status, title) in types.items():
        assert f"- `urn:marketplace:problem:{code}` ({status}): {title}" in described
        assert f"| `{code}` | {status} | {title} |" in readme
    members = app.openapi_schema.to_schema()["components"]["schemas"]["ProblemDetails"]["properties"]
    assert {"findings", "order_id", "retry_after", "errors", "line"} <= set(members)
