"""Delivering: hosting a version's dataset, handing a buyer a signed download link or an API access
key, streaming the download, and the licences deliveries are made under (the data API's calls are
`flows.data_calls`).

Before every act the rulebook's `delivery` stage runs again on a fresh snapshot (the provider and the
version as they are now, the buyer, the licence, the dataset's digest): data graded core after the
sale, a suspended provider or a revoked licence delivers nothing. A failing verdict revokes the licence
and a review suspends it; that decision is committed in a transaction of its own, because the
request's transaction is rolled back by the refusal it answers with."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import credentials
from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.catalog.models import ProductVersion
from marketplace.catalog.samples import StoredBlob, blob_path
from marketplace.catalog.service import CatalogService
from marketplace.compliance.contract import Decision, Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.service import ComplianceService
from marketplace.compliance.snapshots import DeliveryFacts, Snapshot
from marketplace.config import Settings
from marketplace.delivery.licences import TERM_ENDED, LicenceService
from marketplace.delivery.links import DownloadKeyring, InvalidLink
from marketplace.delivery.models import (
    AccessKey,
    Dataset,
    DeliveryReceipt,
    Licence,
    LicenceStatus,
    LicenceUsage,
    ReceiptKind,
    usage_period,
)
from marketplace.delivery.repository import DeliveryRepository
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound
from marketplace.flows.facts import Facts, organization_facts
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.memo import StampedMemo
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.service import OrderService
from marketplace.orders.transitions import OrderTransitions

ACCESS_KEY_MARKER = "dxk_"
# What an access key may do, by the delivery mode bought: raw rows leave only in API delivery.
SCOPES_BY_MODE = {"api": ["rows", "aggregate"], "privacy_computing": ["aggregate"]}


class DeliveryRefused(DomainError):
    """The delivery stage refused this act, or the licence is not active: nothing is delivered."""

    status = 403
    code = "delivery-refused"
    title = "Delivery refused"


class NotHosted(Conflict):
    code = "dataset-not-hosted"
    title = "The dataset is not hosted yet"


@dataclass(frozen=True)
class DeliveryAccess:
    """What `GET /orders/{id}/delivery` hands the buyer."""

    mode: str
    licence: Licence
    sha256: str
    size_bytes: int
    expires_at: datetime | None
    download_path: str | None = None
    api_key: str | None = None
    api_key_prefix: str | None = None


@dataclass(frozen=True)
class DownloadFile:
    path: Path
    sha256: str
    size_bytes: int
    media_type: str


# Opens a transaction of its own with the services a refusal is recorded by; committed when the block ends.
Apart = Callable[[], AbstractAsyncContextManager[tuple[ComplianceService, LicenceService]]]
# The delivery stage's acceptances a process keeps, by rulebook (its fingerprint), licence, delivery facts and day,
# under the stamp of the facts they judged: a data call reuses one while none of those rows changed, for
# `VERDICT_REUSE_SECONDS` at most, and never under another rulebook than the one that gave it.
DeliveryVerdicts = StampedMemo[tuple[Any, ...], Verdict]
VERDICT_REUSE_SECONDS = 10.0
VERDICTS_KEPT = 10_000


class DeliveryGate:
    """The delivery stage before every act: refuse unless the licence is active and the rulebook accepts the
    act now. A refusal's verdict and licence change are recorded apart (`apart`), in a transaction of
    their own, because the request's transaction is rolled back by the refusal it answers with."""

    def __init__(
        self,
        compliance: ComplianceService,
        facts: Facts,
        accounts: AccountService,
        orders: OrderService,
        apart: Apart,
        verdicts: DeliveryVerdicts,
    ) -> None:
        self.compliance = compliance
        self.facts = facts
        self.accounts = accounts
        self.orders = orders
        self.apart = apart
        self.verdicts = verdicts

    async def check(
        self,
        licence: Licence,
        dataset: Dataset | None,
        actor: str,
        *,
        order_status: OrderStatus | None = None,
        facts_stamp: str | None = None,
    ) -> Verdict:
        """Refuse unless the licence is active and the delivery stage accepts this act now. A caller that read
        the order's status with the licence passes it; one that read the stamp of the facts judged
        (`DeliveryRepository.data_call`) gets the acceptance this process gave on the same facts, the same day,
        under the same rulebook, at most `VERDICT_REUSE_SECONDS` ago. The licence's status and term and the
        dispute are judged afresh every time: a revocation, a suspension or a dispute stops the very next act."""
        now = clock.now()
        # A subscription's end is its renewal's business (marketplace/flows/billing.py): it delivers through its grace.
        ended = licence.ends_at is not None and now >= licence.ends_at and licence.renewal_days is None
        if licence.status == LicenceStatus.ACTIVE and ended:
            await self._decide_apart(licence.id, LicenceStatus.EXPIRED, TERM_ENDED, actor, None)
            licence.status = LicenceStatus.EXPIRED
        if licence.status != LicenceStatus.ACTIVE:
            raise DeliveryRefused(
                Message("delivery.licence-inactive", "the licence is {status}", status=licence.status.value),
                licence_id=str(licence.id),
                licence_status=licence.status,
            )
        # A disputed order delivers nothing until it is resolved: released, delivery resumes; refunded, the
        # licence is revoked.
        if (order_status or await self.orders.status_of(licence.order_id)) == OrderStatus.DISPUTED:
            raise DeliveryRefused(
                Message(
                    "delivery.order-disputed",
                    "the order is disputed; nothing is delivered until the dispute is resolved",
                ),
                licence_id=str(licence.id),
                order_status=OrderStatus.DISPUTED.value,
            )
        rulebook = self.compliance.rulebook.fingerprint
        judged = (rulebook, licence.id, licence.delivery_mode, dataset.sha256 if dataset else None, now.date())
        if facts_stamp is not None and (kept := self.verdicts.get(judged, facts_stamp)) is not None:
            return kept
        snapshot = await self._snapshot(licence, dataset)
        verdict = self.compliance.preview(Stage.DELIVERY, snapshot)
        if verdict.decision == Decision.ACCEPTED:
            if facts_stamp is not None:
                self.verdicts.put(judged, facts_stamp, verdict)
            return verdict
        to = LicenceStatus.REVOKED if verdict.decision == Decision.REJECTED else LicenceStatus.SUSPENDED
        rules = sorted({finding.rule_id for finding in verdict.failures()})
        refusal = Message(
            "delivery.stage-refused",
            "the delivery stage {decision} this delivery: {rules}",
            decision=verdict.decision.value,
            rules=", ".join(rules),
        )
        verdict_id = await self._decide_apart(licence.id, to, str(refusal), actor, snapshot)
        raise DeliveryRefused(
            refusal,
            licence_id=str(licence.id),
            licence_status=to.value,
            verdict_id=str(verdict_id),
            findings=[finding.as_json() for finding in verdict.failures()],
        )

    async def _snapshot(self, licence: Licence, dataset: Dataset | None) -> Snapshot:
        listing = await self.facts.version_now(licence.product_id, licence.product_version_id)
        product = listing.product
        assert product is not None
        buyer = await self.accounts.organization(licence.buyer_organization_id)
        return Snapshot(
            provider=listing.provider,
            buyer=organization_facts(buyer),
            product=product,
            plan=next((plan for plan in product.plans if plan.id == str(licence.plan_id)), None),
            delivery=DeliveryFacts(
                mode=licence.delivery_mode,  # one of the modes the version was sold with
                licence_status=licence.status.value,
                content_sha256=dataset.sha256 if dataset is not None else None,
            ),
        )

    async def _decide_apart(
        self, licence_id: uuid.UUID, to: LicenceStatus, reason: str, actor: str, snapshot: Snapshot | None
    ) -> uuid.UUID | None:
        """Store the verdict and stop the licence in a transaction of its own, committed whatever happens
        to the request's."""
        async with self.apart() as (compliance, licences):
            verdict_id = None
            if snapshot is not None:
                stored, _ = await compliance.judge(
                    stage=Stage.DELIVERY, subject_type="licence", subject_id=licence_id, snapshot=snapshot, actor=actor
                )
                verdict_id = stored.id
            licence = await licences.get(licence_id)
            await licences.change(licence, to, reason, actor)
            return verdict_id


class Delivery:
    """What a provider hosts and what a buyer takes delivery of: signed links, downloads, access keys,
    receipts, and the licences they are delivered under."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        keyring: DownloadKeyring,
        gate: DeliveryGate,
        orders: OrderService,
        transitions: OrderTransitions,
        accounts: AccountService,
        catalog: CatalogService,
        licences: LicenceService,
        audit: AuditService,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.gate = gate
        self.repository = DeliveryRepository(session)
        self.orders = orders
        self.transitions = transitions
        self.accounts = accounts
        self.catalog = catalog
        self.licence_changes = licences
        self.audit = audit

    # hosting (providers)

    async def host_dataset(
        self, principal: Principal, version: ProductVersion, blob: StoredBlob, media_type: str
    ) -> Dataset:
        """Record the uploaded file as the version's dataset; its digest becomes the version's registered
        content digest, which every delivery is checked against (S6)."""
        existing = await self.repository.dataset_of_version(version.id)
        if existing is not None and existing.sha256 != blob.sha256:
            raise Conflict(
                Message("delivery.dataset-exists", "this version already has another dataset"), sha256=existing.sha256
            )
        await self.catalog.register_digest(principal, version, blob.sha256)
        if existing is not None:
            return existing
        dataset = Dataset(
            product_version_id=version.id,
            sha256=blob.sha256,
            size_bytes=blob.size_bytes,
            media_type=media_type,
            uploaded_by=principal.actor,
        )
        await self.repository.put_dataset(dataset)
        await self.audit.record(
            actor=principal.actor,
            action="dataset.hosted",
            object_type="product",
            object_id=version.product_id,
            payload={"version": version.version, "sha256": blob.sha256, "size_bytes": blob.size_bytes},
        )
        return dataset

    # buyers: the delivery of an order

    async def _bought(self, principal: Principal, order_id: uuid.UUID) -> tuple[Order, Licence]:
        order = await self.orders.bought(principal, order_id)
        licence = await self.repository.licence_of_order(order.id)
        if licence is None:
            raise Conflict(
                Message(
                    "delivery.order-without-licence",
                    "the order is {status}; it has no licence to deliver under",
                    status=order.status.value,
                ),
                current_status=order.status.value,
            )
        return order, licence

    async def open(self, principal: Principal, order_id: uuid.UUID) -> DeliveryAccess:
        """The buyer's way to the data, after the delivery stage accepts: a signed download link (file),
        or an API access key (api, privacy_computing; shown once, when it is created)."""
        order, licence = await self._bought(principal, order_id)
        dataset = await self.repository.dataset_of_version(licence.product_version_id)
        if dataset is None:
            raise NotHosted(Message("delivery.not-hosted", "the provider has not uploaded this version's dataset yet"))
        await self.gate.check(licence, dataset, principal.actor)
        if licence.delivery_mode == "file":
            if principal.user_id is None or principal.is_api_key:
                raise Forbidden(
                    Message(
                        "delivery.link-for-person", "a download link is made for a person; use a user's access token"
                    )
                )
            link = self.keyring.sign(
                licence.id, principal.user_id, dataset.sha256, clock.now(), self.settings.download_link_ttl_seconds
            )
            query = "&".join(f"{name}={value}" for name, value in link.params.items())
            return DeliveryAccess(
                mode="file",
                licence=licence,
                sha256=dataset.sha256,
                size_bytes=dataset.size_bytes,
                expires_at=link.expires_at,
                download_path=f"/api/v1/downloads/{licence.id}?{query}",
            )
        key = await self.repository.active_access_key(licence.id)
        secret = None
        if key is None:
            key, secret = await self._new_access_key(licence, principal.actor)
            await self._receipt(order, licence, ReceiptKind.API_ACCESS, dataset, principal.actor, {"key": key.prefix})
        return DeliveryAccess(
            mode=licence.delivery_mode,
            licence=licence,
            sha256=dataset.sha256,
            size_bytes=dataset.size_bytes,
            expires_at=licence.ends_at,
            api_key=secret,
            api_key_prefix=key.prefix,
        )

    async def rotate_access_key(self, principal: Principal, licence_id: uuid.UUID) -> tuple[AccessKey, str]:
        """A new access key for the licence; the old one stops working at once."""
        licence = await self._licence_for_buyer(principal, licence_id)
        if licence.delivery_mode not in SCOPES_BY_MODE:
            raise Conflict(
                Message(
                    "delivery.file-licence-has-no-keys", "this licence is delivered as a file; it has no access keys"
                )
            )
        dataset = await self.repository.dataset_of_version(licence.product_version_id)
        await self.gate.check(licence, dataset, principal.actor)
        await self.repository.revoke_access_keys(licence.id)
        return await self._new_access_key(licence, principal.actor)

    async def _new_access_key(self, licence: Licence, actor: str) -> tuple[AccessKey, str]:
        secret, prefix = credentials.new_api_key(ACCESS_KEY_MARKER)
        key = AccessKey(
            licence_id=licence.id,
            prefix=prefix,
            key_hash=credentials.hash_api_key(secret),
            scopes=SCOPES_BY_MODE[licence.delivery_mode],
            rate_limit_per_minute=self.settings.access_key_rate_limit_per_minute,
            created_by=actor,
        )
        await self.repository.add_access_key(key)
        await self.audit.record(
            actor=actor,
            action="licence.access_key_created",
            object_type="licence",
            object_id=licence.id,
            payload={"prefix": prefix, "scopes": key.scopes},
        )
        return key, secret

    async def _receipt(
        self,
        order: Order,
        licence: Licence,
        kind: ReceiptKind,
        dataset: Dataset,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        await self.repository.add_receipt(
            DeliveryReceipt(
                order_id=order.id,
                licence_id=licence.id,
                kind=kind,
                content_sha256=dataset.sha256,
                size_bytes=dataset.size_bytes,
                detail=detail,
                actor=actor,
            )
        )
        await self.transitions.record_delivery(order.id, actor)

    async def receipts(self, principal: Principal, order_id: uuid.UUID) -> list[DeliveryReceipt]:
        order = await self.orders.visible(principal, order_id)
        return list(await self.repository.receipts(order.id))

    # licences

    async def _licence_for_buyer(self, principal: Principal, licence_id: uuid.UUID) -> Licence:
        licence = await self.repository.licence(licence_id)
        if licence is None:
            raise NotFound(Message("delivery.licence-not-found", "licence not found"))
        await self.orders.bought(principal, licence.order_id)
        return licence

    async def licence(self, principal: Principal, licence_id: uuid.UUID) -> Licence:
        """A licence its buyer, its provider or an administrator may read."""
        licence = await self.repository.licence(licence_id)
        if licence is None:
            raise NotFound(Message("delivery.licence-not-found", "licence not found"))
        await self.orders.visible(principal, licence.order_id)
        return licence

    async def licences(self, principal: Principal, *, limit: int, offset: int) -> tuple[list[Licence], int]:
        organizations = None
        if not (principal.is_admin and not principal.is_api_key):
            organizations = set(await self.accounts.member_organization_ids(principal))
        rows, total = await self.repository.licences_of(organizations, limit=limit, offset=offset)
        return list(rows), total

    async def decide_licence(self, admin: Principal, licence_id: uuid.UUID, decision: str, reason: str) -> Licence:
        """An administrator's decision on a licence the delivery stage suspended: reinstate or revoke."""
        if not admin.is_admin or admin.is_api_key:
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))
        licence = await self.repository.licence(licence_id)
        if licence is None:
            raise NotFound(Message("delivery.licence-not-found", "licence not found"))
        if licence.status != LicenceStatus.SUSPENDED:
            raise Conflict(
                Message(
                    "delivery.licence-not-suspended",
                    "the licence is {status}; there is nothing to decide",
                    status=licence.status.value,
                )
            )
        to = LicenceStatus.ACTIVE if decision == "reinstate" else LicenceStatus.REVOKED
        if not await self.licence_changes.change(licence, to, reason, admin.actor):
            raise Conflict(Message("delivery.licence-changed-meanwhile", "the licence changed meanwhile"))
        return licence

    async def usage(
        self, principal: Principal, licence_id: uuid.UUID, period: str | None
    ) -> tuple[Licence, str, LicenceUsage | None]:
        """A licence's metered usage in a month (default: this one), for its buyer, provider or an admin."""
        licence = await self.licence(principal, licence_id)
        month = period or usage_period(clock.now())
        return licence, month, await self.repository.usage(licence.id, month)

    # file delivery

    async def download(self, licence_id: uuid.UUID, params: dict[str, str]) -> DownloadFile:
        """Check a signed link and everything it stands for, now, in the database: the licence active, the
        person still an active member of the buyer, the digest the hosted one, the delivery stage
        accepting. Then record the receipt and the audit entry; the caller streams the file."""
        try:
            claims = self.keyring.verify(licence_id, params, clock.now())
        except InvalidLink as exc:
            raise DeliveryRefused(
                Message("delivery.link-invalid", "the download link is invalid or has expired")
            ) from exc
        licence = await self.repository.licence(licence_id)
        if licence is None or licence.delivery_mode != "file":
            raise DeliveryRefused(Message("delivery.link-invalid", "the download link is invalid or has expired"))
        if not await self.accounts.is_active_member(claims.user_id, licence.buyer_organization_id):
            raise DeliveryRefused(Message("delivery.link-invalid", "the download link is invalid or has expired"))
        dataset = await self.repository.dataset_of_version(licence.product_version_id)
        if dataset is None or dataset.sha256 != claims.sha256:
            raise DeliveryRefused(Message("delivery.link-invalid", "the download link is invalid or has expired"))
        actor = f"user:{claims.user_id}"
        await self.gate.check(licence, dataset, actor)
        order = await self.orders.get(licence.order_id)
        await self._receipt(order, licence, ReceiptKind.DOWNLOAD, dataset, actor, {"key_id": claims.key_id})
        await self.audit.record(
            actor=actor,
            action="licence.downloaded",
            object_type="licence",
            object_id=licence.id,
            payload={"order_id": str(order.id), "sha256": dataset.sha256, "size_bytes": dataset.size_bytes},
        )
        path = blob_path(self.settings.dataset_dir, dataset.sha256)
        return DownloadFile(path, dataset.sha256, dataset.size_bytes, dataset.media_type)
