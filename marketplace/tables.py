"""Imports every table, so SQLModel.metadata is complete for Alembic and the tests."""

from sqlmodel import SQLModel

from marketplace.accounts import models as accounts_models
from marketplace.accounts import sessions as accounts_sessions
from marketplace.audit import models as audit_models
from marketplace.billing import models as billing_models
from marketplace.catalog import models as catalog_models
from marketplace.certificates import models as certificates_models
from marketplace.compliance import models as compliance_models
from marketplace.delivery import models as delivery_models
from marketplace.events import models as events_models
from marketplace.ledger import models as ledger_models
from marketplace.orders import models as orders_models
from marketplace.payments import models as payments_models
from marketplace.web import idempotency as web_idempotency

metadata = SQLModel.metadata

__all__ = [
    "accounts_models",
    "accounts_sessions",
    "audit_models",
    "billing_models",
    "catalog_models",
    "certificates_models",
    "compliance_models",
    "delivery_models",
    "events_models",
    "ledger_models",
    "metadata",
    "orders_models",
    "payments_models",
    "web_idempotency",
]
