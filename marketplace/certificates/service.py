"""Issuing trade certificates: the notary signs, for a completed order, the facts of the trade and the proof that
the log holds the order's completion; the first certificate issued for an order is kept and answered again.

Which orders have one: those that reached completed (completed, settled, paid out). A refunded order has none,
whatever was issued before its refund: the route refuses it (409), so no certificate of a refunded trade is
handed out as a clean one. An order whose completion the log's sequencer has not yet made a leaf of the tree
(it runs every few seconds) is refused with a Retry-After; a GET does not sign tree heads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.audit.transparency import EntryProof, TransparencyLog, rfc3339
from marketplace.certificates.models import TradeCertificate
from marketplace.certificates.repository import CertificateRepository
from marketplace.certificates.verification import CERTIFICATE_TYPE, verify
from marketplace.delivery.models import DeliveryReceipt
from marketplace.errors import Conflict
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.ids import new_id
from marketplace.kit.jws import Notary
from marketplace.orders.models import OrderStatus
from marketplace.orders.service import OrderService

# The statuses of an order that reached completed and was not refunded.
CERTIFIED_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.SETTLED, OrderStatus.PAID_OUT})


class NotCertified(Conflict):
    code = "certificate-unavailable"
    title = "No certificate for this order"


@dataclass(frozen=True)
class Certificate:
    signed: str  # the compact JWS
    payload: dict[str, Any]
    head: dict[str, Any]  # the payload of the signed tree head it proves against
    checked: str  # what checking it with the notary's key found, in one line


class CertificateService:
    def __init__(
        self,
        session: AsyncSession,
        notary: Notary,
        orders: OrderService,
        transparency: TransparencyLog,
        retry_seconds: int,
    ) -> None:
        self.repository = CertificateRepository(session)
        self.notary = notary
        self.orders = orders
        self.transparency = transparency
        self.retry_seconds = retry_seconds

    async def certificate(self, principal: Principal, order_id: uuid.UUID) -> Certificate:
        """The certificate of an order the caller buys, provides or administers (others: 404)."""
        order = await self.orders.visible(principal, order_id)
        if order.status == OrderStatus.REFUNDED:
            message = Message("certificates.refunded", "the order was refunded: it has no trade certificate")
            raise NotCertified(message, current_status=order.status.value)
        if order.status not in CERTIFIED_STATUSES:
            message = Message(
                "certificates.not-completed",
                "the order is {status}; only completed trades have a certificate",
                status=order.status.value,
            )
            raise NotCertified(message, current_status=order.status.value)
        kept = await self.repository.kept(order_id)
        if kept is None:
            kept = await self.repository.keep(await self._issue(order_id))
        # checked as anyone would check it, before it is answered
        checked = verify(kept.signed, self.notary.jwks())
        assert checked.ok, checked.line()
        return Certificate(kept.signed, checked.payload, checked.head, checked.line())

    async def _issue(self, order_id: uuid.UUID) -> TradeCertificate:
        entry_id = await self.repository.completion(order_id)
        proof = None if entry_id is None else await self.transparency.entry_proof(entry_id)
        if proof is None:
            raise NotCertified(
                Message(
                    "certificates.not-yet-logged",
                    "the order's completion is not yet in the transparency log; try again in a few seconds",
                ),
                headers={"Retry-After": str(self.retry_seconds)},
                retry_after=self.retry_seconds,
            )
        facts = await self.repository.facts(order_id)
        assert facts is not None
        receipts = await self.repository.receipts(order_id)
        certificate_id, now = new_id(), clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as precise as the signed issued_at
        payload = certificate_payload(certificate_id, rfc3339(now), facts, receipts, proof)
        return TradeCertificate(
            order_id=order_id,
            certificate_id=certificate_id,
            tree_size=proof.tree_size,
            issued_at=now,
            signed=self.notary.sign(payload, CERTIFICATE_TYPE),
        )


def _party(facts: dict[str, Any], role: str) -> dict[str, str] | None:
    """An organisation's id, name and unified social credit code: organisation facts, never a person's."""
    if facts[f"{role}_id"] is None:
        return None
    return {"organization_id": str(facts[f"{role}_id"]), "name": facts[f"{role}_name"], "uscc": facts[f"{role}_uscc"]}


def certificate_payload(
    certificate_id: uuid.UUID,
    issued_at: str,
    facts: dict[str, Any],
    receipts: Sequence[DeliveryReceipt],
    proof: EntryProof,
) -> dict[str, Any]:
    """What the notary signs: the trade's facts, and its completion's log entry with the proof of its inclusion."""
    return {
        "certificate_id": str(certificate_id),
        "issued_at": issued_at,
        "order": {
            "id": str(facts["order_id"]),
            "placed_at": rfc3339(facts["placed_at"]),
            "completed_at": proof.body["at"],
        },
        "buyer": _party(facts, "buyer"),
        "provider": _party(facts, "provider"),
        "intermediary": _party(facts, "intermediary"),
        "product": {
            "id": str(facts["product_id"]),
            "name": facts["title"],
            "version": facts["version"],
            "version_id": str(facts["version_id"]),
            "dataset_sha256": facts["dataset_sha256"],
        },
        "plan": {"id": str(facts["plan_id"]), "kind": str(facts["plan_kind"]), "quantity": facts["quantity"]},
        "amount": {"minor": facts["amount_minor"], "currency": facts["currency"]},
        "scenario": facts["scenario"],
        "delivery_mode": facts["delivery_mode"],
        "verdict": {
            "id": str(facts["verdict_id"]),
            "decision": str(facts["decision"]),
            "rulebook_fingerprint": facts["rulebook_fingerprint"],
        },
        "deliveries": [
            {"kind": str(receipt.kind), "content_sha256": receipt.content_sha256, "at": rfc3339(receipt.at)}
            for receipt in receipts
        ],
        "log": {
            "entry": proof.body,
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "inclusion_proof": proof.inclusion,
            "tree_head": proof.tree_head,
        },
    }
