"""Every audit action the code writes has its payload's shape documented, and what it writes fits that shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.audit.payloads import PAYLOADS, documented_shapes, payload_of
from marketplace.db import unit_of_work
from marketplace.demo import seed_demo
from tests.fixtures.api import Api

SOURCE = Path(__file__).parents[2] / "marketplace"


def written_actions() -> set[str]:
    """The actions audit entries are written with: `action=` of a call that also names an `object_type` (the
    audit's `record`), and the action given to a module's `_audit` helper; an f-string gives its family
    (`order.` for `f"order.{to.value}"`)."""
    actions: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if "object_type" in keywords and "action" in keywords:
                given = keywords["action"]
            elif called == "_audit" and len(node.args) >= 2:
                given = node.args[1]
            else:
                continue
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                actions.add(given.value)
            elif isinstance(given, ast.JoinedStr) and isinstance(given.values[0], ast.Constant):
                actions.add(str(given.values[0].value))
    return actions


WRITTEN = sorted(written_actions())


def test_the_walk_finds_the_actions_of_every_kind() -> None:
    assert {"order.placed", "order.", "licence.", "payout.sent", "webhook_endpoint.created", "user.registered"} <= set(
        WRITTEN
    )


@pytest.mark.parametrize("action", WRITTEN)
def test_every_action_written_has_its_payload_documented(action: str) -> None:
    assert payload_of(action) is not None, f"declare the payload of {action} in marketplace/audit/payloads.py"


def test_no_documented_action_is_one_nobody_writes() -> None:
    written = set(WRITTEN)
    families = {action for action in written if action.endswith(".")}
    stale = [
        action
        for action in PAYLOADS
        if action not in written and not any(action.startswith(family) for family in families)
    ]
    assert stale == []


async def test_every_entry_the_demo_writes_fits_its_documented_shape(api: Api) -> None:
    async with api.services() as services:
        await seed_demo(services, only_if_empty=True)
    async with unit_of_work(api.sessions) as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert len({entry.action for entry in entries}) >= 10
    misfits = []
    for entry in entries:
        shape = payload_of(entry.action)
        assert shape is not None, entry.action
        try:
            TypeAdapter(shape).validate_python(entry.payload, strict=True)
        except ValidationError as exc:
            misfits.append(f"{entry.action}: {exc}")
    assert misfits == []


async def test_the_description_documents_every_shape(api: Api) -> None:
    document = (await api.client.get("/schema/openapi.json")).json()
    schemas = document["components"]["schemas"]
    [entry] = [schema for name, schema in schemas.items() if name.startswith("AuditEntryRead")]
    documented = [ref["$ref"].rsplit("/", 1)[1] for ref in entry["properties"]["payload"]["anyOf"]]
    assert documented == [shape.__name__ for shape in documented_shapes()]
    for name in documented:
        assert schemas[name]["additionalProperties"] is False
        assert schemas[name]["description"]
