"""The listing queue (`GET /api/v1/admin/products`): products by status at their newest version, the longest
waiting first, for administrators only; deciding a held product takes it out of the queue."""

from __future__ import annotations

from marketplace.demo.factories import plan_body
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR, submitted_product

QUEUE = "/api/v1/admin/products"


async def test_held_products_wait_in_the_queue_until_decided(api: Api) -> None:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    # a price far from its assessed reference price is held for review (R5); a plain product lists
    held = []
    for _ in range(2):
        product_id, _, answer = await submitted_product(
            api, owner, organization["id"], plan=plan_body(PRICE_MINOR), reference_price_minor=PRICE_MINOR // 10
        )
        assert answer["status"] == "under_review", answer["verdict"]
        held.append(product_id)
    listed_id, _, answer = await submitted_product(api, owner, organization["id"])
    assert answer["status"] == "listed"

    queue = await api.client.get(QUEUE, headers=admin.headers)
    assert queue.status_code == 200, queue.text
    assert (queue.json()["total"], [p["id"] for p in queue.json()["items"]]) == (2, held)
    assert {p["status"] for p in queue.json()["items"]} == {"under_review"}
    page = await api.client.get(QUEUE, params={"limit": 1, "offset": 1}, headers=admin.headers)
    assert [p["id"] for p in page.json()["items"]] == held[1:]
    listed = await api.client.get(QUEUE, params={"status": "listed"}, headers=admin.headers)
    assert [p["id"] for p in listed.json()["items"]] == [listed_id]

    decided = await api.client.post(
        f"{QUEUE}/{held[0]}/decision", json={"decision": "reject", "reason": "no appraisal"}, headers=admin.headers
    )
    assert decided.status_code == 200, decided.text
    after = await api.client.get(QUEUE, headers=admin.headers)
    assert [p["id"] for p in after.json()["items"]] == held[1:]


async def test_only_administrators_see_the_queue(api: Api) -> None:
    owner = await api.person("Provider")
    assert (await api.client.get(QUEUE, headers=owner.headers)).status_code == 403
    assert (await api.client.get(QUEUE)).status_code == 401
    admin = await api.admin()
    assert (await api.client.get(QUEUE, params={"status": "lost"}, headers=admin.headers)).status_code == 400
