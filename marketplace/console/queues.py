"""The review queues (admissions, listings, held trades, suspended licences, disputes), each item's page with
the verdict that put it there, and the decisions on it: forms that require a reason, handed to the same
services and flows as the API's administrators' endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Template

from marketplace.accounts.models import OrganizationStatus
from marketplace.accounts.schemas import DecisionRequest
from marketplace.accounts.service import AccountService
from marketplace.catalog.listing import ListingService
from marketplace.catalog.models import ProductStatus
from marketplace.catalog.schemas import ProductDecision
from marketplace.catalog.service import CatalogService
from marketplace.compliance.contract import Stage
from marketplace.compliance.rulebook import Rulebook
from marketplace.compliance.service import ComplianceService
from marketplace.console.pages import PREFIX, SIGNED_IN, Admin, PageLanguage, Queries, form_of, money, page
from marketplace.console.verdicts import pretty, shown_verdict
from marketplace.delivery.schemas import LicenceDecision
from marketplace.flows.delivery import Delivery
from marketplace.orders.models import OrderStatus
from marketplace.orders.service import OrderService
from marketplace.orders.trades import TradeFilters
from marketplace.web.principal import Access

QueueKind = Literal["admissions", "listings", "trades", "licences", "disputes"]
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
# Items a queue page lists.
QUEUE_PAGE = 50
Compliance = NamedDependency[ComplianceService]
Rules = NamedDependency[Rulebook]


class QueuesController(Controller):
    path = PREFIX
    include_in_schema = False
    dependencies = SIGNED_IN

    @get("/queues/{kind:str}", opt={"scope": Access.ADMIN})
    async def queue(
        self,
        request: Request[Any, Any, Any],
        kind: FromPath[QueueKind],
        admin: Admin,
        page_language: PageLanguage,
        queries: Queries,
        accounts: NamedDependency[AccountService],
        catalog: NamedDependency[CatalogService],
        orders: NamedDependency[OrderService],
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> Template:
        """One queue, the longest waiting first, a page at a time."""
        items: list[dict[str, Any]]
        if kind == "admissions":
            organizations, total = await accounts.list_organizations(
                status=OrganizationStatus.UNDER_REVIEW, limit=QUEUE_PAGE, offset=offset
            )
            items = [
                {"href": f"{PREFIX}/organizations/{o.id}", "name": o.name, "detail": o.kind.value, "at": o.updated_at}
                for o in organizations
            ]
        elif kind == "listings":
            views, total = await catalog.queue(admin, ProductStatus.UNDER_REVIEW, limit=QUEUE_PAGE, offset=offset)
            items = [
                {
                    "href": f"{PREFIX}/products/{v.product.id}",
                    "name": v.version.title,
                    "detail": f"v{v.version.version}",
                    "at": v.product.updated_at,
                }
                for v in views
            ]
        elif kind == "licences":
            licences, total = await queries.suspended_licences(limit=QUEUE_PAGE, offset=offset)
            items = [
                {
                    "href": f"{PREFIX}/licences/{lc.id}",
                    "name": str(lc.id),
                    "detail": lc.status_reason or "",
                    "at": lc.updated_at,
                }
                for lc in licences
            ]
        else:
            status = OrderStatus.PENDING_REVIEW if kind == "trades" else OrderStatus.DISPUTED
            rows, total = await orders.trades(admin, TradeFilters(status=status), limit=QUEUE_PAGE, offset=offset)
            items = [
                {
                    "href": f"{PREFIX}/trades/{r['id']}",
                    "name": str(r["id"]),
                    "detail": f"{money(r['amount_minor'], r['currency'])} · {' '.join(r['flagged_rules'] or [])}",
                    "at": r["status_changed_at"],
                }
                for r in rows
            ]
        return page(
            request,
            "queue.html",
            page_language,
            kind=kind,
            items=items,
            total=total,
            offset=offset,
            page_size=QUEUE_PAGE,
            sizes=await queries.queue_sizes(),
        )

    @get("/organizations/{organization_id:uuid}", opt={"scope": Access.ADMIN})
    async def organization(
        self,
        request: Request[Any, Any, Any],
        organization_id: FromPath[uuid.UUID],
        admin: Admin,
        page_language: PageLanguage,
        accounts: NamedDependency[AccountService],
        compliance: Compliance,
        rulebook: Rules,
    ) -> Template:
        organization = await accounts.visible_organization(admin, organization_id)
        stored = await compliance.latest("organization", organization.id, Stage.ADMISSION)
        facts = organization.model_dump(mode="json", exclude={"id", "payment_account_id"})
        return page(
            request,
            "item.html",
            page_language,
            kind="organization",
            title=organization.name,
            status=organization.status.value,
            facts=pretty(facts),
            verdict=await shown_verdict(compliance, rulebook, stored, page_language),
            decision_url=f"{request.url.path}/decision"
            if organization.status == OrganizationStatus.UNDER_REVIEW
            else None,
            choices=["approve", "reject"],
            field="decision",
        )

    @post("/organizations/{organization_id:uuid}/decision", opt={"scope": Access.ADMIN})
    async def decide_organization(
        self, organization_id: FromPath[uuid.UUID], data: Form, admin: Admin, accounts: NamedDependency[AccountService]
    ) -> Redirect:
        form = form_of(DecisionRequest, data)
        await accounts.decide_admission(admin, organization_id, form.decision, form.reason)
        return Redirect(f"{PREFIX}/organizations/{organization_id}", status_code=303)

    @get("/products/{product_id:uuid}", opt={"scope": Access.ADMIN})
    async def product(
        self,
        request: Request[Any, Any, Any],
        product_id: FromPath[uuid.UUID],
        admin: Admin,
        page_language: PageLanguage,
        catalog: NamedDependency[CatalogService],
        compliance: Compliance,
        rulebook: Rules,
    ) -> Template:
        view = await catalog.view(admin, product_id)
        stored = await compliance.latest("product", view.product.id, Stage.LISTING)
        facts = {
            "product": view.product.model_dump(mode="json"),
            "version": view.version.model_dump(mode="json"),
            "plans": [plan.model_dump(mode="json") for plan in view.plans],
        }
        return page(
            request,
            "item.html",
            page_language,
            kind="product",
            title=view.version.title,
            status=view.product.status.value,
            facts=pretty(facts),
            verdict=await shown_verdict(compliance, rulebook, stored, page_language),
            decision_url=f"{request.url.path}/decision" if view.product.status == ProductStatus.UNDER_REVIEW else None,
            choices=["approve", "reject"],
            field="decision",
        )

    @post("/products/{product_id:uuid}/decision", opt={"scope": Access.ADMIN})
    async def decide_product(
        self, product_id: FromPath[uuid.UUID], data: Form, admin: Admin, listings: NamedDependency[ListingService]
    ) -> Redirect:
        form = form_of(ProductDecision, data)
        await listings.decide(admin, product_id, form.decision, form.reason)
        return Redirect(f"{PREFIX}/products/{product_id}", status_code=303)

    @get("/licences/{licence_id:uuid}", opt={"scope": Access.ADMIN})
    async def licence(
        self,
        request: Request[Any, Any, Any],
        licence_id: FromPath[uuid.UUID],
        admin: Admin,
        page_language: PageLanguage,
        delivery: NamedDependency[Delivery],
        compliance: Compliance,
        rulebook: Rules,
    ) -> Template:
        licence = await delivery.licence(admin, licence_id)
        stored = await compliance.latest("licence", licence.id, Stage.DELIVERY)
        suspended = licence.status.value == "suspended"
        return page(
            request,
            "item.html",
            page_language,
            kind="licence",
            title=str(licence.id),
            status=licence.status.value,
            facts=pretty(licence.model_dump(mode="json")),
            verdict=await shown_verdict(compliance, rulebook, stored, page_language),
            decision_url=f"{request.url.path}/decision" if suspended else None,
            choices=["reinstate", "revoke"],
            field="decision",
            trade=f"{PREFIX}/trades/{licence.order_id}",
        )

    @post("/licences/{licence_id:uuid}/decision", opt={"scope": Access.ADMIN})
    async def decide_licence(
        self, licence_id: FromPath[uuid.UUID], data: Form, admin: Admin, delivery: NamedDependency[Delivery]
    ) -> Redirect:
        form = form_of(LicenceDecision, data)
        await delivery.decide_licence(admin, licence_id, form.decision, form.reason)
        return Redirect(f"{PREFIX}/licences/{licence_id}", status_code=303)
