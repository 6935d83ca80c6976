"""The money endpoints: an organisation's balance for its members, the check of the books for
administrators."""

from __future__ import annotations

import uuid

from marketplace.db import unit_of_work
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, TransferKind
from marketplace.ledger.service import LedgerService
from tests.fixtures.api import Api, Person


async def settle_one_order(api: Api, provider_id: uuid.UUID, price: int) -> int:
    """An order paid, settled and partly paid out, and a second order paid: returns the fee."""
    provider_share, fee = split(price, 500)
    settled, open_order = uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(api.sessions) as session:
        ledger = LedgerService(session)
        clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, "CNY")
        payable = await ledger.account(AccountCode.PROVIDER_PAYABLE, "CNY", organization_id=provider_id)
        revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, "CNY")
        payouts = await ledger.account(AccountCode.PAYOUTS, "CNY", organization_id=provider_id)
        for order in (settled, open_order):
            escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider_id, order_id=order)
            await ledger.post(transfer_id(order, "payment"), clearing, escrow, price, "CNY", TransferKind.PAYMENT)
        escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider_id, order_id=settled)
        await ledger.post(
            transfer_id(settled, "settlement"), escrow, payable, provider_share, "CNY", TransferKind.SETTLEMENT
        )
        await ledger.post(transfer_id(settled, "fee"), escrow, revenue, fee, "CNY", TransferKind.FEE)
        await ledger.post(transfer_id(settled, "payout"), payable, payouts, 1_000, "CNY", TransferKind.PAYOUT)
    return fee


async def balance_of(api: Api, organization_id: str, person: Person, query: str = "") -> tuple[int, dict]:
    response = await api.client.get(f"/api/v1/organizations/{organization_id}/balance{query}", headers=person.headers)
    return response.status_code, response.json()


async def test_members_and_administrators_read_the_balance(api: Api) -> None:
    owner = await api.person("Provider")
    provider = await api.organization(owner, kind="provider")
    price = 20_000
    fee = await settle_one_order(api, uuid.UUID(provider["id"]), price)
    expected = {
        "currency": "CNY",
        "available_minor": price - fee - 1_000,
        "pending_minor": price,
        "paid_out_minor": 1_000,
        "debt_minor": 0,
    }
    assert await balance_of(api, provider["id"], owner) == (200, expected)
    assert await balance_of(api, provider["id"], owner, "?currency=CNY") == (200, expected)
    assert await balance_of(api, provider["id"], await api.admin()) == (200, expected)
    nothing = {"currency": "USD", "available_minor": 0, "pending_minor": 0, "paid_out_minor": 0, "debt_minor": 0}
    assert await balance_of(api, provider["id"], owner, "?currency=USD") == (200, nothing)


async def test_other_organisations_balances_do_not_exist_for_the_caller(api: Api) -> None:
    owner, stranger = await api.person("Provider"), await api.person("Stranger")
    provider = await api.organization(owner, kind="provider")
    await api.organization(stranger, kind="buyer")
    status, problem = await balance_of(api, provider["id"], stranger)
    assert status == 404
    assert problem["type"] == "urn:marketplace:problem:not-found"
    assert (await balance_of(api, str(uuid.uuid4()), owner))[0] == 404
    assert (await api.client.get(f"/api/v1/organizations/{provider['id']}/balance")).status_code == 401


async def test_an_api_key_reads_the_balance_only_with_its_scope(api: Api) -> None:
    owner = await api.person("Provider")
    provider = await api.organization(owner, kind="provider")

    async def key_with(*scopes: str) -> Person:
        response = await api.client.post(
            "/api/v1/api-keys",
            json={"organization_id": provider["id"], "name": "books", "scopes": list(scopes)},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return Person(id="", email="", token=response.json()["key"])

    assert (await balance_of(api, provider["id"], await key_with("balance:read")))[0] == 200
    assert (await balance_of(api, provider["id"], await key_with("orders:read")))[0] == 403


async def test_a_currency_is_three_capital_letters(api: Api) -> None:
    owner = await api.person("Provider")
    provider = await api.organization(owner, kind="provider")
    assert (await balance_of(api, provider["id"], owner, "?currency=cny"))[0] == 400


async def test_administrators_check_the_books(api: Api) -> None:
    owner = await api.person("Provider")
    provider = await api.organization(owner, kind="provider")
    await settle_one_order(api, uuid.UUID(provider["id"]), 20_000)
    response = await api.client.get("/api/v1/admin/ledger/check", headers=(await api.admin()).headers)
    assert response.status_code == 200, response.text
    check = response.json()
    assert check["transfers"] == 5
    assert check["imbalance_minor"] == 0
    assert check["negative_accounts"] == check["mismatched_accounts"] == []
    # escrow is compared with the orders: these transfers name orders that do not exist, so the one
    # whose escrow still holds its payment is reported, and the books are not ok
    assert check["escrow_checked"] is True
    [mismatch] = check["escrow_mismatches"]
    assert (mismatch["held_minor"], mismatch["expected_minor"], mismatch["currency"]) == (20_000, 0, "CNY")
    assert check["ok"] is False
    assert check["currencies"] == [
        {"currency": "CNY", "transfers": 5, "debits_posted": 61_000, "credits_posted": 61_000}
    ]


async def test_only_administrators_check_the_books(api: Api) -> None:
    member = await api.person("Member")
    response = await api.client.get("/api/v1/admin/ledger/check", headers=member.headers)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:marketplace:problem:forbidden"
    assert (await api.client.get("/api/v1/admin/ledger/check")).status_code == 401
