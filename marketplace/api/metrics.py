"""Prometheus metrics for operators: the HTTP requests this process served (Litestar's Prometheus
middleware, by route template and status, with their latency) and the exchange's counts from its
tables (marketplace/flows/metrics.py).

Off unless METRICS_TOKEN is set (404, as any path that is not there); the scraper sends the token as a
bearer token. Request metrics are per process unless PROMETHEUS_MULTIPROC_DIR names a directory the
workers share (prometheus_client's multiprocess mode); the exchange's counts are the same in every worker."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from marketplace.config import Settings
from marketplace.errors import NotAuthenticated, NotFound
from marketplace.flows.metrics import Count, exchange_counts
from marketplace.kit.i18n import Message
from marketplace.web.dependencies import DbSession
from marketplace.web.principal import Access
from marketplace.web.problems import problem_responses

METRICS_PATH = "/metrics"
# Route templates, not raw paths: ids would make a series per object and put them in the metrics.
PROMETHEUS = PrometheusConfig(
    app_name="marketplace",
    prefix="marketplace_http",
    group_path=True,
    exclude=[f"^{METRICS_PATH}$"],
    exclude_unhandled_paths=True,
)


class _Counts(Collector):
    def __init__(self, counts: list[Count]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for count in self.counts:
            family = GaugeMetricFamily(count.name, count.description, labels=list(count.labels))
            for labels, value in count.values:
                family.add_metric(list(labels), value)
            yield family


def _request_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class MetricsController(Controller):
    path = "/"
    tags = ["service"]

    @get(
        METRICS_PATH,
        media_type=CONTENT_TYPE_LATEST,
        responses=problem_responses(401, 404),
        opt={"scope": Access.PUBLIC},
    )
    async def metrics(
        self, request: Request[Any, Any, State], db_session: DbSession, settings: NamedDependency[Settings]
    ) -> Response[bytes]:
        """Prometheus text: HTTP requests by route and status with their latency, and the exchange's counts
        (orders by status, verdicts by stage and decision, deliveries, data calls, webhook events, payouts).
        Needs the METRICS_TOKEN as a bearer token; without one configured, metrics are off (404)."""
        if settings.metrics_token is None:
            raise NotFound(Message("request.no-such-path", "no such path"))
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(supplied, settings.metrics_token.encode()):
            raise NotAuthenticated()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Counts(await exchange_counts(db_session)))
        return Response(_request_metrics() + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
