"""The data API of a licence: an access key's calls on its dataset, authenticated, in scope, within the key's
rate (counted per key and per licence), accepted by the delivery stage, metered (and billed past the included
calls, within the monthly cap), then answered from the hosted dataset in DuckDB; under privacy computing, with
differential privacy, each answer spending its epsilon of the licence's privacy budget in the same transaction
as its metering."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.catalog.models import PlanKind, PricePlan
from marketplace.catalog.samples import blob_path
from marketplace.catalog.service import CatalogService
from marketplace.config import Settings
from marketplace.delivery import hosting, privacy
from marketplace.delivery.models import (
    AccessKey,
    Licence,
    PrivacyBudget,
    UsageEvent,
    next_period_start,
    usage_period,
)
from marketplace.delivery.repository import DeliveryRepository
from marketplace.errors import DomainError, Forbidden, NotAuthenticated, NotFound, TooManyRequests
from marketplace.flows.delivery import ACCESS_KEY_MARKER, DeliveryGate
from marketplace.kit import clock
from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.orders.service import OrderService

T = TypeVar("T")
PRIVACY_COMPUTING = "privacy_computing"


class UsageCapReached(TooManyRequests):
    code = "usage-cap-reached"
    title = "Monthly usage cap reached"


class RateLimited(TooManyRequests):
    code = "rate-limited"
    title = "Too many calls"


class QueryRefused(DomainError):
    status = 422
    code = "query-refused"
    title = "Query refused"


class PrivacyBudgetExhausted(Forbidden):
    """The licence has not enough privacy budget left for one more answer: it never will (the budget is the
    licence's whole life), so this is 403, not 429."""

    code = "privacy-budget-exhausted"
    title = "Privacy budget exhausted"

    def __init__(self, budget: PrivacyBudget, query_micro: int) -> None:
        total, spent = privacy.to_epsilon(budget.budget_micro), privacy.to_epsilon(budget.spent_micro)
        epsilon = privacy.to_epsilon(query_micro)
        super().__init__(
            f"this licence has spent {spent} of its privacy budget (epsilon {total}); an answer spends {epsilon}",
            budget_epsilon=total,
            spent_epsilon=spent,
            epsilon_per_query=epsilon,
        )


@dataclass(frozen=True)
class DataCall:
    """An authorised call on a hosted dataset, not yet metered: the table to query, and what the metering
    after the query needs."""

    licence: Licence
    key: AccessKey
    endpoint: str
    at: datetime
    plan: PricePlan
    table: hosting.HostedTable
    computation: dict[str, Any]


@dataclass(frozen=True)
class Metered:
    """What a call cost: its number in the licence's month and its charge."""

    call_number: int
    charge_minor: int


@dataclass(frozen=True)
class PrivacySpend:
    """What a differentially private answer cost: the noise of its metrics, the epsilon it spent, and the
    licence's privacy budget after it."""

    noise: privacy.NoisePlan
    epsilon_micro: int
    budget: PrivacyBudget


@dataclass(frozen=True)
class AggregateAnswer:
    result: hosting.AggregateResult
    privacy: PrivacySpend | None  # None: exact, under an API licence
    metered: Metered


class DataCalls:
    """The data API of a licence: an access key's calls, authorised, answered from the hosted dataset, then
    rate-limited, metered and billed in a short transaction of their own."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        gate: DeliveryGate,
        orders: OrderService,
        catalog: CatalogService,
        ledger: LedgerService,
    ) -> None:
        self.session = session
        self.settings = settings
        self.gate = gate
        self.repository = DeliveryRepository(session)
        self.orders = orders
        self.catalog = catalog
        self.ledger = ledger

    async def authorise_call(self, credential: str | None, licence_id: uuid.UUID, endpoint: str) -> DataCall:
        """An access key's call on its licence's dataset: authenticated, in scope, accepted by the delivery
        stage, and not past the key's rate or the monthly cap as they stand (a read; the metering after the
        query decides, exactly). Ends the request's reading transaction: the query holds no transaction, so
        the metering's row locks are held for its own short statements only, never across the query."""
        key = await self._access_key(credential)
        if key.licence_id != licence_id:
            raise NotFound("licence not found")
        if endpoint not in key.scopes:
            raise Forbidden(f"this access key may not call {endpoint}")
        licence = await self.repository.licence(licence_id)
        assert licence is not None
        dataset = await self.repository.dataset_of_version(licence.product_version_id)
        # Judged before this transaction writes anything: a refusal is recorded in a transaction of its
        # own, which must not wait behind this one (SQLite has one writer at a time).
        await self.gate.check(licence, dataset, f"access_key:{key.id}")
        assert dataset is not None  # the stage refuses a delivery without a registered digest (S6)
        now = clock.now()
        plan = await self.catalog.plan(licence.plan_id)
        await self._check_allowance(key, licence, plan, now)
        details = await self.catalog.version_details(licence.product_version_id)
        computation = details.get("computation")
        terms = computation if isinstance(computation, dict) else {}
        private = privacy.terms_of(terms) if licence.delivery_mode == PRIVACY_COMPUTING else None
        if endpoint == "aggregate" and private is not None:
            await self._check_budget(licence, private)
        await self.session.commit()
        fields = details.get("fields")
        table = await self._run(
            hosting.prepare_table,
            blob_path(self.settings.dataset_dir, dataset.sha256),
            dataset.media_type,
            dataset.sha256,
            self.settings.hosted_dir,
            text_columns=hosting.text_columns_of(fields if isinstance(fields, list) else []),
        )
        return DataCall(licence, key, endpoint, now, plan, table, terms)

    async def _access_key(self, credential: str | None) -> AccessKey:
        prefix = credentials.api_key_prefix(credential or "", ACCESS_KEY_MARKER)
        key = await self.repository.access_key_by_prefix(prefix) if prefix else None
        if (
            key is None
            or credential is None
            or key.revoked_at is not None
            or not credentials.same_digest(key.key_hash, credentials.hash_api_key(credential))
        ):
            raise NotAuthenticated("missing or invalid access key")
        return key

    async def _check_allowance(self, key: AccessKey, licence: Licence, plan: PricePlan, now: datetime) -> None:
        """Refuse before any query a call that the metering would refuse now, so that a caller past its rate or
        cap costs no engine time. A read, taking no lock: concurrent calls may all pass it, and the guarded
        updates after their queries then decide exactly which are answered."""
        terms = _PlanTerms.of(plan)
        seen = await self.repository.calls_so_far(key.id, licence.id, _minute(now), usage_period(now))
        if max(seen.key_in_minute, seen.licence_in_minute) >= key.rate_limit_per_minute:
            raise _rate_limited(key, now)
        charge = terms.unit_price_minor if seen.licence_in_month >= terms.included_calls else 0
        if terms.cap_minor is not None and seen.billed_in_month_minor + charge > terms.cap_minor:
            raise _cap_reached(plan, now)

    async def _meter_answer(
        self, call: DataCall, private: privacy.PrivacyTerms | None
    ) -> tuple[Metered, PrivacyBudget | None]:
        """Count, meter and bill an answered call (and spend its epsilon, if private: the budget after it) in one
        short transaction, committed here: its row locks last for these few statements, and a refusal rolls
        them all back."""
        await self._within_rate(call.key, call.at)
        metered = await self._meter(call)
        budget = await self._spend(call.licence, private) if private is not None else None
        await self.session.commit()
        return metered, budget

    async def _within_rate(self, key: AccessKey, now: datetime) -> None:
        """Count the call in its minute for the key and for the key's licence, and refuse it past the key's rate
        in either. The licence's count spans all its keys, so a rotated key gets no fresh minute. A refused
        call's counts roll back with its request."""
        window = _minute(now)
        # The key's row, then the licence's: every call locks them in this order, so two never deadlock.
        by_key = await self.repository.count_call(key.id, window)
        by_licence = await self.repository.count_licence_call(key.licence_id, window)
        if max(by_key, by_licence) > key.rate_limit_per_minute:
            raise _rate_limited(key, now)

    async def _meter(self, call: DataCall) -> Metered:
        licence, plan, now = call.licence, call.plan, call.at
        terms = _PlanTerms.of(plan)
        period = usage_period(now)
        counted = await self.repository.meter_call(
            licence.id,
            period,
            included_calls=terms.included_calls,
            unit_price_minor=terms.unit_price_minor,
            cap_minor=terms.cap_minor,
        )
        if counted is None:
            raise _cap_reached(plan, now)
        call_number, charge = counted
        if charge:
            order = await self.orders.get(licence.order_id)
            receivable = await self.ledger.account(
                AccountCode.BUYER_RECEIVABLE, plan.currency, organization_id=licence.buyer_organization_id
            )
            accrued = await self.ledger.account(
                AccountCode.USAGE_ACCRUED,
                plan.currency,
                organization_id=licence.provider_organization_id,
                order_id=order.id,
            )
            await self.ledger.post(
                transfer_id(order.id, f"usage:{period}:{call_number}"),
                receivable,
                accrued,
                charge,
                plan.currency,
                TransferKind.USAGE,
                order_id=order.id,
            )
        await self.repository.add_usage_event(
            UsageEvent(
                licence_id=licence.id,
                access_key_id=call.key.id,
                endpoint=call.endpoint,
                period=period,
                call_number=call_number,
                charge_minor=charge,
                at=now,
            )
        )
        return Metered(call_number, charge)

    async def rows(
        self, call: DataCall, filters: list[hosting.Filter], limit: int, offset: int
    ) -> tuple[hosting.RowsPage, Metered]:
        """A page of rows, then the call metered: a refused query is not metered."""
        page = await self._run(hosting.read_rows, call.table, filters=filters, limit=limit, offset=offset)
        metered, _ = await self._meter_answer(call, None)
        return page, metered

    async def aggregate(
        self,
        call: DataCall,
        group_by: list[str],
        metrics: list[hosting.Metric],
        filters: list[hosting.Filter],
    ) -> AggregateAnswer:
        """Aggregates of the allowed columns, groups under k suppressed. Under privacy computing every metric
        is differentially private: the engine's exact, clamped answer gets OpenDP's noise, and the answer
        spends the product's epsilon per query of the licence's budget in the transaction that meters it
        (refused, spending nothing, when too little is left). The noisy answer is made before the spend and
        leaves only after it is committed. An API licence reads the rows themselves: its aggregates are exact."""
        terms = call.computation
        allowed = hosting.AllowedColumns(
            group_by=frozenset(terms.get("group_by", [])),
            filter=frozenset(terms.get("filter", [])),
            measure=frozenset(terms.get("measure", [])),
        )
        # The product may ask for larger groups than the platform's minimum, never smaller.
        k = max(self.settings.aggregate_min_group_size, int(terms.get("min_group_size") or 0))
        query = functools.partial(
            hosting.aggregate, call.table, group_by=group_by, filters=filters, allowed=allowed, min_group_size=k
        )
        if call.licence.delivery_mode != PRIVACY_COMPUTING:
            result = await self._run(query, metrics=metrics)
            metered, _ = await self._meter_answer(call, None)
            return AggregateAnswer(result, None, metered)
        private = privacy.terms_of(terms)
        if private is None:  # R3 lists no privacy-computing product without them; fail closed all the same
            raise QueryRefused("the product declares no differential privacy terms", query_error="no-privacy-terms")
        noise = await self._run(privacy.plan, metrics, private)
        exact = await self._run(query, metrics=noise.statistics, bounds=noise.bounds)
        result = await self._run(privacy.release, exact, noise)
        metered, budget = await self._meter_answer(call, private)
        assert budget is not None  # spent, or refused
        return AggregateAnswer(result, PrivacySpend(noise, private.query_micro, budget), metered)

    async def _check_budget(self, licence: Licence, terms: privacy.PrivacyTerms) -> None:
        """Refuse before any query an answer the budget cannot pay for now (a read; the spend decides)."""
        budget = await self.repository.privacy_budget(licence.id)
        if budget is not None and budget.spent_micro + terms.query_micro > budget.budget_micro:
            raise PrivacyBudgetExhausted(budget, terms.query_micro)

    async def _spend(self, licence: Licence, terms: privacy.PrivacyTerms) -> PrivacyBudget:
        """Spend a query's epsilon of the licence's budget, in the call's metering transaction: refused, and
        the metering rolled back with it, when too little is left."""
        budget = await self.repository.spend_privacy(licence.id, terms.query_micro, budget_micro=terms.budget_micro)
        if budget is None:
            current = await self.repository.privacy_budget(licence.id)
            assert current is not None  # spend_privacy created it
            raise PrivacyBudgetExhausted(current, terms.query_micro)
        return budget

    @staticmethod
    async def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a DuckDB step in a worker thread; its refusals become 422 problems."""
        try:
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
        except hosting.HostingError as exc:
            raise QueryRefused(str(exc), query_error=exc.code) from exc


@dataclass(frozen=True)
class _PlanTerms:
    """What metering a plan's calls takes: nothing is billed but a metered plan's calls past the included ones."""

    included_calls: int
    unit_price_minor: int
    cap_minor: int | None

    @classmethod
    def of(cls, plan: PricePlan) -> _PlanTerms:
        if plan.kind != PlanKind.METERED:
            return cls(0, 0, None)
        return cls(plan.included_calls or 0, plan.unit_price_minor or 0, plan.monthly_cap_minor)


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _rate_limited(key: AccessKey, now: datetime) -> RateLimited:
    retry = max(1, int((_minute(now) + timedelta(minutes=1) - now).total_seconds()))
    return RateLimited(
        f"at most {key.rate_limit_per_minute} calls a minute per licence, whichever of its keys makes them",
        retry_after=retry,
    )


def _cap_reached(plan: PricePlan, now: datetime) -> UsageCapReached:
    retry = max(1, int((next_period_start(now) - now).total_seconds()))
    return UsageCapReached(
        f"this licence's calls reached the monthly cap of {plan.monthly_cap_minor} {plan.currency} minor units "
        f"for {usage_period(now)}",
        retry_after=retry,
    )
