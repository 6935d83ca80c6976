"""Managing endpoints: URLs to addresses that are not public are refused (also by a name resolving to one, also
inside IPv6) unless allow-listed; an organisation's endpoints are 404 to everyone outside it; the secret is shown
at creation and rotation only, never in a read, a list, the audit log or an event; API keys need
`webhooks:manage`; bad input is refused and changes nothing."""

from __future__ import annotations

import ipaddress
import json
import uuid

import pytest
from sqlalchemy import select

from marketplace.accounts.models import Scope
from marketplace.audit.models import AuditEntry
from marketplace.events.models import Event, WebhookSecret
from marketplace.events.service import EventService
from marketplace.kit import outbound
from marketplace.wiring import Runtime
from tests.fixtures.api import Api
from tests.orders.conftest import Market
from tests.security.scopes import key_headers
from tests.webhooks.conftest import ENDPOINTS, Receiver, create_endpoint, record_event, run_until_idle

REFUSED = "urn:marketplace:problem:webhook-url-refused"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1, a loopback address"),
        ("https://10.0.0.1/hook", "10.0.0.1, a private address"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254, a cloud metadata address"),
        ("https://[::1]/hook", "::1, a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", "::ffff:7f00:1, a loopback address"),  # IPv4-mapped IPv6
        ("https://[::ffff:a9fe:a9fe]/hook", "::ffff:a9fe:a9fe, a cloud metadata address"),
        ("https://0.0.0.0/hook", "0.0.0.0, an unspecified address"),
        ("https://[fe80::1]/hook", "fe80::1, a link-local address"),
        ("https://224.0.0.1/hook", "224.0.0.1, a multicast address"),
        ("https://100.64.0.1/hook", "100.64.0.1, not a public address"),
        ("https://localhost:8443/hook", "a loopback address"),  # a name that resolves to loopback
    ],
)
async def test_endpoints_at_addresses_that_are_not_public_are_refused(market: Market, url: str, reason: str) -> None:
    body = {"organization_id": market.buyer_org["id"], "url": url, "event_types": ["order."]}
    refused = await market.api.client.post(ENDPOINTS, json=body, headers=market.buyer.headers)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert (problem["type"], problem["field"]) == (REFUSED, "url")
    assert reason in problem["detail"]
    listed = await market.api.client.get(ENDPOINTS, headers=market.buyer.headers)
    assert listed.json()["total"] == 0


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://93.184.216.34/hook", "must start with https://"),  # plain http to a public address
        ("ftp://93.184.216.34/hook", "must start with https://"),
        ("https:///hook", "has no host"),
        ("https://user:pw@93.184.216.34/hook", "user name or password"),
        ("https://93.184.216.34/hook#part", "fragment"),
        ("https://93.184.216.34:99999/hook", "not a valid URL"),
        ("https://93.184.216.34/a b", "spaces"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
async def test_urls_that_are_not_https_to_a_host_are_refused(market: Market, url: str, detail: str) -> None:
    body = {"organization_id": market.buyer_org["id"], "url": url, "event_types": ["order."]}
    refused = await market.api.client.post(ENDPOINTS, json=body, headers=market.buyer.headers)
    assert (refused.status_code, refused.json()["type"]) == (422, REFUSED), refused.text
    assert detail in refused.json()["detail"]


async def test_a_url_too_long_or_bad_types_are_refused_and_change_nothing(market: Market) -> None:
    base = {"organization_id": market.buyer_org["id"], "url": "https://93.184.216.34/hook", "event_types": ["order."]}
    for change, status in [
        ({"url": "https://93.184.216.34/" + "a" * 2000}, 400),
        ({"event_types": []}, 400),
        ({"event_types": ["Order.Paid"]}, 400),
        ({"event_types": ["order.shipped"]}, 422),
        ({"event_types": ["invoice."]}, 422),
        ({"enabled": "yes"}, 400),
        ({"secret": "whsec_mine"}, 400),
    ]:
        refused = await market.api.client.post(ENDPOINTS, json={**base, **change}, headers=market.buyer.headers)
        assert refused.status_code == status, (change, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await market.api.client.get(ENDPOINTS, headers=market.buyer.headers)).json()["total"] == 0


async def test_an_allow_listed_network_is_accepted(market: Market, receiver: Receiver, hooks: Runtime) -> None:
    made = await create_endpoint(market.api, market.buyer, market.buyer_org["id"], receiver.url())
    assert made["url"] == receiver.url()
    assert made["enabled"] is True


def test_ipv4_inside_ipv6_is_judged_as_ipv4() -> None:
    def reason(address: outbound.IPAddress) -> str | None:
        said = outbound.forbidden_reason(address)
        return None if said is None else str(said)

    assert reason(ipaddress.ip_address("::ffff:10.1.2.3")) == "a private address"
    assert reason(ipaddress.ip_address("2002:7f00:1::")) == "a loopback address"  # 6to4 of 127.0.0.1
    assert reason(ipaddress.ip_address("64:ff9b::a9fe:a9fe")) == "a cloud metadata address"  # NAT64
    assert reason(ipaddress.ip_address("fd00:ec2::254")) == "a cloud metadata address"
    assert reason(ipaddress.ip_address("93.184.216.34")) is None
    assert reason(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None


async def test_other_organisations_endpoints_do_not_exist_for_them(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    delivery_id = (await api.client.get(f"{ENDPOINTS}/{hook['id']}/deliveries", headers=market.buyer.headers)).json()[
        "items"
    ][0]["id"]
    stranger_key = await key_headers(market, market.provider_org, Scope.WEBHOOKS_MANAGE)
    base = f"{ENDPOINTS}/{hook['id']}"
    for who in (market.provider.headers, stranger_key):
        for method, path, body in [
            ("GET", base, None),
            ("PATCH", base, {"enabled": False}),
            ("DELETE", base, None),
            ("POST", f"{base}/rotate-secret", None),
            ("GET", f"{base}/deliveries", None),
            ("GET", f"{base}/deliveries/{delivery_id}/attempts", None),
            ("POST", f"{base}/deliveries/{delivery_id}/replay", None),
        ]:
            answer = await api.client.request(method, path, json=body, headers=who)
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await api.client.get(ENDPOINTS, headers=who)).json()["items"] == []
        made = await api.client.post(
            ENDPOINTS,
            json={"organization_id": market.buyer_org["id"], "url": receiver.url(), "event_types": ["order."]},
            headers=who,
        )
        assert made.status_code == 404, made.text
    # the owner's endpoint is as it was
    read = await api.client.get(base, headers=market.buyer.headers)
    assert read.status_code == 200
    assert read.json()["enabled"] is True
    assert len(receiver.received) == 1


async def test_an_api_key_manages_its_own_organisations_endpoints_with_the_scope(
    market: Market, receiver: Receiver, hooks: Runtime
) -> None:
    api = market.api
    key = await key_headers(market, market.buyer_org, Scope.WEBHOOKS_MANAGE)
    hook = await create_endpoint(api, key, market.buyer_org["id"], receiver.url())
    listed = await api.client.get(ENDPOINTS, headers=key)
    assert [e["id"] for e in listed.json()["items"]] == [hook["id"]]
    events_key = await key_headers(market, market.buyer_org, Scope.EVENTS_READ)
    refused = await api.client.get(f"{ENDPOINTS}/{hook['id']}", headers=events_key)
    assert (refused.status_code, refused.json()["detail"]) == (403, "this API key lacks the webhooks:manage scope")
    deleted = await api.client.delete(f"{ENDPOINTS}/{hook['id']}", headers=key)
    assert deleted.status_code == 204
    assert (await api.client.get(f"{ENDPOINTS}/{hook['id']}", headers=key)).status_code == 404


async def test_a_member_who_does_not_manage_the_organisation_is_refused(market: Market, hooks: Runtime) -> None:
    api = market.api
    member = await api.person("Member")
    added = await api.client.post(
        f"/api/v1/organizations/{market.buyer_org['id']}/members",
        json={"email": member.email, "role": "member"},
        headers=market.buyer.headers,
    )
    assert added.status_code == 201, added.text
    body = {"organization_id": market.buyer_org["id"], "url": "https://127.0.0.1/hook", "event_types": ["order."]}
    refused = await api.client.post(ENDPOINTS, json=body, headers=member.headers)
    assert refused.status_code == 403, refused.text


async def test_the_secret_is_shown_once_and_never_read_back(
    market: Market, receiver: Receiver, hooks: Runtime, api: Api
) -> None:
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) >= len("whsec_") + 32
    base = f"{ENDPOINTS}/{hook['id']}"
    rotated = (await api.client.post(f"{base}/rotate-secret", headers=market.buyer.headers)).json()["secret"]
    await record_event(api, market.buyer_org["id"])
    await run_until_idle(hooks)
    delivery = (await api.client.get(f"{base}/deliveries", headers=market.buyer.headers)).json()["items"][0]
    changed = await api.client.patch(base, json={"event_types": ["order.", "payout."]}, headers=market.buyer.headers)
    assert changed.status_code == 200, changed.text
    answers = [
        changed,
        await api.client.get(base, headers=market.buyer.headers),
        await api.client.get(ENDPOINTS, headers=market.buyer.headers),
        await api.client.get(f"{base}/deliveries", headers=market.buyer.headers),
        await api.client.get(f"{base}/deliveries/{delivery['id']}/attempts", headers=market.buyer.headers),
        await api.client.get("/api/v1/events", headers=market.admin.headers),
        await api.client.get("/api/v1/admin/audit", headers=market.admin.headers),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for shown in (secret, rotated, secret.removeprefix("whsec_"), rotated.removeprefix("whsec_")):
            assert shown not in answer.text
    async with api.sessions() as session:
        stored = [s.sealed for s in await session.scalars(select(WebhookSecret))]
        audit = [json.dumps(e.payload) for e in await session.scalars(select(AuditEntry))]
        await EventService(session).sequence()
        events = [json.dumps(e.payload) for e in await session.scalars(select(Event))]
    assert len(stored) == 2
    for text in [*stored, *audit, *events]:
        for shown in (secret.removeprefix("whsec_"), rotated.removeprefix("whsec_")):
            assert shown not in text
    assert not any(receiver.url() in text for text in [*audit, *events])  # a URL may carry a token


async def test_null_or_an_unknown_endpoint_changes_nothing(market: Market, receiver: Receiver, hooks: Runtime) -> None:
    api = market.api
    hook = await create_endpoint(api, market.buyer, market.buyer_org["id"], receiver.url())
    base = f"{ENDPOINTS}/{hook['id']}"
    nulled = await api.client.patch(base, json={"url": None}, headers=market.buyer.headers)
    assert (nulled.status_code, nulled.json()["type"]) == (422, "urn:marketplace:problem:fields-required")
    refused = await api.client.patch(base, json={"url": "https://10.0.0.1/x"}, headers=market.buyer.headers)
    assert (refused.status_code, refused.json()["type"]) == (422, REFUSED)
    assert (await api.client.get(base, headers=market.buyer.headers)).json()["url"] == receiver.url()
    missing = await api.client.get(f"{ENDPOINTS}/{uuid.uuid4()}", headers=market.buyer.headers)
    assert missing.status_code == 404
