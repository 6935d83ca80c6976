"""HTTP endpoints of delivery: hosting datasets, the delivery of an order, signed downloads, licences,
and the metered data API (rows and privacy-preserving aggregates)."""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, get_args

import anyio.from_thread
import anyio.to_thread
from litestar import Controller, Request, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import File

from marketplace.accounts.models import Scope
from marketplace.api.catalog import Catalog, Listings, file_problem, product_read
from marketplace.catalog.samples import (
    SampleError,
    StoredBlob,
    normalise_media_type,
    parse_sample,
    store_content_addressed,
)
from marketplace.catalog.schemas import ProductRead
from marketplace.config import Settings
from marketplace.delivery import hosting
from marketplace.delivery.models import AccessKey, Dataset, Licence
from marketplace.delivery.privacy import to_epsilon
from marketplace.delivery.schemas import (
    AccessKeyCreated,
    AggregateRead,
    AggregateRequest,
    DatasetRead,
    DeliveryRead,
    LicenceDecision,
    LicencePage,
    LicenceRead,
    MetricNoiseRead,
    NoiseRead,
    PrivacyRead,
    ReceiptList,
    ReceiptRead,
    RegradeRequest,
    RowsRead,
    UsageRead,
)
from marketplace.errors import Unprocessable, UnsupportedMediaType
from marketplace.flows.data_calls import DataCalls, PrivacySpend
from marketplace.flows.delivery import Delivery
from marketplace.kit.i18n import Message
from marketplace.web.dependencies import DbSession
from marketplace.web.pagination import PAGED, Paging
from marketplace.web.principal import ADMIN_ONLY, AUTHENTICATED, SECURITY, Access, Caller
from marketplace.web.problems import NO_STORE, problem_responses

# The route's own ceiling; the dataset limit that applies is MAX_DATASET_BYTES, checked while streaming.
DATASET_BODY_LIMIT = 1 << 40
# Columns (CSV header cells, distinct JSON keys) a dataset may have: bounds what the upload check keeps in memory.
MAX_DATASET_COLUMNS = 10_000
DOWNLOAD_CHUNK_BYTES = 1 << 20
MAX_ROWS_PAGE = 1000
WhereClauses = Annotated[
    list[str] | None,
    QueryParameter(
        description="repeatable `column:op:value` (op: eq, ne, lt, le, gt, ge, in); the value is read as JSON "
        'when it parses (a number, true, "text"), else as text; `in` takes a JSON list',
    ),
]


Deliveries = NamedDependency[Delivery]
Calls = NamedDependency[DataCalls]


def licence_read(licence: Licence) -> LicenceRead:
    return LicenceRead.model_validate(licence)


def _body_chunks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The request body as a blocking iterator, for the storage code running in a worker thread."""

    async def next_chunk() -> bytes | None:
        return await anext(stream, None)

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk


async def _stored_dataset(chunks: Iterator[bytes], media_type: str, settings: Settings) -> StoredBlob:
    """The uploaded dataset, stored by its sha256 once it reads through as CSV or JSON lines. A refused file is
    removed again, unless the same content was stored before this upload."""
    blob = await anyio.to_thread.run_sync(
        store_content_addressed, chunks, settings.dataset_dir, settings.max_dataset_bytes
    )
    try:
        if blob.size_bytes == 0:
            raise Unprocessable(Message("delivery.dataset-empty", "the dataset is empty"))
        # A binary file, or one that is not CSV or JSON lines throughout, is refused now rather than at a buyer's call.
        await anyio.to_thread.run_sync(
            functools.partial(parse_sample, blob.path, media_type, head_rows=0, max_columns=MAX_DATASET_COLUMNS)
        )
    except (SampleError, Unprocessable):
        if blob.created:
            blob.path.unlink(missing_ok=True)
        raise
    return blob


FILTER_OPS: dict[str, hosting.FilterOp] = {op: op for op in get_args(hosting.FilterOp)}


def parse_where(clauses: list[str] | None) -> list[hosting.Filter]:
    filters = []
    for clause in clauses or []:
        column, op, raw = [*clause.split(":", 2), "", ""][:3]
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        operator = FILTER_OPS.get(op)
        if operator is None or not column:
            raise Unprocessable(
                Message("delivery.filter-malformed", "a filter is column:op:value, got {clause!r}", clause=clause),
                field="where",
            )
        if (operator == "in") != isinstance(value, list) or isinstance(value, dict):
            raise Unprocessable(
                Message(
                    "delivery.filter-list-misplaced",
                    "`in` takes a JSON list and only `in` does: {clause!r}",
                    clause=clause,
                ),
                field="where",
            )
        filters.append(hosting.Filter(column=column, op=operator, value=value))
    return filters


@dataclass
class DatasetUploadOperation(Operation):
    """The upload's body is the file itself (the handler streams it), which Litestar cannot infer from the
    handler's signature: declared here so a generated client sends it."""

    def __post_init__(self) -> None:
        file = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        self.request_body = RequestBody(
            required=True,
            description="the whole dataset: CSV with a header row, or JSON lines (one object a line), UTF-8",
            content={media_type: OpenAPIMediaType(schema=file) for media_type in ("text/csv", "application/x-ndjson")},
        )


class DatasetController(Controller):
    path = "/api/v1/products"
    tags = ["delivery"]
    dependencies = AUTHENTICATED

    @put(
        "/{product_id:uuid}/dataset",
        status_code=201,
        request_max_body_size=DATASET_BODY_LIMIT,
        operation_class=DatasetUploadOperation,
        responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
        opt={"scope": Scope.CATALOG_WRITE},
    )
    async def upload(
        self,
        product_id: FromPath[uuid.UUID],
        principal: Caller,
        delivery: Deliveries,
        catalog: Catalog,
        settings: NamedDependency[Settings],
        request: Request[Any, Any, State],
        version: Annotated[int | None, QueryParameter(ge=1, le=1_000_000)] = None,
    ) -> DatasetRead:
        """Upload the full dataset of a version (default: the newest) as the raw body, `text/csv` with a
        header row or `application/x-ndjson`: streamed to storage by its sha256 (never held in memory), then
        read through as UTF-8 CSV or JSON objects (422 with `dataset_error` and `line` when it is not, and
        nothing is kept). Its digest becomes the version's registered content digest, which every delivery
        is checked against, and a version offering any delivery mode lists and sells only once it is hosted
        (R1)."""
        target = await catalog.dataset_version(principal, product_id, version)
        media_type = normalise_media_type(request.headers.get("content-type"))
        if media_type is None:
            raise UnsupportedMediaType(
                Message("delivery.dataset-media-type", "a dataset is text/csv or application/x-ndjson")
            )
        try:
            blob = await _stored_dataset(_body_chunks(request.stream()), media_type, settings)
        except SampleError as exc:
            raise file_problem(exc, "dataset_error") from exc
        dataset: Dataset = await delivery.host_dataset(principal, target, blob, media_type)
        return DatasetRead(
            product_id=product_id,
            version=target.version,
            sha256=dataset.sha256,
            size_bytes=dataset.size_bytes,
            media_type=dataset.media_type,
            created_at=dataset.created_at,
        )


class OrderDeliveryController(Controller):
    path = "/api/v1/orders"
    tags = ["delivery"]
    dependencies = AUTHENTICATED

    @get(
        "/{order_id:uuid}/delivery",
        cache_control=NO_STORE,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.DELIVERY_READ},
    )
    async def delivery(
        self, order_id: FromPath[uuid.UUID], principal: Caller, delivery: Deliveries, request: Request[Any, Any, State]
    ) -> DeliveryRead:
        """Take delivery of a paid order, after the delivery stage accepts it now: a download link signed
        for the caller (valid at most 15 minutes), or an API access key for the licence (shown once)."""
        access = await delivery.open(principal, order_id)
        base = str(request.base_url).rstrip("/")
        data_base = f"{base}/api/v1/data/{access.licence.id}"
        return DeliveryRead(
            mode=access.mode,
            licence_id=access.licence.id,
            sha256=access.sha256,
            size_bytes=access.size_bytes,
            expires_at=access.expires_at,
            download_url=f"{base}{access.download_path}" if access.download_path else None,
            api_key=access.api_key,
            api_key_prefix=access.api_key_prefix,
            rows_url=f"{data_base}/rows" if access.mode == "api" else None,
            aggregate_url=f"{data_base}/aggregate" if access.mode != "file" else None,
        )

    @get("/{order_id:uuid}/receipts", responses=problem_responses(401, 403, 404), opt={"scope": Scope.DELIVERY_READ})
    async def receipts(self, order_id: FromPath[uuid.UUID], principal: Caller, delivery: Deliveries) -> ReceiptList:
        """What was delivered under the order's licence, with its digest and time."""
        items = [ReceiptRead.model_validate(r) for r in await delivery.receipts(principal, order_id)]
        return ReceiptList(items=items, total=len(items))


# Optional in the document so that a link missing a part gets the same 403 as any other bad link (no 400
# that would tell which part is missing); `verify` requires them all.
LinkPart = Annotated[str | None, QueryParameter(description="a part of the signed link, as given")]


class DownloadController(Controller):
    path = "/api/v1/downloads"
    tags = ["delivery"]

    @get(
        "/{licence_id:uuid}",
        responses=problem_responses(403, 404),
        media_type="application/octet-stream",
        opt={"scope": Access.PUBLIC},
    )
    async def download(
        self,
        licence_id: FromPath[uuid.UUID],
        delivery: Deliveries,
        db_session: DbSession,
        request: Request[Any, Any, State],
        user: LinkPart = None,
        sha256: LinkPart = None,
        expires: LinkPart = None,
        kid: LinkPart = None,
        sig: LinkPart = None,
    ) -> File:
        """Download a licence's dataset through a signed link (`GET /orders/{id}/delivery` makes them; use
        its query as given: `user`, `sha256`, `expires`, `kid`, `sig`). The link, the licence, the person's
        membership and the delivery stage are checked now, the download is audited, and the file is streamed
        with its sha256 (`Repr-Digest`). Any link we did not make, whatever is wrong with it, gets one 403."""
        given = {"user": user, "sha256": sha256, "expires": expires, "kid": kid, "sig": sig}
        params = {name: value for name, value in given.items() if value is not None}
        if len(params) != len(list(request.query_params.multi_items())):
            params = {}  # a repeated or unknown parameter is not a link we made
        file = await delivery.download(licence_id, params)
        # The receipt and the audit entry are kept before the first byte leaves, and the connection goes
        # back to the pool for the length of the transfer.
        await db_session.commit()
        digest = base64.b64encode(bytes.fromhex(file.sha256)).decode()
        extension = "csv" if file.media_type == "text/csv" else "jsonl"
        return File(
            path=file.path,
            filename=f"{file.sha256}.{extension}",
            media_type=file.media_type,
            chunk_size=DOWNLOAD_CHUNK_BYTES,
            headers={"Repr-Digest": f"sha-256=:{digest}:", "X-Content-SHA256": file.sha256},
        )


class LicenceController(Controller):
    path = "/api/v1/licences"
    tags = ["delivery"]
    dependencies = {**AUTHENTICATED, **PAGED}

    @get("/", responses=problem_responses(401, 403), opt={"scope": Scope.LICENCES_READ})
    async def list_licences(self, principal: Caller, delivery: Deliveries, page: Paging) -> LicencePage:
        """Licences the caller's organisations bought or granted (administrators: all)."""
        rows, total = await delivery.licences(principal, limit=page.limit, offset=page.offset)
        return LicencePage(items=[licence_read(r) for r in rows], total=total)

    @get("/{licence_id:uuid}", responses=problem_responses(401, 403, 404), opt={"scope": Scope.LICENCES_READ})
    async def get_licence(
        self, licence_id: FromPath[uuid.UUID], principal: Caller, delivery: Deliveries
    ) -> LicenceRead:
        """A licence of the caller's organisation (as buyer or provider): its terms, term and status."""
        return licence_read(await delivery.licence(principal, licence_id))

    @post(
        "/{licence_id:uuid}/access-keys",
        status_code=201,
        cache_control=NO_STORE,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Scope.LICENCES_WRITE},
    )
    async def rotate_key(
        self, licence_id: FromPath[uuid.UUID], principal: Caller, delivery: Deliveries
    ) -> AccessKeyCreated:
        """A new API access key for the licence (shown once); the previous one stops working at once."""
        key: AccessKey
        key, secret = await delivery.rotate_access_key(principal, licence_id)
        return AccessKeyCreated(
            id=key.id,
            licence_id=key.licence_id,
            key=secret,
            prefix=key.prefix,
            scopes=key.scopes,
            rate_limit_per_minute=key.rate_limit_per_minute,
        )

    @get("/{licence_id:uuid}/usage", responses=problem_responses(401, 403, 404), opt={"scope": Scope.LICENCES_READ})
    async def usage(
        self,
        licence_id: FromPath[uuid.UUID],
        principal: Caller,
        delivery: Deliveries,
        period: Annotated[str | None, QueryParameter(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    ) -> UsageRead:
        """The licence's metered calls in a month (default: this one) and what they were billed."""
        licence, month, usage = await delivery.usage(principal, licence_id, period)
        return UsageRead(
            licence_id=licence.id,
            period=month,
            calls=usage.calls if usage else 0,
            billed_minor=usage.billed_minor if usage else 0,
            cap_minor=usage.cap_minor if usage else None,
        )


class DataController(Controller):
    """The data API of a licence, called with its access key (`Authorization: Bearer dxk_...`)."""

    path = "/api/v1/data"
    tags = ["delivery"]
    security = SECURITY

    @get("/{licence_id:uuid}/rows", responses=problem_responses(401, 403, 404, 422, 429), opt={"scope": Access.PUBLIC})
    async def rows(
        self,
        licence_id: FromPath[uuid.UUID],
        data_calls: Calls,
        request: Request[Any, Any, State],
        where: WhereClauses = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_ROWS_PAGE)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=10**12)] = 0,
    ) -> RowsRead:
        """Rows of the hosted dataset (API delivery only), filtered and paged in file order. Every call is
        metered; a metered plan bills the calls past its included ones, up to its monthly cap."""
        call = await data_calls.authorise_call(_credential(request), licence_id, "rows")
        filters = parse_where(where)  # a refused filter is refused before the call is metered
        page, metered = await data_calls.rows(call, filters, limit, offset)
        return RowsRead(
            columns=list(page.columns),
            rows=page.rows,
            next_offset=page.next_offset,
            call_number=metered.call_number,
            charge_minor=metered.charge_minor,
        )

    @post(
        "/{licence_id:uuid}/aggregate",
        status_code=200,
        responses=problem_responses(401, 403, 404, 422, 429),
        opt={"scope": Access.PUBLIC},
    )
    async def aggregate(
        self,
        licence_id: FromPath[uuid.UUID],
        data: JSONBody[AggregateRequest],
        data_calls: Calls,
        request: Request[Any, Any, State],
    ) -> AggregateRead:
        """Aggregates over the hosted dataset (count, sum, avg, min, max, grouped by the columns the product
        allows, with filters on the columns it allows); raw rows never leave, and every group smaller than
        the minimum group size is suppressed. Under privacy computing the answer is differentially private
        (min and max are refused) and spends the product's epsilon per query of the licence's budget: 403
        `privacy-budget-exhausted` when too little is left. Metered like `rows`."""
        call = await data_calls.authorise_call(_credential(request), licence_id, "aggregate")
        answer = await data_calls.aggregate(
            call,
            list(data.group_by),
            [hosting.Metric(fn=m.fn, column=m.column) for m in data.metrics],
            [hosting.Filter(column=f.column, op=f.op, value=f.value) for f in data.filters],
        )
        result = answer.result
        return AggregateRead(
            columns=list(result.columns),
            groups=result.groups,
            suppressed_groups=result.suppressed_groups,
            min_group_size=result.min_group_size,
            privacy=_privacy_read(answer.privacy) if answer.privacy else None,
            call_number=answer.metered.call_number,
            charge_minor=answer.metered.charge_minor,
        )


def _privacy_read(spend: PrivacySpend) -> PrivacyRead:
    budget = spend.budget
    return PrivacyRead(
        epsilon_spent=to_epsilon(spend.epsilon_micro),
        budget=to_epsilon(budget.budget_micro),
        budget_spent=to_epsilon(budget.spent_micro),
        budget_left=to_epsilon(budget.budget_micro - budget.spent_micro),
        metrics=[
            MetricNoiseRead(
                metric=metric.metric.name,
                epsilon=metric.epsilon,
                noise=[
                    NoiseRead(
                        statistic=noise.statistic.name,
                        mechanism=noise.mechanism,
                        epsilon=noise.epsilon,
                        sensitivity=noise.sensitivity,
                        scale=noise.scale,
                        error_95=noise.error,
                    )
                    for noise in metric.noise
                ],
            )
            for metric in spend.noise.metrics
        ],
    )


def _credential(request: Request[Any, Any, State]) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


class AdminDeliveryController(Controller):
    path = "/api/v1/admin"
    tags = ["administration"]
    dependencies = ADMIN_ONLY

    @post(
        "/licences/{licence_id:uuid}/decision",
        status_code=200,
        responses=problem_responses(401, 403, 404, 409),
        opt={"scope": Access.ADMIN},
    )
    async def decide_licence(
        self, licence_id: FromPath[uuid.UUID], data: JSONBody[LicenceDecision], admin: Caller, delivery: Deliveries
    ) -> LicenceRead:
        """Reinstate or revoke a licence the delivery stage suspended for review."""
        return licence_read(await delivery.decide_licence(admin, licence_id, data.decision, data.reason))

    @post(
        "/products/{product_id:uuid}/grade",
        status_code=200,
        responses=problem_responses(401, 403, 404),
        opt={"scope": Access.ADMIN},
    )
    async def regrade(
        self, product_id: FromPath[uuid.UUID], data: JSONBody[RegradeRequest], admin: Caller, listings: Listings
    ) -> ProductRead:
        """Set the data grade of every version of a product (an authority's classification decision);
        licences sold under the old grade are judged under the new one at their next delivery, and core
        data is delisted."""
        return product_read(await listings.regrade(admin, product_id, data.grade, data.reason))
