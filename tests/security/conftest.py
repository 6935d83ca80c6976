"""The attacks replay against the same market the order tests trade in."""

from tests.orders.conftest import market

__all__ = ["market"]
