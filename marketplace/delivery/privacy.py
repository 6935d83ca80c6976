"""Differential privacy of the aggregates of privacy computing: a product's privacy terms, the noise each metric
of a query gets (calibrated with OpenDP from those terms), and its release over the exact, clamped aggregates
that `hosting.aggregate` computed.

Two datasets are neighbours when they differ by one row added or removed (OpenDP's symmetric distance 1). A
query's epsilon is split evenly over its metrics (sequential composition); an average spends half of its share
on a clamped sum and half on a count, and is their ratio. Groups are disjoint, so one row moves one group's
statistic only: noise on a statistic of every group costs its share once (parallel composition). Not covered:
which groups are shown (a group is shown when its true size reaches k) and how many were suppressed, exactly
as without noise.

Pure and synchronous, like `hosting`: the service runs it in a worker thread."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import opendp.prelude as dp
from opendp.core import transformation_map  # what Transformation.map calls, with the annotations it lacks

from marketplace.delivery.hosting import MAX_COLUMN_NAME, MAX_METRICS, AggregateResult, HostingError, Metric
from marketplace.kit.i18n import Message

# OpenDP keeps the components whose privacy proofs have not completed its vetting process behind the
# "contrib" feature, and builds none of them without this explicit opt-in: the count, the bounded sum and
# the Laplace mechanism used here are among them.
dp.enable_features("contrib")

# Epsilons are kept in whole millionths, so that a licence's spends add up exactly in the database.
MICRO: Final = 1_000_000
# Each statistic's answer states the error its noise stays within with probability 1 - ALPHA.
ALPHA: Final = 0.05

Mechanism = Literal["discrete_laplace", "laplace"]


def to_micro(epsilon: float) -> int:
    return round(epsilon * MICRO)


def to_epsilon(micro: int) -> float:
    return micro / MICRO


@dataclass(frozen=True)
class PrivacyTerms:
    """A product's differential privacy terms: the epsilon of a query and of a licence's whole life (in
    millionths), and the clamping bounds (lower, upper) of each measure column."""

    query_micro: int
    budget_micro: int
    bounds: Mapping[str, tuple[float, float]]


def terms_of(computation: Mapping[str, Any]) -> PrivacyTerms | None:
    """The privacy terms of a product's `computation`, or None when it declares none."""
    query, budget, bounds = (computation.get(name) for name in ("epsilon_per_query", "epsilon_budget", "bounds"))
    if query is None or budget is None or not isinstance(bounds, Mapping):
        return None
    clamps = {str(column): (float(b["lower"]), float(b["upper"])) for column, b in bounds.items()}
    return PrivacyTerms(to_micro(query), to_micro(budget), clamps)


@dataclass(frozen=True)
class Noise:
    """The noise on one statistic of every group: OpenDP's Laplace mechanism (discrete on counts)."""

    statistic: Metric  # what the engine computes exactly: count, count(column) or the clamped sum(column)
    epsilon: float
    sensitivity: float
    scale: float
    mechanism: Mechanism
    error: float  # the noise stays within ±error with probability 1 - ALPHA
    measurement: dp.Measurement = field(compare=False, repr=False)


@dataclass(frozen=True)
class NoisyMetric:
    """A metric the buyer asked for, its share of the query's epsilon, and the noise of what it is made of:
    one statistic, or for an average its clamped sum and then its count."""

    metric: Metric
    epsilon: float
    noise: tuple[Noise, ...]
    bounds: tuple[float, float] | None = None  # an average is kept within them


@dataclass(frozen=True)
class NoisePlan:
    metrics: tuple[NoisyMetric, ...]
    bounds: Mapping[str, tuple[float, float]]  # what the engine clamps before it sums

    @property
    def statistics(self) -> list[Metric]:
        """What the engine computes exactly, each once."""
        return list(dict.fromkeys(noise.statistic for metric in self.metrics for noise in metric.noise))


def plan(metrics: Sequence[Metric], terms: PrivacyTerms) -> NoisePlan:
    """The noise of each metric of one query, the query's epsilon split evenly between them."""
    if not 1 <= len(metrics) <= MAX_METRICS:
        raise HostingError(
            "bad-metric", Message("query.metric-count", "ask for 1 to {limit} metrics", limit=MAX_METRICS)
        )
    share = to_epsilon(terms.query_micro) / len(metrics)
    planned = NoisePlan(tuple(_noisy(metric, share, terms.bounds) for metric in metrics), terms.bounds)
    if len(planned.statistics) > MAX_METRICS:
        raise HostingError(
            "bad-metric",
            Message(
                "query.too-many-statistics",
                "these metrics take {statistics} statistics; at most {limit}",
                statistics=len(planned.statistics),
                limit=MAX_METRICS,
            ),
        )
    return planned


def _noisy(metric: Metric, epsilon: float, bounds: Mapping[str, tuple[float, float]]) -> NoisyMetric:
    if metric.fn in ("min", "max"):
        # One row decides a minimum or a maximum: no noise calibrated to a declared range hides it usefully.
        raise HostingError(
            "metric-not-private",
            Message(
                "query.not-private",
                "{fn} is not answered by privacy computing: one row decides it; ask for avg, or a filtered count",
                fn=metric.fn,
            ),
        )
    if metric.fn == "count":
        return NoisyMetric(metric, epsilon, (_count(metric, epsilon),))
    if metric.column is None:
        raise HostingError("bad-metric", Message("query.metric-needs-column", "{fn} needs a column", fn=metric.fn))
    clamp = bounds.get(metric.column)
    if clamp is None:  # every measure column has bounds: the same answer as the engine's for a forbidden one
        raise HostingError(
            "column-not-allowed",
            Message(
                "query.column-not-allowed",
                "column {column!r} is not available here",
                column=metric.column[:MAX_COLUMN_NAME],
            ),
        )
    total = Metric("sum", metric.column)
    if metric.fn == "sum":
        return NoisyMetric(metric, epsilon, (_sum(total, clamp, epsilon),))
    halves = (_sum(total, clamp, epsilon / 2), _count(Metric("count", metric.column), epsilon / 2))
    return NoisyMetric(metric, epsilon, halves, clamp)


def _count(statistic: Metric, epsilon: float) -> Noise:
    return _calibrated(statistic, "discrete_laplace", _count_sensitivity(), epsilon)


def _sum(statistic: Metric, clamp: tuple[float, float], epsilon: float) -> Noise:
    return _calibrated(statistic, "laplace", _sum_sensitivity(*clamp), epsilon)


def _calibrated(statistic: Metric, mechanism: Mechanism, sensitivity: float, epsilon: float) -> Noise:
    scale, measurement = _laplace(mechanism, sensitivity, epsilon)
    accuracy = (
        dp.discrete_laplacian_scale_to_accuracy if mechanism == "discrete_laplace" else dp.laplacian_scale_to_accuracy
    )
    return Noise(statistic, epsilon, sensitivity, scale, mechanism, float(accuracy(scale, ALPHA)), measurement)


@functools.cache
def _count_sensitivity() -> int:
    """How far one row added or removed moves a count, by OpenDP's count: 1."""
    count = dp.t.make_count(dp.vector_domain(dp.atom_domain(T=bool)), dp.symmetric_distance(), TO="i64")
    return int(transformation_map(count, 1))


@functools.lru_cache(maxsize=1024)
def _sum_sensitivity(lower: float, upper: float) -> float:
    """How far one row added or removed moves a sum of values clamped into [lower, upper], by OpenDP's bounded
    float sum: max(|lower|, |upper|) when both have one sign, else upper - lower, plus a rounding allowance."""
    domain = dp.vector_domain(dp.atom_domain(bounds=(lower, upper), nan=False))
    return float(transformation_map(dp.t.make_sum(domain, dp.symmetric_distance()), 1))


@functools.lru_cache(maxsize=1024)
def _laplace(mechanism: Mechanism, sensitivity: float, epsilon: float) -> tuple[float, dp.Measurement]:
    """OpenDP's Laplace mechanism on the vector of every group's value, with the smallest scale that keeps it
    epsilon-DP: one row moves one group's value, so the vector moves by the statistic's sensitivity (l1)."""
    atom = dp.atom_domain(T="i64") if mechanism == "discrete_laplace" else dp.atom_domain(T="f64", nan=False)
    space = dp.vector_domain(atom), dp.l1_distance(T=atom.carrier_type)
    scale = dp.binary_search_param(lambda s: dp.m.make_laplace(*space, scale=s), d_in=sensitivity, d_out=epsilon)
    return float(scale), dp.m.make_laplace(*space, scale=scale)


def release(exact: AggregateResult, noise: NoisePlan) -> AggregateResult:
    """The engine's exact, clamped answer with fresh noise on every metric of every group; the groups shown
    and the suppressed count are the engine's."""
    keys = exact.columns[: len(exact.columns) - len(noise.statistics)]
    values = [_released(metric, exact.groups) for metric in noise.metrics]
    names = [metric.metric.name for metric in noise.metrics]
    groups = [
        {**{key: group[key] for key in keys}, **{name: column[i] for name, column in zip(names, values, strict=True)}}
        for i, group in enumerate(exact.groups)
    ]
    return AggregateResult((*keys, *names), groups, exact.suppressed_groups, exact.min_group_size)


def _released(metric: NoisyMetric, groups: Sequence[Mapping[str, Any]]) -> list[Any]:
    if not groups:
        return []
    released = [list(noise.measurement([_exact(group, noise) for group in groups])) for noise in metric.noise]
    if metric.bounds is None:
        return released[0]
    # The noisy sum over the noisy count, kept within the bounds every value was clamped into: arithmetic on
    # released values, so it costs no privacy.
    lower, upper = metric.bounds
    return [min(max(total / max(count, 1), lower), upper) for total, count in zip(*released, strict=True)]


def _exact(group: Mapping[str, Any], noise: Noise) -> int | float:
    value = group[noise.statistic.name]
    if noise.mechanism == "discrete_laplace":
        return int(value)
    # A sum of no values is 0: a null would tell that a group has none.
    return float(value or 0)
