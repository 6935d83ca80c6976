"""The listing preview is the gate seen before it is met: for any draft, the preview's decision and
findings are those the submission then gets; the preview stores nothing and changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from marketplace.compliance.models import StoredVerdict
from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, upload
from tests.fixtures.api import Api, Person

# Declarations the listing stage judges, each wrong in a way one rule or standard names.
FLAWS: dict[str, dict[str, Any]] = {
    "unknown industry code": {"industry_code": "ZZ99"},
    "no region": {"regions": []},
    "unknown region": {"regions": ["999999"]},
    "unknown grade": {"grade": "secret"},
    "no delivery mode": {"delivery_modes": []},
    "no scenario": {"permitted_scenarios": []},
    "no registration": {"registration_number": ""},
    "no cost": {"cost": None},
    "core grade": {"grade": "core"},
}
drafts = st.fixed_dictionaries({"flaws": st.sets(st.sampled_from(sorted(FLAWS)), max_size=3), "hosted": st.booleans()})


def comparable(verdict: dict[str, Any]) -> tuple[Any, ...]:
    findings = sorted((f["rule_id"], f["check"], f["outcome"], f["message"]) for f in verdict["findings"])
    return verdict["stage"], verdict["decision"], verdict["rulebook_fingerprint"], findings


async def stored_verdicts(api: Api) -> int:
    async with api.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(StoredVerdict))).scalar_one())


async def draft(api: Api, owner: Person, organization_id: str, flaws: set[str], *, hosted: bool) -> str:
    changes: dict[str, Any] = {}
    for flaw in sorted(flaws):
        changes.update(FLAWS[flaw])
    created = await api.client.post(
        "/api/v1/products", json=product_body(organization_id, **changes), headers=owner.headers
    )
    assert created.status_code == 201, created.text
    product_id = str(created.json()["id"])
    plan = await api.client.post(f"/api/v1/products/{product_id}/plans", json=plan_body(500_000), headers=owner.headers)
    assert plan.status_code == 201, plan.text
    assert (await upload(api, owner, product_id, "sample.csv", CLEAN_SAMPLE, "text/csv")).status_code == 201
    if hosted:
        await api.host_dataset(owner, product_id)
    return product_id


async def test_the_preview_is_what_the_submission_gets(api: Api) -> None:
    admin = await api.admin()
    provider = await api.person("Provider")
    organization = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    loop = asyncio.get_running_loop()
    decisions: set[str] = set()

    async def check(flaws: set[str], hosted: bool) -> None:
        product_id = await draft(api, provider, organization["id"], flaws, hosted=hosted)
        before = await stored_verdicts(api)
        preview = await api.client.post(f"/api/v1/products/{product_id}/preview", headers=provider.headers)
        assert preview.status_code == 200, preview.text
        assert preview.json()["id"] is None
        assert await stored_verdicts(api) == before  # nothing stored
        unchanged = await api.client.get(f"/api/v1/products/{product_id}", headers=provider.headers)
        assert unchanged.json()["status"] == "draft"

        submitted = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=provider.headers)
        assert submitted.status_code == 200, submitted.text
        assert comparable(preview.json()) == comparable(submitted.json()["verdict"])
        decisions.add(preview.json()["decision"])

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(draft=drafts)
    def run(draft: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(check(draft["flaws"], draft["hosted"]), loop).result()

    await asyncio.to_thread(run)
    assert {"accepted", "rejected"} <= decisions  # the drafts reached both sides of the gate


async def test_another_organisation_cannot_preview_a_draft(api: Api) -> None:
    admin = await api.admin()
    provider = await api.person("Provider")
    organization = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    product_id = await draft(api, provider, organization["id"], set(), hosted=True)
    other = await api.person("Other")
    await api.admitted_organization(other, admin, kind="provider", dsmm_level=3)

    refused = await api.client.post(f"/api/v1/products/{product_id}/preview", headers=other.headers)

    assert refused.status_code == 404
