"""The demonstration: its data (records read from data/*.json), the request bodies built from it
(factories, also used by the tests and benchmarks), the seeding (seed) and the one trade it runs (trade)."""

from marketplace.demo.seed import seed_demo

__all__ = ["seed_demo"]
