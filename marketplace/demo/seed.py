"""Demonstration data: an administrator, two admitted providers, an admitted buyer, an admitted
assessor, a catalog of data products taken through the listing stage (listed, held, rejected), and
one complete trade on the local gateway: ordered through the trade stage, paid into escrow,
delivered, confirmed and settled."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from marketplace.accounts.models import OrganizationStatus, User
from marketplace.accounts.principal import Principal
from marketplace.accounts.schemas import OrganizationCreate, RegisterRequest
from marketplace.catalog.samples import CSV, parse_sample, store_content_addressed
from marketplace.catalog.schemas import PlanCreate, ProductCreate
from marketplace.demo.factories import organization_body, plan_body, product_body
from marketplace.demo.records import ASSESSOR, DEMO_ACTOR, ORGANIZATIONS, PRODUCTS, DemoProduct
from marketplace.demo.trade import demo_trade
from marketplace.kit.progress import Progress, unreported
from marketplace.wiring import Services

# Demonstration credentials, printed on purpose: this data is for a local sandbox only.
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@demo.example", "demo-admin-password"
MEMBER_PASSWORD = "demo-member-password"  # noqa: S105


async def seed_demo(services: Services, *, only_if_empty: bool, progress: Progress = unreported) -> str:
    """Seed the demo data and run the demo trade with `services` (a local gateway's); its summary."""
    if only_if_empty and (await services.session.execute(select(func.count()).select_from(User))).scalar_one() > 0:
        return "The database already has accounts; demo data not added."
    accounts = services.accounts
    admin = await accounts.create_admin(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Demo Admin", actor=DEMO_ACTOR)
    admin_principal = Principal(user_id=admin.id, is_admin=True)
    lines = [
        "Demo data is ready. Log in with POST /api/v1/auth/token {email, password}:",
        f"  administrator  {ADMIN_EMAIL} / {ADMIN_PASSWORD}",
    ]
    owners: dict[str, Principal] = {}
    organization_ids: dict[str, uuid.UUID] = {}
    for done, spec in enumerate(ORGANIZATIONS):
        progress("organisations", done, len(ORGANIZATIONS))
        user = await accounts.register(
            RegisterRequest(email=spec.owner_email, password=MEMBER_PASSWORD, name=spec.owner_name)
        )
        owner = Principal(user_id=user.id)
        body = OrganizationCreate.model_validate(organization_body(**spec.organization))
        organization = await accounts.create_organization(owner, body)
        admitted, _ = await services.admission.request(owner, organization.id)
        if admitted.status == OrganizationStatus.UNDER_REVIEW:
            await accounts.decide_admission(admin_principal, organization.id, "approve", "demo qualification reviewed")
        lines.append(f"  {body.kind.value:<13}  {spec.owner_email} / {MEMBER_PASSWORD}  ({body.name})")
        owners[spec.owner_email], organization_ids[spec.owner_email] = owner, organization.id
    progress("organisations", len(ORGANIZATIONS), len(ORGANIZATIONS))
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    lines.extend(await seed_catalog(services, owners, organization_ids, listed, progress))
    progress("demo trade", 0, 1)
    lines.extend(await demo_trade(services, owners, organization_ids, listed, admin_principal))
    progress("demo trade", 1, 1)
    lines.append("API documentation: http://127.0.0.1:8000/schema; the catalog as DCAT: /api/v1/catalog.jsonld")
    return "\n".join(lines)


async def seed_catalog(
    services: Services,
    owners: dict[str, Principal],
    organization_ids: dict[str, uuid.UUID],
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]] | None = None,
    progress: Progress = unreported,
) -> list[str]:
    """Describe, price, sample, host (its sample's rows are its dataset) and submit every demo product; a
    summary of the verdicts. Each listed product's (product id, plan id) goes into `listed` under its title."""
    catalog, settings = services.catalog, services.settings
    statuses: Counter[str] = Counter()
    rejected_by: Counter[str] = Counter()
    for serial, spec in enumerate(PRODUCTS, start=1):
        progress("products", serial - 1, len(PRODUCTS))
        owner = owners[spec.provider]
        body = product_body(
            organization_ids[spec.provider], spec, serial=serial, assessor_id=organization_ids[ASSESSOR]
        )
        view = await catalog.create(owner, ProductCreate.model_validate(body))
        plan = await services.plans.add_plan(owner, view.product.id, PlanCreate.model_validate(_plan(spec)))
        blob = store_content_addressed([spec.sample.encode()], settings.sample_dir, settings.max_sample_bytes)
        await catalog.attach_sample(owner, view.product.id, blob, parse_sample(blob.path, CSV))
        dataset = store_content_addressed([spec.sample.encode()], settings.dataset_dir, settings.max_dataset_bytes)
        await services.delivery.host_dataset(owner, view.version, dataset, CSV)
        submitted, verdict = await services.listing.submit(owner, view.product.id)
        statuses[submitted.product.status.value] += 1
        if listed is not None and submitted.product.status.value == "listed":
            listed[spec.title] = (view.product.id, plan.id)
        if submitted.product.status.value == "rejected":
            rules = {str(f["check"]).split(".", 1)[0] for f in verdict.findings if f.get("outcome") == "fail"}
            rejected_by.update(rules)
    progress("products", len(PRODUCTS), len(PRODUCTS))
    lines = [
        f"Catalog: {len(PRODUCTS)} products submitted to the listing stage: {statuses['listed']} listed, "
        f"{statuses['under_review']} held for review, {statuses['rejected']} rejected."
    ]
    if rejected_by:
        lines.append("  rejected by: " + ", ".join(f"{rule} ({n})" for rule, n in sorted(rejected_by.items())))
    return lines


def _plan(spec: DemoProduct) -> dict[str, Any]:
    """A demo product's plan from its price: that price once, a tenth of it for 30 days, or a twentieth
    of it a month metered up to the whole of it."""
    if spec.plan_kind == "subscription":
        return plan_body(spec.price_minor // 10, "subscription")
    if spec.plan_kind == "metered":
        return plan_body(spec.price_minor // 20, "metered", monthly_cap_minor=spec.price_minor)
    return plan_body(spec.price_minor)
