"""The noise of privacy computing: which metrics it answers, how OpenDP calibrates each one's noise from the
product's terms, and how it is released over the engine's exact answer."""

from __future__ import annotations

import math

import pytest

from marketplace.delivery.hosting import AggregateResult, HostingError, Metric
from marketplace.delivery.privacy import PrivacyTerms, plan, release, terms_of, to_micro

TERMS = PrivacyTerms(query_micro=to_micro(1.0), budget_micro=to_micro(10.0), bounds={"salary": (0.0, 5000.0)})


def test_terms_are_read_from_the_computation_in_millionths() -> None:
    computation = {"epsilon_per_query": 0.1, "epsilon_budget": 2.5, "bounds": {"salary": {"lower": -1, "upper": 9}}}
    assert terms_of(computation) == PrivacyTerms(100_000, 2_500_000, {"salary": (-1.0, 9.0)})
    assert terms_of({"measure": ["salary"]}) is None


def test_the_query_epsilon_is_split_evenly_and_each_scale_is_sensitivity_over_epsilon() -> None:
    noise = plan([Metric("count"), Metric("sum", "salary"), Metric("avg", "salary"), Metric("count", "salary")], TERMS)
    assert [m.epsilon for m in noise.metrics] == [0.25] * 4
    count, total, average, counted = noise.metrics
    assert count.noise[0].mechanism == "discrete_laplace"
    assert count.noise[0].sensitivity == 1
    assert count.noise[0].scale == pytest.approx(4.0)
    # OpenDP's bounded float sum: the larger bound, plus an allowance for rounding.
    assert total.noise[0].sensitivity == pytest.approx(5000, rel=1e-6)
    assert total.noise[0].scale == pytest.approx(5000 / 0.25, rel=1e-6)
    assert total.noise[0].error == pytest.approx(total.noise[0].scale * math.log(20))
    assert [(n.statistic.name, n.epsilon) for n in average.noise] == [("sum(salary)", 0.125), ("count(salary)", 0.125)]
    assert counted.noise[0].statistic == Metric("count", "salary")
    assert noise.statistics == [Metric("count"), Metric("sum", "salary"), Metric("count", "salary")]
    assert noise.bounds == {"salary": (0.0, 5000.0)}


def test_bounds_that_straddle_zero_cost_their_width() -> None:
    straddling = PrivacyTerms(to_micro(1.0), to_micro(10.0), {"delta": (-100.0, 400.0)})
    assert plan([Metric("sum", "delta")], straddling).metrics[0].noise[0].sensitivity == pytest.approx(500, rel=1e-6)


@pytest.mark.parametrize(
    ("metric", "code"),
    [
        (Metric("min", "salary"), "metric-not-private"),
        (Metric("max", "salary"), "metric-not-private"),
        (Metric("sum", "name"), "column-not-allowed"),  # not a measure: no bounds
        (Metric("avg"), "bad-metric"),
    ],
)
def test_metrics_without_a_sound_mechanism_are_refused(metric: Metric, code: str) -> None:
    with pytest.raises(HostingError) as refused:
        plan([Metric("count"), metric], TERMS)
    assert refused.value.code == code


def test_release_keeps_the_groups_and_adds_noise_to_every_metric() -> None:
    noise = plan([Metric("count"), Metric("sum", "salary"), Metric("avg", "salary")], TERMS)
    exact = AggregateResult(
        ("district", "count", "sum(salary)", "count(salary)"),
        [
            {"district": "520102", "count": 20, "sum(salary)": 20_190.0, "count(salary)": 20},
            {"district": "520103", "count": 12, "sum(salary)": None, "count(salary)": 0},  # no salary is known
        ],
        suppressed_groups=2,
        min_group_size=10,
    )
    released = release(exact, noise)
    assert released.columns == ("district", "count", "sum(salary)", "avg(salary)")
    assert [g["district"] for g in released.groups] == ["520102", "520103"]
    assert (released.suppressed_groups, released.min_group_size) == (2, 10)
    for group in released.groups:
        assert isinstance(group["count"], int)
        assert isinstance(group["sum(salary)"], float)
        assert 0.0 <= group["avg(salary)"] <= 5000.0
    # Fresh noise on every call: two releases of the same sums differ (equal with probability ~0).
    assert release(exact, noise).groups[0]["sum(salary)"] != released.groups[0]["sum(salary)"]
    assert release(AggregateResult(exact.columns, [], 3, 10), noise).groups == []
