"""The demo command's data: accounts, a catalog taken through the listing stage, and one complete trade."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import select
from sqlmodel import col

from marketplace.catalog.models import Product
from marketplace.certificates.inputs import check_files
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.models import StoredVerdict
from marketplace.db import unit_of_work
from marketplace.demo import seed_demo
from marketplace.demo.records import PRODUCTS
from marketplace.kit.money import split
from marketplace.ledger.models import AccountCode, LedgerAccount, Transfer
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderStatus
from tests.fixtures.api import Api


async def test_the_demo_seeds_a_catalog_with_listed_held_and_rejected_products(api: Api) -> None:
    async with api.services() as services:
        summary = await seed_demo(services, only_if_empty=True)

    async with api.services() as services:
        session = services.session
        products = (await session.scalars(select(Product))).all()
        verdicts = (await session.scalars(select(StoredVerdict).where(col(StoredVerdict.stage) == Stage.LISTING))).all()
    assert len(products) == len(PRODUCTS) >= 30
    statuses = Counter(product.status.value for product in products)
    assert statuses["listed"] >= 20
    assert statuses["under_review"] >= 1
    assert len(verdicts) == len(products)
    rejected_by: Counter[str] = Counter()
    for verdict in verdicts:
        if verdict.decision == Decision.REJECTED:
            rejected_by.update({str(f["check"]).split(".", 1)[0] for f in verdict.findings if f["outcome"] == "fail"})
    for rule in ("R3", "R4", "S4", "S7"):
        assert rejected_by[rule] >= 1, rejected_by
    async with api.services() as services:
        report = await services.transparency.verify()
    assert report.ok, report
    assert report.entries == report.tree_size > 0  # the demo made its entries leaves
    assert f"{statuses['listed']} listed" in summary
    assert f"{statuses['rejected']} rejected" in summary

    # the listed products are in the public DCAT catalog; the rejected ones are not
    feed = (await api.client.get("/api/v1/catalog.jsonld", params={"limit": 200})).json()
    assert feed["schema:numberOfItems"] == statuses["listed"]
    listed = {str(p.id) for p in products if p.status.value == "listed"}
    assert {d["dct:identifier"] for d in feed["dcat:dataset"]} == listed
    publishers = {d["dct:publisher"]["foaf:name"] for d in feed["dcat:dataset"]}
    assert len(publishers) == 2

    # one trade, end to end: accepted by the trade stage, paid, delivered, confirmed, settled and paid out
    async with unit_of_work(api.sessions) as session:
        [order] = (await session.scalars(select(Order))).all()
        trade_verdict = await session.get(StoredVerdict, order.verdict_id)
        ledger = LedgerService(session)
        balance = await ledger.balance(order.provider_organization_id, order.currency)
        escrows = (
            await session.scalars(select(LedgerAccount).where(col(LedgerAccount.code) == AccountCode.ESCROW))
        ).all()
        transfers = (await session.scalars(select(Transfer).where(col(Transfer.order_id) == order.id))).all()
        books = await ledger.check()
    assert trade_verdict is not None
    assert (trade_verdict.stage, trade_verdict.decision) == (Stage.TRADE, Decision.ACCEPTED)
    assert order.status == OrderStatus.PAID_OUT
    provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
    assert provider_minor + fee_minor == order.amount_minor > 0
    assert fee_minor > 0
    assert [e.credits_posted - e.debits_posted for e in escrows] == [0]
    assert sorted(t.kind.value for t in transfers) == ["fee", "payment", "settlement"]
    # settled to the provider (price - fee), then paid out at once through the local gateway
    assert (balance.available_minor, balance.pending_minor) == (0, 0)
    assert balance.paid_out_minor == provider_minor
    assert books.ok, books

    # the summary shows the trade
    assert f"order: {order.id}" in summary
    assert "verdict: accepted (trade stage" in summary
    assert "flagged checks: none" in summary
    assert "status: paid_out" in summary
    assert "history: accepted -> paid -> delivered -> completed -> settled -> paid_out" in summary
    assert "escrow of the order: 0 (0.00 CNY)" in summary
    assert f"provider's share {provider_minor:,} (" in summary
    assert f"provider balance: available 0 (0.00 CNY), pending 0 (0.00 CNY), paid out {provider_minor:,} (" in summary
    assert f"platform revenue: {fee_minor:,} (" in summary
    movements = [line.split() for line in summary.splitlines() if line.startswith("    ")]
    assert [(m[0], m[1].split(":")[0], m[3].split(":")[0], m[4]) for m in movements] == [
        ("payment", "platform_clearing", "escrow", f"{order.amount_minor:,}"),
        ("settlement", "escrow", "provider_payable", f"{provider_minor:,}"),
        ("fee", "escrow", "platform_revenue", f"{fee_minor:,}"),
        ("payout", "provider_payable", "payouts", f"{provider_minor:,}"),
    ]

    # the trade's certificate, written beside the exchange's keys and verified as the command does
    folder = api.runtime().settings.storage_dir / "demo"
    certificate, jwks = folder / "certificate.jws", folder / "jwks.json"
    checked_line = summary.splitlines()[-2]
    assert f"`marketplace verify-certificate {certificate} --jwks {jwks}` checks it: signature ok" in checked_line
    assert "inclusion ok (leaf " in checked_line
    assert checked_line.endswith(f"order {order.id} completed")
    checked = check_files(certificate, str(jwks))
    assert checked.ok, checked.line()
    assert checked.payload["order"]["id"] == str(order.id)
    assert json.loads(jwks.read_text())["keys"] == (await api.client.get("/.well-known/jwks.json")).json()["keys"]

    # a second run with --if-empty adds nothing
    async with api.services() as services:
        again = await seed_demo(services, only_if_empty=True)
    assert "already has accounts" in again


async def test_the_demo_reports_its_progress_step_by_step(api: Api) -> None:
    reported: list[tuple[str, int, int | None]] = []
    async with api.services() as services:
        await seed_demo(services, only_if_empty=True, progress=lambda *step: reported.append(step))
    steps = list(dict.fromkeys(step for step, _, _ in reported))
    assert steps == ["organisations", "products", "demo trade"]
    products = [done for step, done, _ in reported if step == "products"]
    assert products == list(range(len(PRODUCTS) + 1))  # every product, in order, then done
    assert reported[-1] == ("demo trade", 1, 1)
