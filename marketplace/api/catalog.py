"""HTTP endpoints of the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Annotated, Any, Literal

import anyio
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody, QueryParameter

from marketplace.accounts.models import Scope
from marketplace.catalog.dcat import catalog_jsonld
from marketplace.catalog.listing import ListingService
from marketplace.catalog.models import ProductStatus
from marketplace.catalog.plans import PlanService
from marketplace.catalog.repository import SearchFilters
from marketplace.catalog.samples import SampleError, media_type_for, parse_sample, store_content_addressed
from marketplace.catalog.schemas import (
    PlanCreate,
    PlanRead,
    ProductCreate,
    ProductDecision,
    ProductPatch,
    ProductRead,
    ProductSearchPage,
    ProductSummary,
    SampleRead,
    SearchFacets,
    SubmissionResponse,
)
from marketplace.catalog.search_text import MAX_QUERY_CHARS, query_terms
from marketplace.catalog.service import CatalogService, ProductView
from marketplace.compliance.schemas import VerdictRead
from marketplace.compliance.service import ComplianceService
from marketplace.config import Settings
from marketplace.errors import DomainError, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from marketplace.flows.listing import Listing
from marketplace.kit.schemas import Reason, RequestBody
from marketplace.web.language import RequestLanguage
from marketplace.web.pagination import PAGED, Page, Paging
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, VISITORS, Access, Caller
from marketplace.web.problems import problem_responses

Catalog = NamedDependency[CatalogService]
Listings = NamedDependency[ListingService]
Plans = NamedDependency[PlanService]


class DelistRequest(RequestBody):
    reason: Reason


def product_read(view: ProductView) -> ProductRead:
    version = view.version
    return ProductRead(
        id=view.product.id,
        organization_id=view.product.organization_id,
        status=view.product.status,
        version=version.version,
        version_status=version.status,
        listed_version=view.product.listed_version,
        title=version.title,
        description=version.description,
        tags=version.tags,
        category=version.category,
        industry_code=version.industry_code,
        regions=version.regions,
        grade=version.grade,
        contains_personal_info=version.contains_personal_info,
        data_source=version.data_source,
        permitted_scenarios=version.permitted_scenarios,
        delivery_modes=version.delivery_modes,
        data_hosted=version.content_sha256 is not None,
        details=version.details,
        plans=[PlanRead.model_validate(plan) for plan in view.plans],
        sample=SampleRead.model_validate(view.sample) if view.sample else None,
        decision_reason=version.decision_reason,
        created_at=view.product.created_at,
        updated_at=view.product.updated_at,
    )


@dataclass
class SampleUpload:
    file: UploadFile


MAX_PRICE = 10**15
SAMPLE_BODY_LIMIT = 64 * 1024 * 1024  # the multipart envelope; the sample's own limit is MAX_SAMPLE_BYTES


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(65_536):
        yield chunk


def file_problem(exc: SampleError, error_key: str = "sample_error") -> DomainError:
    """A refused sample or dataset file as its problem: 413 too large, 415 not CSV or JSON lines, else 422 with
    the reader's code under `error_key` and the line it stopped at."""
    if exc.code == "too-large":
        return PayloadTooLarge(exc.message)
    if exc.code == "unsupported-type":
        return UnsupportedMediaType(exc.message)
    refusal: dict[str, Any] = {error_key: exc.code, "line": exc.line}
    return Unprocessable(exc.message, **refusal)


class ProductController(Controller):
    path = "/api/v1/products"
    tags = ["catalog"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @post("/", responses=problem_responses(401, 403, 404), opt={"scope": Scope.CATALOG_WRITE})
    async def create(self, data: JSONBody[ProductCreate], principal: Caller, catalog: Catalog) -> ProductRead:
        """Describe a new data product; it starts as a draft (version 1)."""
        return product_read(await catalog.create(principal, data))

    @get("/", responses=problem_responses(401, 403), opt={"scope": Scope.CATALOG_READ, VISITORS: True})
    async def search(
        self,
        principal: Caller,
        catalog: Catalog,
        page: Paging,
        q: Annotated[str | None, QueryParameter(max_length=MAX_QUERY_CHARS)] = None,
        category: Annotated[str | None, QueryParameter(max_length=64)] = None,
        industry_code: Annotated[str | None, QueryParameter(max_length=8)] = None,
        region: Annotated[str | None, QueryParameter(pattern=r"^[0-9]{6}$")] = None,
        grade: Annotated[Literal["general", "important", "core"] | None, QueryParameter()] = None,
        delivery_mode: Annotated[Literal["file", "api", "privacy_computing"] | None, QueryParameter()] = None,
        min_price: Annotated[int, QueryParameter(ge=0, le=MAX_PRICE)] = 0,
        max_price: Annotated[int, QueryParameter(ge=0, le=MAX_PRICE)] = MAX_PRICE,
        provider: Annotated[uuid.UUID | None, QueryParameter()] = None,
        sort: Annotated[Literal["relevance", "price", "-price", "newest"], QueryParameter()] = "relevance",
    ) -> ProductSearchPage:
        """Search the listed catalog: full text over title, description and tags (Chinese words
        included), filters, facet counts by category and grade. Visitors search it without a credential."""
        filters = SearchFilters(
            terms=tuple(query_terms(q or "")),
            category=category,
            industry_code=industry_code,
            region=region,
            grade=grade,
            delivery_mode=delivery_mode,
            # bounds are always documented, so "no bound" is the widest value rather than absent
            min_price=min_price or None,
            max_price=None if max_price == MAX_PRICE else max_price,
            provider=provider,
        )
        rows, total, facets = await catalog.search(filters, sort=sort, limit=page.limit, offset=page.offset)
        items = [
            ProductSummary.model_validate(
                {**version.model_dump(), "id": product.id, "organization_id": product.organization_id}
            )
            for version, product in rows
        ]
        return ProductSearchPage(
            items=items, total=total, limit=page.limit, offset=page.offset, facets=SearchFacets(**facets)
        )

    @get(
        "/{product_id:uuid}",
        responses=problem_responses(401, 403, 404),
        opt={"scope": Scope.CATALOG_READ, VISITORS: True},
    )
    async def read(self, product_id: FromPath[uuid.UUID], principal: Caller, catalog: Catalog) -> ProductRead:
        """A product with its plans, delivery modes and whether its data is hosted: owners and administrators
        see the newest version; everyone else, visitors without a credential included, the listed version of a
        listed product (any other is 404)."""
        return product_read(await catalog.view(principal, product_id))

    @patch("/{product_id:uuid}", responses=problem_responses(401, 403, 404, 409), opt={"scope": Scope.CATALOG_WRITE})
    async def update(
        self, product_id: FromPath[uuid.UUID], data: JSONBody[ProductPatch], principal: Caller, catalog: Catalog
    ) -> ProductRead:
        """Change the description; a listed version is kept and the change goes into a new draft version."""
        return product_read(await catalog.update(principal, product_id, data))

    @post(
        "/{product_id:uuid}/plans",
        responses=problem_responses(401, 403, 404, 409, 422),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def add_plan(
        self, product_id: FromPath[uuid.UUID], data: JSONBody[PlanCreate], principal: Caller, plans: Plans
    ) -> PlanRead:
        """Add a price plan to the product's draft version (a free plan costs nothing)."""
        return PlanRead.model_validate(await plans.add_plan(principal, product_id, data))

    @delete(
        "/{product_id:uuid}/plans/{plan_id:uuid}",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def retire_plan(
        self, product_id: FromPath[uuid.UUID], plan_id: FromPath[uuid.UUID], principal: Caller, plans: Plans
    ) -> ProductRead:
        """Retire a plan from the product's draft version (made now from the listed one if there is none).
        Plans already sold stay on the orders that bought them; the listed version is unchanged until the
        draft is listed."""
        return product_read(await plans.retire_plan(principal, product_id, plan_id))

    @post(
        "/{product_id:uuid}/preview",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def preview(
        self,
        product_id: FromPath[uuid.UUID],
        principal: Caller,
        listing: NamedDependency[Listing],
        language: RequestLanguage,
    ) -> VerdictRead:
        """The listing stage's verdict on the draft as `submit` would give it now, every finding included;
        nothing is stored or changed (no id, no status), so it can be asked as often as the draft changes."""
        return VerdictRead.of_verdict(await listing.preview(principal, product_id), language)

    @post(
        "/{product_id:uuid}/submit",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def submit(
        self,
        product_id: FromPath[uuid.UUID],
        principal: Caller,
        listing: NamedDependency[Listing],
        language: RequestLanguage,
    ) -> SubmissionResponse:
        """Run the listing stage on the draft: listed, held for review, or rejected with findings. Every value
        the rulebook judges is judged here, not refused by the request schema; a draft offering any delivery
        mode lists only with its dataset hosted (`PUT /api/v1/products/{id}/dataset`, R1)."""
        view, verdict = await listing.submit(principal, product_id)
        return SubmissionResponse(
            status=view.product.status, version=view.version.version, verdict=VerdictRead.of_stored(verdict, language)
        )

    @get("/{product_id:uuid}/verdicts", responses=problem_responses(401, 403, 404), opt={"scope": Scope.CATALOG_READ})
    async def verdicts(
        self,
        product_id: FromPath[uuid.UUID],
        principal: Caller,
        catalog: Catalog,
        compliance: NamedDependency[ComplianceService],
        language: RequestLanguage,
    ) -> list[VerdictRead]:
        """The product's listing verdicts, newest first, with every finding: what a rejected or held submission
        was told, read again later. Only its provider's members (and keys) see them."""
        product = await catalog.owned_product(principal, product_id)
        return [VerdictRead.of_stored(stored, language) for stored in await compliance.history("product", product.id)]

    @post(
        "/{product_id:uuid}/delist",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.PERSON},
    )
    async def delist(
        self, product_id: FromPath[uuid.UUID], data: JSONBody[DelistRequest], principal: Caller, listings: Listings
    ) -> ProductRead:
        """Take a listed product off the catalog."""
        return product_read(await listings.delist(principal, product_id, data.reason))

    @post(
        "/{product_id:uuid}/samples",
        request_max_body_size=SAMPLE_BODY_LIMIT,
        responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def upload_sample(
        self,
        product_id: FromPath[uuid.UUID],
        data: Annotated[SampleUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        principal: Caller,
        catalog: Catalog,
        settings: NamedDependency[Settings],
    ) -> SampleRead:
        """Upload a sample (CSV or JSON lines) for the draft: stored by its sha256, rows counted; the
        listing stage scans it for direct identifiers (S4) and measures its completeness (S5)."""
        await catalog.check_sample_upload(principal, product_id)
        upload = data.file
        try:
            media_type = media_type_for(upload.filename or "", upload.content_type)
            blob = await anyio.to_thread.run_sync(
                store_content_addressed, _chunks(upload.file), settings.sample_dir, settings.max_sample_bytes
            )
            try:
                parsed = await anyio.to_thread.run_sync(parse_sample, blob.path, media_type)
            except SampleError:
                if blob.created:
                    blob.path.unlink(missing_ok=True)
                raise
        except SampleError as exc:
            raise file_problem(exc) from exc
        return SampleRead.model_validate(await catalog.attach_sample(principal, product_id, blob, parsed))


class AdminProductController(Controller):
    path = "/api/v1/admin/products"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @get("/", dependencies=PAGED, responses=problem_responses(401, 403), opt={"scope": Access.ADMIN})
    async def queue(
        self,
        admin: Caller,
        catalog: Catalog,
        page: Paging,
        status: Annotated[ProductStatus, QueryParameter(description="the products' status")] = (
            ProductStatus.UNDER_REVIEW
        ),
    ) -> Page[ProductRead]:
        """Products by status, each at its newest version, the longest waiting first: by default the
        listing queue (`under_review`), which `POST /api/v1/admin/products/{id}/decision` empties."""
        views, total = await catalog.queue(admin, status, limit=page.limit, offset=page.offset)
        return Page(items=[product_read(v) for v in views], total=total, limit=page.limit, offset=page.offset)

    @post(
        "/{product_id:uuid}/decision",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def decide(
        self, product_id: FromPath[uuid.UUID], data: JSONBody[ProductDecision], admin: Caller, listings: Listings
    ) -> ProductRead:
        """List or reject a version the listing stage held for review."""
        return product_read(await listings.decide(admin, product_id, data.decision, data.reason))


JSON_LD = "application/ld+json"


class CatalogFeedController(Controller):
    """The listed catalog as DCAT 3 JSON-LD, for harvesters (public, no authentication)."""

    path = "/api/v1/catalog.jsonld"
    tags = ["catalog"]
    dependencies = PAGED

    @get("/", media_type=JSON_LD, responses=problem_responses(), opt={"scope": Access.PUBLIC})
    async def catalog(self, page: Paging, catalog: Catalog, request: Request[Any, Any, State]) -> dict[str, Any]:
        """The listed catalog, one page at a time (`limit`, `offset`), as a DCAT 3 JSON-LD `dcat:Catalog`:
        each listed product version a `dcat:Dataset`, one `dcat:Distribution` per delivery mode, price
        plans as ODRL offers."""
        entries, total = await catalog.catalog_feed(limit=page.limit, offset=page.offset)
        return catalog_jsonld(entries, str(request.base_url), total=total, limit=page.limit, offset=page.offset)
