"""The attacks replay against the markets the order and payment tests trade in."""

from tests.orders.conftest import market
from tests.payments.conftest import localstripe_url, stripe_api, stripe_app, stripe_client

__all__ = ["localstripe_url", "market", "stripe_api", "stripe_app", "stripe_client"]
