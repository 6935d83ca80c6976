"""PUT/GET /api/v1/organizations/{id}/payment-account: where a provider's payouts go.

With the local gateway any id is taken (its payouts are book entries, always enabled); with Stripe
the id must look like a Connect account id and Stripe must know it (localstripe has no Connect
accounts, so the positive case runs against a recording stand-in)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.api import Api, Person
from tests.payments.conftest import STRIPE_KEY, StripeRecorder

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def path(organization: dict[str, Any]) -> str:
    return f"/api/v1/organizations/{organization['id']}/payment-account"


async def provider(api: Api) -> tuple[Person, dict[str, Any], Person]:
    admin = await api.admin()
    owner = await api.person("Provider")
    return owner, await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3), admin


async def test_a_provider_owner_sets_its_payout_account(api: Api) -> None:
    owner, organization, admin = await provider(api)
    before = await api.client.get(path(organization), headers=owner.headers)
    assert before.status_code == 200, before.text
    assert before.json() == {
        "organization_id": organization["id"],
        "gateway": "local",
        "account_id": None,
        "payouts_enabled": False,
    }
    response = await api.client.put(path(organization), json={"account_id": "local-provider_1"}, headers=owner.headers)
    assert response.status_code == 200, response.text
    expected = {
        "organization_id": organization["id"],
        "gateway": "local",
        "account_id": "local-provider_1",
        "payouts_enabled": True,
    }
    assert response.json() == expected
    assert (await api.client.get(path(organization), headers=owner.headers)).json() == expected

    audit = await api.client.get(
        "/api/v1/admin/audit",
        params={"object_type": "organization", "object_id": organization["id"]},
        headers=admin.headers,
    )
    (entry,) = [e for e in audit.json()["items"] if e["action"] == "organization.payment_account_set"]
    assert entry["actor"] == f"user:{owner.id}"
    assert entry["payload"] == {"gateway": "local", "account_id": "local-provider_1", "payouts_enabled": True}


async def test_only_the_providers_managers_set_it(api: Api) -> None:
    owner, organization, admin = await provider(api)
    member = await api.person("Member")
    added = await api.client.post(
        f"/api/v1/organizations/{organization['id']}/members",
        json={"email": member.email, "role": "member"},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text
    stranger = await api.person("Stranger")
    body = {"account_id": "acct_x"}
    assert (await api.client.put(path(organization), json=body, headers=member.headers)).status_code == 403
    assert (await api.client.put(path(organization), json=body, headers=admin.headers)).status_code == 403
    assert (await api.client.put(path(organization), json=body, headers=stranger.headers)).status_code == 404
    assert (await api.client.get(path(organization), headers=stranger.headers)).status_code == 404
    assert (await api.client.get(path(organization), headers=member.headers)).json()["account_id"] is None
    assert (await api.client.put(path(organization), json=body)).status_code == 401


async def test_buyers_receive_no_payouts(api: Api) -> None:
    owner = await api.person("Buyer")
    buyer = await api.admitted_organization(owner, await api.admin(), kind="buyer")
    response = await api.client.put(path(buyer), json={"account_id": "acct_x"}, headers=owner.headers)
    assert response.status_code == 409, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"account_id": "acct 1"},
        {"account_id": ""},
        {"account_id": "a" * 65},
        {"account_id": 5},
        {},
        {"account_id": "a", "x": 1},
    ],
)
async def test_a_malformed_account_id_is_refused(api: Api, body: dict[str, Any]) -> None:
    owner, organization, _ = await provider(api)
    response = await api.client.put(path(organization), json=body, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert (await api.client.get(path(organization), headers=owner.headers)).json()["account_id"] is None


async def test_stripe_must_know_the_account(stripe_api: Api) -> None:
    """localstripe has no Connect accounts: it answers 404, as Stripe does for an unknown account."""
    owner, organization, _ = await provider(stripe_api)
    for account_id in ("acct_1UnknownAbc", "local-provider_1"):
        response = await stripe_api.client.put(
            path(organization), json={"account_id": account_id}, headers=owner.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith(":payment-account-invalid")
    read = await stripe_api.client.get(path(organization), headers=owner.headers)
    assert read.json() == {
        "organization_id": organization["id"],
        "gateway": "stripe",
        "account_id": None,
        "payouts_enabled": False,
    }


async def test_a_stripe_account_as_stripe_reports_it(recorded_stripe_api: Api, recorder: StripeRecorder) -> None:
    api = recorded_stripe_api
    owner, organization, _ = await provider(api)
    recorder.route("GET", "/v1/accounts/acct_1ProviderAbc", {"id": "acct_1ProviderAbc", "payouts_enabled": False})
    response = await api.client.put(path(organization), json={"account_id": "acct_1ProviderAbc"}, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["payouts_enabled"] is False
    (asked,) = recorder.requests
    assert (asked.method, asked.path, asked.headers["authorization"]) == (
        "GET",
        "/v1/accounts/acct_1ProviderAbc",
        f"Bearer {STRIPE_KEY}",
    )

    recorder.route("GET", "/v1/accounts/acct_1ProviderAbc", {"id": "acct_1ProviderAbc", "payouts_enabled": True})
    again = await api.client.put(path(organization), json={"account_id": "acct_1ProviderAbc"}, headers=owner.headers)
    assert again.json()["payouts_enabled"] is True  # setting it again reads Stripe's answer again


async def test_a_stripe_failure_is_a_502_that_changes_nothing(
    recorded_stripe_api: Api, recorder: StripeRecorder
) -> None:
    api = recorded_stripe_api
    owner, organization, _ = await provider(api)
    recorder.route(
        "GET",
        "/v1/accounts/acct_1ProviderAbc",
        {"error": {"type": "invalid_request_error", "message": "rate limited"}},
        status=429,
    )
    response = await api.client.put(path(organization), json={"account_id": "acct_1ProviderAbc"}, headers=owner.headers)
    assert response.status_code == 502, response.text
    assert response.json()["type"].endswith(":gateway-error")
    assert STRIPE_KEY not in response.text
    assert (await api.client.get(path(organization), headers=owner.headers)).json()["account_id"] is None
