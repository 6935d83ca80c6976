"""What each audit action keeps in its entry's `payload`: one shape per kind of act, for the API description
(a payload is answered as it was hashed, never re-shaped) and for the tests, which check every entry the code
writes against the shape of its action.

Payloads hold ids, codes, amounts and reasons, never personal data: the chain cannot be erased."""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

Id = str  # a UUID, as text
_EXACT = ConfigDict(extra="forbid")


def _shape(name: str, doc: str, fields: dict[str, Any]) -> Any:
    """A payload shape; written this way because some keys (`from`) are Python keywords."""
    shape = with_config(_EXACT)(TypedDict(name, fields))  # type: ignore[operator]
    shape.__doc__ = doc
    return shape


@with_config(_EXACT)
class EmptyPayload(TypedDict):
    """user.registered, user.made_admin: the entry's object says it all."""


StatusChangedPayload = _shape(
    "StatusChangedPayload",
    "user.status_changed, organization.status_changed, product.status_changed, membership.role_changed: from one "
    "status (or role) to another, and why",
    {
        "from": str,
        "to": str,
        "reason": NotRequired[str | None],
        "version": NotRequired[int],
        "organization_id": NotRequired[Id],
    },
)
OrderMovedPayload = _shape(
    "OrderMovedPayload",
    "order.<status> (order.accepted, order.paid, order.delivered, order.completed, order.settled, order.paid_out, "
    "order.cancelled, order.disputed, order.refunded, ...): the order moved, and what the move recorded",
    {
        "from": str,
        "to": str,
        "reason": str | None,
        "payment_reference": NotRequired[str],
        "payment_gateway": NotRequired[str],
        "refund_reference": NotRequired[str],
        "dispute_reason": NotRequired[str],
        "licences_reserved": NotRequired[str],
        "path": NotRequired[str],
        "provider_minor": NotRequired[int],
        "fee_minor": NotRequired[int],
        "payout_id": NotRequired[Id | None],
    },
)
LicenceMovedPayload = _shape(
    "LicenceMovedPayload",
    "licence.<status> (licence.suspended, licence.revoked, licence.active, licence.expired): the licence moved",
    {"order_id": Id, "from": str, "reason": str | None},
)


@with_config(_EXACT)
class VerdictPayload(TypedDict):
    """verdict.recorded, and inside order.placed: what the audit keeps of a stored verdict."""

    verdict_id: Id
    stage: str
    decision: str
    rulebook_fingerprint: str
    failed_checks: list[str]


@with_config(_EXACT)
class OrderPlacedPayload(TypedDict):
    """order.placed: the order as the trade stage judged it."""

    status: str
    verdict_id: Id
    product_id: Id
    buyer_organization_id: Id
    amount_minor: int
    currency: str
    licences_reserved: int
    verdict: VerdictPayload


@with_config(_EXACT)
class PaymentRefundedPayload(TypedDict):
    """order.late_payment_refunded, order.second_payment_refunded: a payment the order could not take, refunded."""

    payment_reference: str
    refund_reference: str


@with_config(_EXACT)
class ProductCreatedPayload(TypedDict):
    """product.created"""

    organization_id: Id
    version: int
    title: str


@with_config(_EXACT)
class FieldsChangedPayload(TypedDict):
    """product.updated, organization.updated: the fields a change set (never their values)."""

    fields: list[str]
    version: NotRequired[int]


@with_config(_EXACT)
class VersionCreatedPayload(TypedDict):
    """product.version_created: a new draft from the version before."""

    version: int
    from_version: int


@with_config(_EXACT)
class SampleAttachedPayload(TypedDict):
    """product.sample_attached"""

    version: int
    sample_id: Id
    sha256: str
    rows: int


@with_config(_EXACT)
class ContentRegisteredPayload(TypedDict):
    """product.content_registered: the version's content digest, once."""

    version: int
    content_sha256: str


@with_config(_EXACT)
class DelistedPayload(TypedDict):
    """product.delisted"""

    version: int
    reason: str | None


@with_config(_EXACT)
class RegradedPayload(TypedDict):
    """product.regraded: an administrator's grade for every version."""

    grade: str
    previous_grades: list[str]
    reason: str | None


@with_config(_EXACT)
class PlanAddedPayload(TypedDict):
    """product.plan_added"""

    version: int
    plan_id: Id
    kind: str
    price_minor: int
    currency: str


@with_config(_EXACT)
class PlanRetiredPayload(TypedDict):
    """product.plan_retired: the draft's plan retired, named by the plan the caller gave."""

    version: int
    plan_id: Id
    as_plan_id: Id


@with_config(_EXACT)
class FilePayload(TypedDict):
    """dataset.hosted, licence.downloaded: a file, by digest and size."""

    sha256: str
    size_bytes: int
    version: NotRequired[int]
    order_id: NotRequired[Id]


@with_config(_EXACT)
class LicenceIssuedPayload(TypedDict):
    """licence.issued"""

    order_id: Id
    delivery_mode: str
    ends_at: str | None


@with_config(_EXACT)
class KeyIssuedPayload(TypedDict):
    """api_key.created, api_key.revoked, licence.access_key_created: a key, by its prefix (never the key)."""

    organization_id: NotRequired[Id]
    prefix: NotRequired[str]
    scopes: NotRequired[list[str]]


@with_config(_EXACT)
class MembershipPayload(TypedDict):
    """membership.created, membership.deleted"""

    organization_id: Id
    user_id: Id
    role: NotRequired[str]


@with_config(_EXACT)
class OrganizationPayload(TypedDict):
    """organization.created: the organisation's declared facts (no personal data)."""

    name: str
    uscc: str | None
    kind: str
    jurisdiction: str | None
    dsmm_level: int | None
    penalties_last_3y: int | None


@with_config(_EXACT)
class PaymentAccountSetPayload(TypedDict):
    """organization.payment_account_set: the provider's account at the payment gateway."""

    gateway: str
    account_id: str
    payouts_enabled: bool


@with_config(_EXACT)
class PaymentMethodSetupPayload(TypedDict):
    """organization.payment_method_setup: a buyer began saving a payment method at the gateway (its setup)."""

    gateway: str
    setup_reference: str


@with_config(_EXACT)
class PayoutPayload(TypedDict):
    """payout.booked, payout.sent, payout.failed: the payout as it stands after the act."""

    organization_id: Id
    currency: str
    amount_minor: int
    debt_repaid_minor: int
    gateway: str | None
    destination: str | None
    status: str
    reference: str | None
    failure: str | None
    orders: NotRequired[int]


@with_config(_EXACT)
class WebhookEndpointPayload(TypedDict):
    """webhook_endpoint.created, .updated, .deleted, .secret_rotated, .delivery_replayed: the endpoint, never
    its URL or secret."""

    organization_id: Id
    event_types: list[str]
    enabled: bool
    delivery_id: NotRequired[Id]


# Every action, by name or by family (`order.` for the order's moves), with the shape of its payload.
PAYLOADS: dict[str, Any] = {
    "user.registered": EmptyPayload,
    "user.made_admin": EmptyPayload,
    "user.status_changed": StatusChangedPayload,
    "organization.created": OrganizationPayload,
    "organization.updated": FieldsChangedPayload,
    "organization.status_changed": StatusChangedPayload,
    "organization.payment_account_set": PaymentAccountSetPayload,
    "organization.payment_method_setup": PaymentMethodSetupPayload,
    "membership.created": MembershipPayload,
    "membership.role_changed": StatusChangedPayload,
    "membership.deleted": MembershipPayload,
    "api_key.created": KeyIssuedPayload,
    "api_key.revoked": KeyIssuedPayload,
    "product.created": ProductCreatedPayload,
    "product.updated": FieldsChangedPayload,
    "product.version_created": VersionCreatedPayload,
    "product.sample_attached": SampleAttachedPayload,
    "product.content_registered": ContentRegisteredPayload,
    "product.delisted": DelistedPayload,
    "product.status_changed": StatusChangedPayload,
    "product.regraded": RegradedPayload,
    "product.plan_added": PlanAddedPayload,
    "product.plan_retired": PlanRetiredPayload,
    "verdict.recorded": VerdictPayload,
    "order.placed": OrderPlacedPayload,
    "order.late_payment_refunded": PaymentRefundedPayload,
    "order.second_payment_refunded": PaymentRefundedPayload,
    "order.": OrderMovedPayload,
    "dataset.hosted": FilePayload,
    "licence.issued": LicenceIssuedPayload,
    "licence.access_key_created": KeyIssuedPayload,
    "licence.downloaded": FilePayload,
    "licence.": LicenceMovedPayload,
    "payout.booked": PayoutPayload,
    "payout.sent": PayoutPayload,
    "payout.failed": PayoutPayload,
    "webhook_endpoint.created": WebhookEndpointPayload,
    "webhook_endpoint.updated": WebhookEndpointPayload,
    "webhook_endpoint.deleted": WebhookEndpointPayload,
    "webhook_endpoint.secret_rotated": WebhookEndpointPayload,
    "webhook_endpoint.delivery_replayed": WebhookEndpointPayload,
}


def payload_of(action: str) -> Any | None:
    """The shape of an action's payload: its own, else its family's; None for an action nobody declared."""
    family = action.split(".", 1)[0] + "."
    return PAYLOADS.get(action, PAYLOADS.get(family) if action != family else None)


def documented_shapes() -> list[Any]:
    """Every shape once, in the order declared: the union the API description gives `payload`."""
    return list(dict.fromkeys(PAYLOADS.values()))
