"""The data API of a licence: an access key's calls on its dataset, authenticated, in scope, accepted by the
delivery stage, answered from the hosted dataset in DuckDB (outside any transaction), then rate-limited per key
and per licence, metered and billed past the included calls within the monthly cap, in a short transaction
committed before the answer leaves; under privacy computing, with differential privacy, each answer spending
its epsilon of the licence's privacy budget in that same transaction."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    next_period_start,
    usage_period,
)
from marketplace.delivery.repository import CallsSoFar, DataCallRead, DeliveryRepository, MeteredCall
from marketplace.errors import DomainError, Forbidden, NotAuthenticated, NotFound, TooManyRequests
from marketplace.flows.delivery import ACCESS_KEY_MARKER, DeliveryGate
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.locks import KeyedBatches
from marketplace.kit.memo import StampedMemo
from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.orders.service import OrderService

T = TypeVar("T")
PRIVACY_COMPUTING = "privacy_computing"
METERING_TRIES = 200  # tries of a licence's metering lock without waiting: about 0.4 s of pauses in all
METERING_PAUSE_SECONDS = 0.002


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
            Message(
                "data-api.privacy-budget-exhausted",
                "this licence has spent {spent} of its privacy budget (epsilon {total}); an answer spends {epsilon}",
                spent=spent,
                total=total,
                epsilon=epsilon,
            ),
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


# An answered call waiting for its metering, and what the metering made of it.
PendingMeter = tuple[DataCall, privacy.PrivacyTerms | None]
MeterOutcome = tuple[Metered, PrivacyBudget | None]
MeteringBatches = KeyedBatches[PendingMeter, MeterOutcome]


@dataclass(frozen=True)
class CallTerms:
    """What a version declares for its data calls: the columns read as text, and the computation terms."""

    text_columns: frozenset[str]
    computation: dict[str, Any]


CallTermsMemo = StampedMemo[uuid.UUID, CallTerms]  # by licence
CALL_TERMS_KEPT = 10_000


class DataCalls:
    """The data API of a licence: an access key's calls, authorised, answered from the hosted dataset, then
    rate-limited, metered and billed in a short transaction of their own."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        metering: MeteringBatches,
        call_terms: CallTermsMemo,
        gate: DeliveryGate,
        orders: OrderService,
        catalog: CatalogService,
        ledger: LedgerService,
    ) -> None:
        self.session = session
        self.settings = settings
        self.metering = metering
        self.call_terms = call_terms
        self.gate = gate
        self.repository = DeliveryRepository(session)
        self.orders = orders
        self.catalog = catalog
        self.ledger = ledger

    async def authorise_call(self, credential: str | None, licence_id: uuid.UUID, endpoint: str) -> DataCall:
        """An access key's call on its licence's dataset: authenticated, in scope, accepted by the delivery
        stage, and not past the key's rate or the monthly cap as they stand (a read; the metering after the
        query decides, exactly). What it judges is read in one statement; the delivery stage's acceptance and
        the product's terms are reused while the rows they came from are unchanged. Ends the request's reading
        transaction: the query holds no transaction, so the metering's lock is held for its own short
        statements only, never across the query."""
        now = clock.now()
        read = await self._read_call(credential, now)
        key, licence, dataset = read.key, read.licence, read.dataset
        if key.licence_id != licence_id:
            raise NotFound(Message("delivery.licence-not-found", "licence not found"))
        if endpoint not in key.scopes:
            raise Forbidden(
                Message("data-api.endpoint-not-in-scope", "this access key may not call {endpoint}", endpoint=endpoint)
            )
        # Judged before this transaction writes anything: a refusal is recorded in a transaction of its
        # own, which must not wait behind this one (SQLite has one writer at a time).
        actor = f"access_key:{key.id}"
        await self.gate.check(licence, dataset, actor, order_status=read.order_status, facts_stamp=read.facts_stamp)
        assert dataset is not None  # the stage refuses a delivery without a registered digest (S6)
        _check_allowance(key, read.plan, read.so_far, now)
        terms = await self._terms(licence, read.facts_stamp)
        private = privacy.terms_of(terms.computation) if licence.delivery_mode == PRIVACY_COMPUTING else None
        if endpoint == "aggregate" and private is not None and read.budget is not None:
            _check_budget(read.budget, private)
        await self.session.commit()
        table = hosting.prepared_table(dataset.sha256, self.settings.hosted_dir, text_columns=terms.text_columns)
        if table is None:
            table = await self._run(
                hosting.prepare_table,
                blob_path(self.settings.dataset_dir, dataset.sha256),
                dataset.media_type,
                dataset.sha256,
                self.settings.hosted_dir,
                text_columns=terms.text_columns,
            )
        return DataCall(licence, key, endpoint, now, read.plan, table, terms.computation)

    async def _read_call(self, credential: str | None, now: datetime) -> DataCallRead:
        """The call's facts, read by the credential's key: refused unless the key exists, is not revoked and
        the credential is its secret."""
        prefix = credentials.api_key_prefix(credential or "", ACCESS_KEY_MARKER)
        read = await self.repository.data_call(prefix, _minute(now), usage_period(now)) if prefix else None
        if (
            read is None
            or credential is None
            or read.key.revoked_at is not None
            or not credentials.same_digest(read.key.key_hash, credentials.hash_api_key(credential))
        ):
            raise NotAuthenticated(Message("data-api.access-key-invalid", "missing or invalid access key"))
        return read

    async def _terms(self, licence: Licence, facts_stamp: str | None) -> CallTerms:
        """The columns the version declares as text and its computation terms: read once while its rows (in
        the facts stamp) are unchanged."""
        if facts_stamp is not None and (kept := self.call_terms.get(licence.id, facts_stamp)) is not None:
            return kept
        details = await self.catalog.version_details(licence.product_version_id)
        fields, computation = details.get("fields"), details.get("computation")
        terms = CallTerms(
            hosting.text_columns_of(fields if isinstance(fields, list) else []),
            computation if isinstance(computation, dict) else {},
        )
        if facts_stamp is not None:
            self.call_terms.put(licence.id, facts_stamp, terms)
        return terms

    async def _meter_answer(
        self, call: DataCall, private: privacy.PrivacyTerms | None
    ) -> tuple[Metered, PrivacyBudget | None]:
        """Count, meter and bill an answered call (and spend its epsilon, if private: the budget after it), in a
        short transaction committed before the answer leaves. The calls of one licence answered meanwhile in
        this process are metered in the same transaction; a licence's transactions take turns across
        processes on the licence's row, so none waits in the database on another's rows."""
        return await self.metering.submit(call.licence.id, (call, private), self._meter_batch)

    async def _meter_batch(self, batch: list[PendingMeter]) -> list[MeterOutcome | Exception]:
        """Meter the answered calls of one licence in one transaction holding its metering lock: the counts are
        read once, each call is judged in turn exactly as alone (refused past the key's rate, the monthly cap
        or the privacy budget, counting nothing), and what the answered ones add is written once."""
        counts = await self._counts_now(batch)
        outcomes = [counts.judge(call, private) for call, private in batch]
        answered = [
            (call, outcome)
            for (call, _), outcome in zip(batch, outcomes, strict=True)
            if not isinstance(outcome, Exception)
        ]
        await self._record(answered, counts)
        await self.session.commit()
        return outcomes

    async def _counts_now(self, batch: list[PendingMeter]) -> _Counts:
        """The licence's counts that the batch's calls are judged on, as committed, read under its metering lock
        (taken here, with the first call's counts)."""
        first = batch[0][0]
        licence, read = first.licence, (first.key.id, _minute(first.at), usage_period(first.at))
        turn = await self._take_metering_turn(licence.id, *read)
        counts = _Counts()
        for call, private in batch:
            window, period = _minute(call.at), usage_period(call.at)
            if (call.key.id, window) not in counts.key_minute or period not in counts.month:
                if (call.key.id, window, period) == read:
                    seen = turn
                else:
                    seen = await self.repository.calls_so_far(call.key.id, licence.id, window, period)
                counts.key_minute.setdefault((call.key.id, window), seen.key_in_minute)
                counts.licence_minute.setdefault(window, seen.licence_in_minute)
                counts.month.setdefault(period, (seen.licence_in_month, seen.billed_in_month_minor))
            if private is not None and counts.budget is None:
                budget = await self.repository.privacy_budget(licence.id)
                counts.budget = (budget.budget_micro, budget.spent_micro, budget.queries) if budget else None
                counts.budget = counts.budget or (private.budget_micro, 0, 0)
        counts.start_from_here()
        return counts

    async def _record(self, answered: list[tuple[DataCall, MeterOutcome]], counts: _Counts) -> None:
        """Write what the answered calls add: their minutes' counts, their months' calls and charges, the
        epsilon they spent, a ledger transfer per billed call and a usage event each."""
        if not answered:
            return
        licence = answered[0][0].licence
        counted = await self.repository.record_metering(
            licence.id,
            counts.added_key_minute(),
            counts.added_licence_minute(),
            counts.added_month(),
            _PlanTerms.of(answered[0][0].plan).cap_minor,
            [
                MeteredCall(call.key.id, call.endpoint, call.at, metered.call_number, metered.charge_minor)
                for call, (metered, _) in answered
            ],
        )
        assert counted, "the batch was judged within the cap under the licence's metering lock"
        if counts.budget is not None and (spent := counts.added_budget()) is not None:
            budget_micro, epsilon_micro, queries = spent
            budget = await self.repository.spend_privacy(
                licence.id, epsilon_micro, budget_micro=budget_micro, queries=queries
            )
            assert budget is not None, "the batch was judged within the budget under the licence's metering lock"
        for call, (metered, _) in answered:
            if metered.charge_minor:
                await self._bill(call, metered)

    async def _bill(self, call: DataCall, metered: Metered) -> None:
        """One ledger transfer per billed call: the buyer's receivable to the order's accrued usage."""
        licence, plan = call.licence, call.plan
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
            transfer_id(order.id, f"usage:{usage_period(call.at)}:{metered.call_number}"),
            receivable,
            accrued,
            metered.charge_minor,
            plan.currency,
            TransferKind.USAGE,
            order_id=order.id,
        )

    async def _take_metering_turn(
        self, licence_id: uuid.UUID, access_key_id: uuid.UUID, window: datetime, period: str
    ) -> CallsSoFar:
        """The licence's metering lock, and the key's and the licence's counts read once it is held: tried
        without waiting, since another process's turn lasts a few statements, and retried after a short pause;
        waited for after `METERING_TRIES`."""
        for _ in range(1, METERING_TRIES):
            seen = await self.repository.metering_turn(licence_id, access_key_id, window, period, wait=False)
            if seen is not None:
                return seen
            await asyncio.sleep(METERING_PAUSE_SECONDS)
        seen = await self.repository.metering_turn(licence_id, access_key_id, window, period, wait=True)
        assert seen is not None  # waited for
        return seen

    async def rows(
        self, call: DataCall, filters: list[hosting.Filter], limit: int, offset: int
    ) -> tuple[hosting.RowsPage, Metered]:
        """A page of rows, then the call metered: a refused query is not metered. A slice of the process's copy
        of the rows is read on the event loop: it costs less than handing it to a worker thread."""
        with _refusals():
            page = hosting.copied_page(call.table, filters, limit, offset)
        if page is None:
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
            raise QueryRefused(
                Message("data-api.no-privacy-terms", "the product declares no differential privacy terms"),
                query_error="no-privacy-terms",
            )

        def answer() -> tuple[privacy.NoisePlan, hosting.AggregateResult]:
            # one worker thread for the three steps: each hand-over to a thread costs about as much as a step
            noise = privacy.plan(metrics, private)
            return noise, privacy.release(query(metrics=noise.statistics, bounds=noise.bounds), noise)

        noise, result = await self._run(answer)
        metered, budget = await self._meter_answer(call, private)
        assert budget is not None  # spent, or refused
        return AggregateAnswer(result, PrivacySpend(noise, private.query_micro, budget), metered)

    @staticmethod
    async def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a DuckDB step in a worker thread; its refusals become 422 problems."""
        with _refusals():
            return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


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


@dataclass
class _Counts:
    """A licence's counts while a batch of its calls is judged: as read under its metering lock, then moved by
    each call answered, in turn."""

    key_minute: dict[tuple[uuid.UUID, datetime], int] = field(default_factory=dict)
    licence_minute: dict[datetime, int] = field(default_factory=dict)
    month: dict[str, tuple[int, int]] = field(default_factory=dict)  # period -> (calls, billed minor units)
    budget: tuple[int, int, int] | None = None  # (budget, spent) in millionths of epsilon, and queries
    read: tuple[Any, ...] = ()  # the counts as read, to tell what the batch added

    def start_from_here(self) -> None:
        self.read = (dict(self.key_minute), dict(self.licence_minute), dict(self.month), self.budget)

    def judge(self, call: DataCall, private: privacy.PrivacyTerms | None) -> MeterOutcome | Exception:
        """The call's number and charge (and the budget after its spend), or why it is refused: past the key's
        rate in the key's or the licence's minute, past the monthly cap, past the privacy budget."""
        window, period = _minute(call.at), usage_period(call.at)
        by_key, by_licence = self.key_minute[(call.key.id, window)] + 1, self.licence_minute[window] + 1
        if max(by_key, by_licence) > call.key.rate_limit_per_minute:
            return _rate_limited(call.key, call.at)
        terms = _PlanTerms.of(call.plan)
        calls, billed = self.month[period]
        charge = terms.unit_price_minor if calls >= terms.included_calls else 0
        if terms.cap_minor is not None and billed + charge > terms.cap_minor:
            return _cap_reached(call.plan, call.at)
        after: PrivacyBudget | None = None
        if private is not None:
            assert self.budget is not None  # read for every batch with a private answer
            total, spent, queries = self.budget
            if spent + private.query_micro > total:
                now = PrivacyBudget(licence_id=call.licence.id, budget_micro=total, spent_micro=spent, queries=queries)
                return PrivacyBudgetExhausted(now, private.query_micro)
            self.budget = (total, spent + private.query_micro, queries + 1)
            after = PrivacyBudget(
                licence_id=call.licence.id, budget_micro=total, spent_micro=self.budget[1], queries=self.budget[2]
            )
        self.key_minute[(call.key.id, window)], self.licence_minute[window] = by_key, by_licence
        self.month[period] = (calls + 1, billed + charge)
        return Metered(calls + 1, charge), after

    def added_key_minute(self) -> dict[tuple[uuid.UUID, datetime], int]:
        return {k: n - self.read[0][k] for k, n in self.key_minute.items() if n != self.read[0][k]}

    def added_licence_minute(self) -> dict[datetime, int]:
        return {k: n - self.read[1][k] for k, n in self.licence_minute.items() if n != self.read[1][k]}

    def added_month(self) -> dict[str, tuple[int, int]]:
        return {
            period: (calls - self.read[2][period][0], billed - self.read[2][period][1])
            for period, (calls, billed) in self.month.items()
            if calls != self.read[2][period][0]
        }

    def added_budget(self) -> tuple[int, int, int] | None:
        """(the budget, the epsilon spent, the queries answered) by the batch, if it spent any."""
        if self.budget is None or self.read[3] is None or self.budget == self.read[3]:
            return None
        return self.budget[0], self.budget[1] - self.read[3][1], self.budget[2] - self.read[3][2]


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A query's refusals, as 422 problems."""
    try:
        yield
    except hosting.HostingError as exc:
        raise QueryRefused(exc.message, query_error=exc.code) from exc


def _check_allowance(key: AccessKey, plan: PricePlan, seen: CallsSoFar, now: datetime) -> None:
    """Refuse before any query a call that the metering would refuse now, so that a caller past its rate or cap
    costs no engine time. Judged on counts read without a lock: concurrent calls may all pass it, and the
    guarded updates after their queries then decide exactly which are answered."""
    terms = _PlanTerms.of(plan)
    if max(seen.key_in_minute, seen.licence_in_minute) >= key.rate_limit_per_minute:
        raise _rate_limited(key, now)
    charge = terms.unit_price_minor if seen.licence_in_month >= terms.included_calls else 0
    if terms.cap_minor is not None and seen.billed_in_month_minor + charge > terms.cap_minor:
        raise _cap_reached(plan, now)


def _check_budget(budget: PrivacyBudget, terms: privacy.PrivacyTerms) -> None:
    """Refuse before any query an answer the budget cannot pay for now (a read; the spend decides)."""
    if budget.spent_micro + terms.query_micro > budget.budget_micro:
        raise PrivacyBudgetExhausted(budget, terms.query_micro)


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _rate_limited(key: AccessKey, now: datetime) -> RateLimited:
    retry = max(1, int((_minute(now) + timedelta(minutes=1) - now).total_seconds()))
    return RateLimited(
        Message(
            "data-api.rate-limited",
            "at most {rate_limit_per_minute} calls a minute per licence, whichever of its keys makes them",
            rate_limit_per_minute=key.rate_limit_per_minute,
        ),
        retry_after=retry,
    )


def _cap_reached(plan: PricePlan, now: datetime) -> UsageCapReached:
    retry = max(1, int((next_period_start(now) - now).total_seconds()))
    return UsageCapReached(
        Message(
            "data-api.usage-cap-reached",
            "this licence's calls reached the monthly cap of {monthly_cap_minor} {currency} minor units for {period}",
            monthly_cap_minor=plan.monthly_cap_minor,
            currency=plan.currency,
            period=usage_period(now),
        ),
        retry_after=retry,
    )
