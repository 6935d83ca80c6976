"""Traces for operators, when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per request (Litestar's
OpenTelemetry plugin), per database statement and per call to the payment gateway, exported in
batches over OTLP/HTTP. Off by default: nothing is instrumented and nothing is sent."""

from __future__ import annotations

from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace.config import Settings

SERVICE_NAME = "marketplace"
# Probes and scrapes every few seconds would bury the requests that matter.
UNTRACED_PATHS = ["^/health$", "^/ready$", "^/metrics$"]


def tracing(settings: Settings, engine: AsyncEngine) -> OpenTelemetryPlugin | None:
    """The plugin that traces requests, with the database and the gateway's HTTP calls instrumented;
    None when no collector is configured."""
    if settings.otel_exporter_otlp_endpoint is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    endpoint = f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    # Its declared range stops below SQLAlchemy 2.1, whose engine events it uses unchanged (tests/test_tracing.py).
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude=UNTRACED_PATHS))
