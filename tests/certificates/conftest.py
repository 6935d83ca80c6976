"""The certificate tests trade in the order tests' market."""

from tests.orders.conftest import market

__all__ = ["market"]
