"""The demonstration trade: one order of a listed demo product taken through the trade stage, paid into
escrow on the local gateway, delivered as a signed download, confirmed, settled and paid out, what it left in the
books, and its trade certificate written to a file and verified, as lines of the demo's summary."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from marketplace.accounts.principal import Principal
from marketplace.certificates.inputs import check_files
from marketplace.demo.records import DEMO_ACTOR, PRODUCTS, TRAFFIC
from marketplace.kit.money import major_units, split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, Transfer
from marketplace.orders.models import OrderStatus
from marketplace.orders.schemas import TradeRequest
from marketplace.wiring import Services

# The demonstration trade: the buyer orders a listed product of the traffic provider, end to end.

BUYER = "buyer@zunyi-logistics.example"
TRADE_PRODUCT = PRODUCTS[0]  # Guiyang arterial road traffic: general data, a one-time plan, file delivery
TRADE_SCENARIO = "traffic_planning"


def money(amount_minor: int, currency: str) -> str:
    """e.g. "1,200,000 (12,000.00 CNY)": minor units as stored, then as people read them."""
    return f"{amount_minor:,} ({major_units(amount_minor, currency)} {currency})"


async def demo_trade(
    services: Services,
    owners: dict[str, Principal],
    organization_ids: dict[str, uuid.UUID],
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]],
    admin: Principal,
) -> list[str]:
    """One complete trade on the local gateway, and what it left in the books."""
    if TRADE_PRODUCT.title not in listed:
        return [f"Demo trade: skipped, {TRADE_PRODUCT.title} is not listed under this rulebook."]
    product_id, plan_id = listed[TRADE_PRODUCT.title]
    buyer = owners[BUYER]
    provider_id = organization_ids[TRAFFIC]
    request = TradeRequest(
        product_id=product_id,
        plan_id=plan_id,
        buyer_organization_id=organization_ids[BUYER],
        scenario=TRADE_SCENARIO,
        delivery_mode="file",
        quantity=1,
        accept_licence_terms=True,
    )
    placed = await services.trading.place(buyer, request)
    placed_order = placed.order
    flagged = [f"{f.check} ({f.outcome.value})" for f in placed.verdict.failures()]
    lines = [
        f"Demo trade: {BUYER} orders {TRADE_PRODUCT.title} for {TRADE_SCENARIO}, delivered as a file.",
        f"  order: {placed_order.id}",
        f"  verdict: {placed.verdict.decision.value} "
        f"(trade stage, rulebook {placed.verdict.rulebook_fingerprint[:12]}, verdict {placed.verdict_id})",
        f"  flagged checks: {', '.join(flagged) if flagged else 'none'}",
    ]
    if placed_order.status != OrderStatus.ACCEPTED:
        lines.append(f"  status: {placed_order.status.value}; the trade stops here")
        return lines
    await services.payment.pay(buyer, placed_order.id, None)
    lines += await _demo_delivery(services, buyer, placed_order.id)
    await services.transitions.confirm(buyer, placed_order.id)
    # The settlement batch commits as it goes: the demo data seeded so far is committed with it.
    settlement = await services.settlement.run(DEMO_ACTOR)
    view = await services.orders.view(admin, placed_order.id)
    order = view.order
    provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
    lines += [
        f"  status: {order.status.value}",
        "  history: " + " -> ".join(event.to_status.value for event in view.history),
        f"  amount: {money(order.amount_minor, order.currency)}; platform fee {order.fee_bps} bps: "
        f"{money(fee_minor, order.currency)}; provider's share {money(provider_minor, order.currency)}",
        f"  settlement run: {settlement.settled_orders} order(s) settled, "
        + ", ".join(
            f"payout {p.id} of {money(p.amount_minor, p.currency)} {p.status.value}"
            + (f" (gateway reference {p.reference})" if p.reference else "")
            for p in settlement.payouts
            if p.organization_id == provider_id
        ),
        "  ledger movements of the order and its payout (kind: debit -> credit, amount in minor units):",
    ]
    for kind, debit, credit, amount in await _order_transfers(services.session, order.id, order.payout_id):
        lines.append(f"    {kind.value:<10} {debit} -> {credit}  {amount:,}")
    ledger = services.ledger
    balance = await ledger.balance(provider_id, order.currency)
    revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, order.currency)
    escrow = await ledger.account(AccountCode.ESCROW, order.currency, organization_id=provider_id, order_id=order.id)
    lines += [
        f"  escrow of the order: {money(escrow.credits_posted - escrow.debits_posted, order.currency)}",
        f"  provider balance: available {money(balance.available_minor, order.currency)}, "
        f"pending {money(balance.pending_minor, order.currency)}, "
        f"paid out {money(balance.paid_out_minor, order.currency)}",
        f"  platform revenue: {money(await ledger.held(revenue), order.currency)}",
    ]
    return lines + await _demo_certificate(services, buyer, order.id)


async def _demo_certificate(services: Services, buyer: Principal, order_id: uuid.UUID) -> list[str]:
    """The log's sequencer makes the trade's entries leaves under a signed tree head (its periodic job, run now),
    the buyer takes the trade's certificate, and it is written to a file beside the exchange's JWKS and checked as
    `marketplace verify-certificate` checks it, with those two files alone."""
    leaves = 0
    while joined := await services.transparency.sequence(services.settings.audit_sequencer_batch):
        leaves += joined
    certificate = await services.certificates.certificate(buyer, order_id)
    folder = services.settings.storage_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path, jwks = folder / "certificate.jws", folder / "jwks.json"
    path.write_text(certificate.signed + "\n", encoding="utf-8")
    jwks.write_text(json.dumps(services.runtime.jwks(), indent=2) + "\n", encoding="utf-8")
    checked = check_files(path, str(jwks))
    return [
        f"  audit log: {leaves} entries made leaves under a signed tree head (/api/v1/transparency/tree-head)",
        f"  trade certificate: {path} (the exchange's keys: {jwks})",
        f"  checked as `marketplace verify-certificate {path} --jwks {jwks}` checks it: {checked.line()}",
    ]


async def _demo_delivery(services: Services, buyer: Principal, order_id: uuid.UUID) -> list[str]:
    """The buyer takes a signed link to the dataset the provider hosted before listing, and downloads it."""
    delivery = services.delivery
    access = await delivery.open(buyer, order_id)
    assert access.download_path is not None
    query = access.download_path.partition("?")[2]
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    file = await delivery.download(access.licence.id, params)
    return [
        f"  licence: {access.licence.id} ({access.licence.status.value}, {access.licence.delivery_mode})",
        f"  download link: signed for the buyer's owner, valid until {access.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        f"  downloaded: {file.size_bytes:,} bytes, sha256 {file.sha256[:16]}..., receipt recorded",
    ]


async def _order_transfers(
    session: AsyncSession, order_id: uuid.UUID, payout_id: uuid.UUID | None
) -> list[tuple[Any, str, str, int]]:
    """The transfers of the order, and of the payout that paid its provider's share, in the order they were
    posted: (kind, debit account key, credit account key, amount)."""
    debit, credit = aliased(LedgerAccount), aliased(LedgerAccount)
    payout_transfers = [transfer_id(payout_id, step) for step in ("debt", "payout")] if payout_id else []
    query = (
        select(col(Transfer.kind), col(debit.key), col(credit.key), col(Transfer.amount_minor))
        .join(debit, col(debit.id) == col(Transfer.debit_account_id))
        .join(credit, col(credit.id) == col(Transfer.credit_account_id))
        .where(or_(col(Transfer.order_id) == order_id, col(Transfer.id).in_(payout_transfers)))
        .order_by(col(Transfer.created_at), col(Transfer.id))
    )
    return [(row[0], row[1], row[2], row[3]) for row in (await session.execute(query)).all()]
