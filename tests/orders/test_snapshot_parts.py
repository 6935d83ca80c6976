"""Trade verdicts store the facts orders share once: two orders by one buyer for one product name the same
organisation, product and plan parts, the second adds no part, and what each order stores of its snapshot
shrinks to its own facts and the digests. Read back, by the service or `marketplace rules snapshot` for the
offline dry-run, a verdict's snapshot replays to its decision and findings."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlmodel import col

from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.engine import evaluate
from marketplace.compliance.models import SnapshotPart, StoredVerdict
from marketplace.compliance.snapshots import Snapshot
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker
from marketplace.kit.canonical import canonical_json
from marketplace.orders.models import OrderStatus
from tests.compliance.test_impact import run_cli
from tests.fixtures.api import Api
from tests.orders.conftest import Market
from tests.orders.factories import OrderServices, Trader, admitted_buyers, listing


def size(document: object) -> int:
    return len(canonical_json(document).encode())


async def part_count(market: Market) -> int:
    async with market.api.services() as services:
        return int((await services.session.scalar(select(func.count()).select_from(SnapshotPart))) or 0)


async def trade_verdict(market: Market, order_id: str) -> StoredVerdict:
    async with market.api.services() as services:
        stored = await services.compliance.latest("order", order_id, Stage.TRADE)
    assert stored is not None
    return stored


async def test_two_orders_of_one_buyer_for_one_product_share_their_parts(market: Market) -> None:
    first = await trade_verdict(market, (await market.accepted_order())["id"])
    parts_after_first = await part_count(market)
    second = await trade_verdict(market, (await market.accepted_order())["id"])

    assert await part_count(market) == parts_after_first  # the second order stored no part
    assert set(first.parts) == {"buyer", "provider", "product", "plan"}
    assert second.parts == first.parts
    assert set(second.snapshot) == {"organization", "intermediary", "trade", "delivery", "settlement", "extensions"}
    assert second.snapshot["trade"] is not None


async def test_an_order_stores_a_fraction_of_the_snapshot_it_judged(market: Market) -> None:
    await market.accepted_order()
    stored = await trade_verdict(market, (await market.accepted_order())["id"])
    async with market.api.services() as services:
        whole = (await services.compliance.snapshot(stored)).model_dump(mode="json")

    # What the second order added: its inline facts and its digests (its parts were all stored already).
    per_order = size(stored.snapshot) + size(stored.parts)
    assert size(whole) > 4 * per_order
    assert per_order < 1_500


async def test_a_stored_trade_verdict_replays_from_its_parts_to_its_decision_and_findings(market: Market) -> None:
    accepted = await trade_verdict(market, (await market.accepted_order())["id"])
    rejected_id = (await market.place(scenario="credit_scoring")).json()["order_id"]
    rejected = await trade_verdict(market, rejected_id)

    async with market.api.services() as services:
        rulebook = services.compliance.rulebook
        snapshots = await services.compliance.snapshots([accepted, rejected])
    for stored, snapshot in zip((accepted, rejected), snapshots, strict=True):
        replayed = evaluate(rulebook, Stage.TRADE, snapshot, stored.created_at)
        assert replayed.rulebook_fingerprint == stored.rulebook_fingerprint
        assert replayed.decision == stored.decision
        assert [f.as_json() for f in replayed.findings] == stored.findings
    assert (accepted.decision, rejected.decision) == (Decision.ACCEPTED, Decision.REJECTED)


async def test_the_offline_dry_run_replays_the_snapshot_the_cli_puts_together(market: Market, tmp_path: Path) -> None:
    stored = await trade_verdict(market, (await market.place(scenario="credit_scoring")).json()["order_id"])
    async with market.api.services() as services:
        whole = await services.compliance.snapshot(stored)

    code, out = await run_cli(market.api, "rules", "snapshot", str(stored.id))
    assert code == 0, out
    assert Snapshot.model_validate_json(out) == whole
    file = tmp_path / "snap.json"
    file.write_text(out)
    at = stored.created_at.isoformat()
    code, out = await run_cli(market.api, "rules", "evaluate", "--stage", "trade", "--snapshot", str(file), "--at", at)
    assert code == 0, out
    replayed = json.loads(out)
    assert (replayed["decision"], replayed["findings"]) == (stored.decision.value, stored.findings)
    assert (await run_cli(market.api, "rules", "snapshot", "00000000-0000-0000-0000-000000000000"))[0] == 1


@pytest.mark.postgres
async def test_concurrent_first_orders_store_each_new_part_once(
    api: Api, settings: Settings, many_connections: None
) -> None:
    """Twenty orders at once, each in its own transaction, racing to insert the same parts not stored yet (the
    plan, the admitted buyers): every one is placed, with no unique violation and no deadlock."""
    admin = await api.admin()
    provider_person = await api.person("Provider")
    provider_org = await api.admitted_organization(provider_person, admin, kind="provider", dsmm_level=3)
    product = await listing(api, Trader(provider_person, uuid.UUID(provider_org["id"])), max_licences=None)
    buyers = await admitted_buyers(api, admin, 4)
    engine = create_engine(settings.model_copy(update={"database_pool_size": 10}))
    try:
        orders = OrderServices.of(api, create_sessionmaker(engine))

        async def place(buyer: Trader) -> tuple[OrderStatus, uuid.UUID]:
            async with orders.unit() as service:
                placed = await service.trading.place(buyer.principal, product.trade(buyer))
            return placed.order.status, placed.verdict_id

        placed = await asyncio.gather(*(place(buyers[n % len(buyers)]) for n in range(20)))
    finally:
        await engine.dispose()

    assert {status for status, _ in placed} == {OrderStatus.ACCEPTED}
    async with api.services() as services:
        query = select(StoredVerdict).where(col(StoredVerdict.id).in_([verdict_id for _, verdict_id in placed]))
        verdicts = (await services.session.scalars(query)).all()
        snapshots = await services.compliance.snapshots(verdicts)
    assert len(snapshots) == 20
    assert {s.buyer.id for s in snapshots if s.buyer is not None} == {str(b.organization_id) for b in buyers}
    digests = {digest for verdict in verdicts for digest in verdict.parts.values()}
    assert len(digests) == len(buyers) + 3  # each buyer, the provider, the product, the plan


@pytest.mark.postgres
async def test_an_order_its_verdict_audit_entry_and_events_are_written_in_one_statement(market: Market) -> None:
    """On PostgreSQL one statement writes what placing an order adds: the snapshot parts, the verdict, the order,
    its history, its audit entry and its events (each once: the commit writes no event again)."""
    engine = market.api.runtime().engine.sync_engine
    sent: list[str] = []

    def on_execute(*parts: Any) -> None:
        sent.append(" ".join(str(parts[2]).split()))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        await market.accepted_order()
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)

    (placement,) = [statement for statement in sent if "INSERT INTO" in statement]  # no key: nothing else
    for table in ("snapshot_part", "verdict", "trade_order", "order_event", "audit_entry", "pending_event"):
        assert f"INSERT INTO {table} " in placement, table


@pytest.mark.postgres
async def test_parts_known_stored_are_not_sent_again_and_the_answer_goes_with_the_order(market: Market) -> None:
    """A part the process saw already stored (its insert found it there) is not sent with the next order; an
    order placed under an Idempotency-Key stores its answer in the same statement, and nothing else is written."""
    engine = market.api.runtime().engine.sync_engine
    sent: list[str] = []

    def on_execute(*parts: Any) -> None:
        sent.append(" ".join(str(parts[2]).split()))

    first = await trade_verdict(market, (await market.accepted_order())["id"])
    await market.accepted_order()  # finds every part stored
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        placed = await market.place(key="third-order")
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)

    assert placed.status_code == 201, placed.text
    (placement,) = [statement for statement in sent if "INSERT INTO" in statement or "UPDATE" in statement]
    assert "INSERT INTO snapshot_part " not in placement
    for table in ("verdict", "trade_order", "order_event", "audit_entry", "pending_event", "idempotency_record"):
        assert f"INSERT INTO {table} " in placement, table
    third = await trade_verdict(market, placed.json()["id"])
    assert third.parts == first.parts
    async with market.api.services() as services:
        (snapshot,) = await services.compliance.snapshots([third])
    assert snapshot.buyer is not None
    assert snapshot.buyer.id == market.buyer_org["id"]
