"""Benchmark: one full trade-stage evaluation of the installed rulebook on a realistic snapshot.

Each evaluation judges a different trade (5,000 distinct snapshots in turn). Prints the
median and p99 time per evaluation, then the same with every rule installed three
times over (as three times as many distinct rules), and the ratio of the two: growth should
be linear (ratio about 3). Target: median <= 100 microseconds for the trade stage.

    .venv/bin/python bench/rules.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marketplace.compliance.contract import Decision, Rule, Stage
from marketplace.compliance.engine import evaluate
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import DEFAULT_RULEBOOK_PATH, Rulebook, build_rulebook, read_config
from marketplace.compliance.snapshots import Snapshot
from tests.rules.snapshots import NOW, trade_snapshot

TARGET_MEDIAN_US = 100.0
SNAPSHOTS = 5_000
SCENARIOS = ("logistics_routing", "traffic_planning")


def tripled(classes: dict[str, type[Rule]]) -> dict[str, type[Rule]]:
    """Each rule plus two copies under other ids: three times the rules, same work each."""
    result = dict(classes)
    for rule_id, rule_class in classes.items():
        for copy in (2, 3):
            copy_id = f"{rule_id}-COPY{copy}"
            result[copy_id] = type(f"{rule_class.__name__}Copy{copy}", (rule_class,), {"id": copy_id})
    return result


def distinct_snapshots(count: int) -> list[Snapshot]:
    """Realistic trades that differ in every party, product, scenario and amount, so no rule
    can answer from a cache of earlier evaluations."""
    base = trade_snapshot()
    assert base.buyer is not None
    assert base.provider is not None
    assert base.product is not None
    assert base.trade is not None
    assert base.plan is not None
    snapshots = []
    for n in range(count):
        price = base.plan.price_minor + n
        plan = base.plan.model_copy(update={"id": f"plan-{n}", "price_minor": price})
        snapshots.append(
            base.model_copy(
                update={
                    "buyer": base.buyer.model_copy(update={"id": f"buyer-{n}", "name": f"Buyer {n}"}),
                    "provider": base.provider.model_copy(update={"id": f"provider-{n}", "trades_in_window": 100 + n}),
                    "product": base.product.model_copy(
                        update={"id": f"product-{n}", "version": 1 + n % 5, "plans": (plan,)}
                    ),
                    "plan": plan,
                    "trade": base.trade.model_copy(
                        update={"amount_minor": price, "scenario": SCENARIOS[n % 2], "licences_available": 10 + n}
                    ),
                }
            )
        )
    return snapshots


def measure(rulebook: Rulebook, iterations: int) -> tuple[float, float, int]:
    snapshots = distinct_snapshots(SNAPSHOTS)
    for n in range(min(1000, iterations)):  # warm up
        evaluate(rulebook, Stage.TRADE, snapshots[n % SNAPSHOTS], NOW)
    samples = []
    clock = time.perf_counter_ns
    decisions = set()
    for n in range(iterations):
        snapshot = snapshots[n % SNAPSHOTS]
        start = clock()
        verdict = evaluate(rulebook, Stage.TRADE, snapshot, NOW)
        samples.append(clock() - start)
        decisions.add(verdict.decision)
    assert decisions == {Decision.ACCEPTED}, decisions
    samples.sort()
    median = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99) - 1] / 1000
    return median, p99, len(verdict.findings)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    classes = load_rule_classes()
    config = read_config(DEFAULT_RULEBOOK_PATH)
    base = build_rulebook(classes, config)
    triple = build_rulebook(tripled(classes), config)
    trade_rules = len(base.by_stage[Stage.TRADE])

    base_median, base_p99, base_findings = measure(base, args.iterations)
    triple_median, triple_p99, triple_findings = measure(triple, args.iterations)

    print(f"trade stage, {trade_rules} of {len(base.rules)} rules, {base_findings} findings, {args.iterations} runs")
    print(f"  median {base_median:8.1f} us   p99 {base_p99:8.1f} us   (target median <= {TARGET_MEDIAN_US:.0f} us)")
    print(f"tripled: {len(triple.by_stage[Stage.TRADE])} trade rules, {triple_findings} findings")
    print(f"  median {triple_median:8.1f} us   p99 {triple_p99:8.1f} us")
    print(
        f"ratio tripled/base: median {triple_median / base_median:.2f}  p99 {triple_p99 / base_p99:.2f}  (linear = 3)"
    )
    print(f"target met: {'yes' if base_median <= TARGET_MEDIAN_US else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
