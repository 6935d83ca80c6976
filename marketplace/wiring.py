"""The one place services and flows are built. `Runtime` holds what a process makes once (settings, the
database's sessions, the rulebook, the payment gateway, signing keys); `Services` builds, for one
transaction's session, each service and flow on first use, handing every one the peers it needs.

The web layer exposes each of them as a Litestar dependency (`marketplace.web.dependencies`); the
command line, the demo, the benchmarks and the tests build them the same way."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace.accounts.auth import AuthService, LoginPolicy
from marketplace.accounts.members import MembershipService
from marketplace.accounts.service import AccountService
from marketplace.accounts.sessions import ConsoleSessions, SessionPolicy
from marketplace.accounts.tokens import TokenKeyring
from marketplace.audit.service import AuditService
from marketplace.audit.transparency import TransparencyLog
from marketplace.billing.service import BillingService
from marketplace.catalog.listing import ListingService
from marketplace.catalog.plans import PlanService
from marketplace.catalog.service import CatalogService
from marketplace.certificates.service import CertificateService
from marketplace.compliance.rulebook import Rulebook, load_rulebook
from marketplace.compliance.service import JUDGEMENT_REUSE_SECONDS, JUDGEMENTS_KEPT, ComplianceService, Judgements
from marketplace.config import Settings
from marketplace.db import SessionMaker, create_engine, create_sessionmaker, unit_of_work
from marketplace.delivery.licences import LicenceService
from marketplace.delivery.links import DownloadKeyring
from marketplace.events.service import EventService
from marketplace.events.webhooks import WebhookService
from marketplace.flows.admission import Admission
from marketplace.flows.billing import RecurringBilling
from marketplace.flows.books import Books
from marketplace.flows.data_calls import CALL_TERMS_KEPT, CallTermsMemo, DataCalls, MeteringBatches
from marketplace.flows.delivery import VERDICT_REUSE_SECONDS, VERDICTS_KEPT, Delivery, DeliveryGate, DeliveryVerdicts
from marketplace.flows.disputes import Disputes
from marketplace.flows.event_feed import EventFeed
from marketplace.flows.facts import Facts
from marketplace.flows.listing import Listing
from marketplace.flows.payment import Payment
from marketplace.flows.payouts import Payouts
from marketplace.flows.refunds import Refunds
from marketplace.flows.registration import Registration
from marketplace.flows.rules_impact import RulesImpact
from marketplace.flows.settlement import Settlement
from marketplace.flows.trading import LISTINGS_KEPT, LISTINGS_REUSE_SECONDS, Listings, Trading
from marketplace.flows.webhook_endpoints import WebhookEndpoints
from marketplace.kit.jws import Notary
from marketplace.kit.locks import KeyedBatches
from marketplace.kit.memo import StampedMemo
from marketplace.kit.sealed import Sealer
from marketplace.kit.secrets import load_or_create
from marketplace.ledger.service import LedgerService
from marketplace.orders.repository import STORED_PARTS_KEPT, StoredParts
from marketplace.orders.service import OrderService
from marketplace.orders.transitions import OrderTransitions
from marketplace.payments.gateway import PaymentGateway
from marketplace.payments.gateways import gateway_from_settings
from marketplace.payments.service import PaymentsService


@dataclass(frozen=True)
class Runtime:
    """What one process makes once and every request shares."""

    settings: Settings
    engine: AsyncEngine
    db_sessions: SessionMaker
    rulebook: Rulebook
    gateway: PaymentGateway
    token_keyring: TokenKeyring
    notary: Notary
    download_keyring: DownloadKeyring
    secret_key: bytes
    # the metering of a licence's data calls, in this process one transaction at a time, each metering every
    # call answered by then (the calls await it here, holding no database connection)
    metering: MeteringBatches = field(default_factory=KeyedBatches)
    # the delivery stage's acceptances of data calls, and the products' terms they are answered under, reused
    # while the rows they were read from are unchanged
    delivery_verdicts: DeliveryVerdicts = field(
        default_factory=lambda: StampedMemo(VERDICTS_KEPT, VERDICT_REUSE_SECONDS)
    )
    call_terms: CallTermsMemo = field(default_factory=lambda: StampedMemo(CALL_TERMS_KEPT, VERDICT_REUSE_SECONDS))
    # the listings orders are placed on, reused while their rows are unchanged
    listings: Listings = field(default_factory=lambda: StampedMemo(LISTINGS_KEPT, LISTINGS_REUSE_SECONDS))
    # the rulebook's findings on facts judged today, reused for the same facts
    judgements: Judgements = field(default_factory=lambda: StampedMemo(JUDGEMENTS_KEPT, JUDGEMENT_REUSE_SECONDS))
    # the snapshot parts known to be stored in this database (never deleted: kept as long as there is room)
    stored_parts: StoredParts = field(default_factory=lambda: StampedMemo(STORED_PARTS_KEPT, math.inf))

    @classmethod
    def start(cls, settings: Settings, *, rulebook: Rulebook | None = None) -> Runtime:
        """Everything a process needs; a misconfigured rulebook, gateway or key stops it here."""
        token_keyring = TokenKeyring.from_settings(settings)
        notary = Notary.load(settings.notary_key, settings.retired_notary_keys)
        if shared := set(notary.kids) & set(token_keyring.verification_keys):
            raise ValueError(f"notary keys are never access-token keys, but {', '.join(sorted(shared))} is both")
        engine = create_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            db_sessions=create_sessionmaker(engine),
            rulebook=rulebook or load_rulebook(settings.rulebook_path),
            gateway=gateway_from_settings(settings),
            token_keyring=token_keyring,
            notary=notary,
            download_keyring=DownloadKeyring.load(settings.download_key_dir, settings.download_key_id),
            secret_key=load_or_create(settings.secret_key_path, lambda: secrets.token_bytes(32)),
        )

    def jwks(self) -> dict[str, Any]:
        """The keys that verify this service's signatures (RFC 7517): its access tokens' keys, and the notary's,
        current and retired, which sign tree heads and trade certificates (never an access token)."""
        return {"keys": [*self.token_keyring.jwks()["keys"], *self.notary.jwks()["keys"]]}

    async def stop(self) -> None:
        await self.gateway.aclose()
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Services]:
        """The services of one transaction: committed when the block ends, rolled back when it raises."""
        async with unit_of_work(self.db_sessions) as session:
            yield Services(session, self)


class Services:
    """Every service and flow of one session, each built on first use with the peers it needs."""

    def __init__(self, session: AsyncSession, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime
        self.settings = runtime.settings

    # domain services

    @cached_property
    def audit(self) -> AuditService:
        return AuditService(self.session)

    @cached_property
    def transparency(self) -> TransparencyLog:
        return TransparencyLog(self.session, self.runtime.notary)

    @cached_property
    def events(self) -> EventService:
        return EventService(self.session)

    @cached_property
    def webhooks(self) -> WebhookService:
        sealer = Sealer(self.runtime.secret_key, "webhook-secret")
        return WebhookService(self.session, self.settings, sealer, self.events)

    @cached_property
    def compliance(self) -> ComplianceService:
        return ComplianceService(self.session, self.runtime.rulebook, self.audit, self.runtime.judgements)

    @cached_property
    def auth(self) -> AuthService:
        settings = self.settings
        policy = LoginPolicy(
            window_seconds=settings.login_failure_window_seconds,
            max_per_account=settings.login_max_failures_per_account,
            max_per_address=settings.login_max_failures_per_address,
            registration_window_seconds=settings.registration_window_seconds,
            registrations_per_address=settings.registration_max_per_address,
        )
        runtime = self.runtime
        return AuthService(
            self.session,
            keyring=runtime.token_keyring,
            sessions=runtime.db_sessions,
            secret_key=runtime.secret_key,
            policy=policy,
        )

    @cached_property
    def console_sessions(self) -> ConsoleSessions:
        settings = self.settings
        policy = SessionPolicy(settings.console_session_idle_seconds, settings.console_session_max_seconds)
        return ConsoleSessions(self.session, policy)

    @cached_property
    def accounts(self) -> AccountService:
        return AccountService(self.session, self.audit, self.events)

    @cached_property
    def memberships(self) -> MembershipService:
        return MembershipService(self.session, self.accounts, self.audit)

    @cached_property
    def catalog(self) -> CatalogService:
        return CatalogService(self.session, self.accounts, self.audit)

    @cached_property
    def plans(self) -> PlanService:
        return PlanService(self.session, self.catalog, self.audit)

    @cached_property
    def listings(self) -> ListingService:
        return ListingService(self.session, self.catalog, self.accounts, self.audit, self.events)

    @cached_property
    def ledger(self) -> LedgerService:
        return LedgerService(self.session)

    @cached_property
    def payments(self) -> PaymentsService:
        return PaymentsService(self.session, self.runtime.gateway, self.accounts, self.audit)

    @cached_property
    def orders(self) -> OrderService:
        return OrderService(
            self.session,
            self.settings,
            self.accounts,
            self.compliance,
            self.audit,
            self.events,
            self.runtime.stored_parts,
        )

    @cached_property
    def certificates(self) -> CertificateService:
        retry = self.settings.audit_sequencer_interval_seconds
        return CertificateService(self.session, self.runtime.notary, self.orders, self.transparency, retry)

    @cached_property
    def transitions(self) -> OrderTransitions:
        return OrderTransitions(self.session, self.settings, self.orders, self.audit)

    @cached_property
    def licences(self) -> LicenceService:
        return LicenceService(self.session, self.audit, self.events)

    @cached_property
    def billing(self) -> BillingService:
        return BillingService(self.session, self.accounts, self.audit, self.events)

    # flows

    @cached_property
    def facts(self) -> Facts:
        return Facts(self.accounts, self.catalog)

    @cached_property
    def event_feed(self) -> EventFeed:
        return EventFeed(self.accounts, self.events)

    @cached_property
    def webhook_endpoints(self) -> WebhookEndpoints:
        return WebhookEndpoints(self.accounts, self.webhooks, self.audit)

    @cached_property
    def registration(self) -> Registration:
        return Registration(self.auth, self.accounts)

    @cached_property
    def admission(self) -> Admission:
        return Admission(self.accounts, self.compliance)

    @cached_property
    def listing(self) -> Listing:
        return Listing(self.catalog, self.listings, self.compliance, self.facts)

    @cached_property
    def trading(self) -> Trading:
        return Trading(
            self.accounts,
            self.catalog,
            self.compliance,
            self.facts,
            self.orders,
            self.transitions,
            self.runtime.listings,
        )

    @cached_property
    def payment(self) -> Payment:
        return Payment(
            self.orders,
            self.transitions,
            self.catalog,
            self.ledger,
            self.licences,
            self.payments,
            self.runtime.gateway,
            self.audit,
        )

    @cached_property
    def disputes(self) -> Disputes:
        return Disputes(self.orders, self.transitions, self.catalog, self.ledger, self.licences, self.runtime.gateway)

    @cached_property
    def refunds(self) -> Refunds:
        return Refunds(self.orders, self.transitions, self.catalog, self.ledger, self.licences, self.runtime.gateway)

    @cached_property
    def payouts(self) -> Payouts:
        return Payouts(
            self.session, self.runtime.gateway, self.transitions, self.ledger, self.accounts, self.audit, self.events
        )

    @cached_property
    def recurring_billing(self) -> RecurringBilling:
        return RecurringBilling(
            self.session,
            self.settings,
            self.runtime.gateway,
            self.billing,
            self.licences,
            self.ledger,
            self.payments,
        )

    @cached_property
    def settlement(self) -> Settlement:
        return Settlement(
            self.session,
            self.settings,
            self.transitions,
            self.catalog,
            self.ledger,
            self.payouts,
            self.recurring_billing,
        )

    @cached_property
    def books(self) -> Books:
        return Books(self.session, self.accounts, self.orders, self.ledger, self.billing)

    @cached_property
    def rules_impact(self) -> RulesImpact:
        return RulesImpact(self.accounts, self.orders, self.compliance)

    @cached_property
    def delivery_gate(self) -> DeliveryGate:
        return DeliveryGate(
            self.compliance, self.facts, self.accounts, self.orders, self._apart, self.runtime.delivery_verdicts
        )

    @asynccontextmanager
    async def _apart(self) -> AsyncIterator[tuple[ComplianceService, LicenceService]]:
        """A refusal's verdict and licence change, in a transaction of their own (see DeliveryGate)."""
        async with self.runtime.transaction() as services:
            yield services.compliance, services.licences

    @cached_property
    def delivery(self) -> Delivery:
        return Delivery(
            self.session,
            self.settings,
            self.runtime.download_keyring,
            self.delivery_gate,
            self.orders,
            self.transitions,
            self.accounts,
            self.catalog,
            self.licences,
            self.audit,
        )

    @cached_property
    def data_calls(self) -> DataCalls:
        return DataCalls(
            self.session,
            self.settings,
            self.runtime.metering,
            self.runtime.call_terms,
            self.delivery_gate,
            self.orders,
            self.catalog,
            self.ledger,
        )
