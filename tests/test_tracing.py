"""Traces: with a collector configured, a request gives a server span for its route and a span per
database statement under it; a probe gives none. The exporter is swapped for an in-memory one."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from litestar.plugins.opentelemetry import OpenTelemetryPlugin
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from marketplace.app import create_app
from marketplace.config import Settings
from marketplace.web import tracing
from tests.fixtures.api import Api


async def test_without_a_collector_nothing_is_traced(settings: Settings, app: Litestar) -> None:
    assert settings.otel_exporter_otlp_endpoint is None
    assert not [plugin for plugin in app.plugins if isinstance(plugin, OpenTelemetryPlugin)]


async def test_a_request_is_traced_with_its_database_statements(
    settings: Settings, app: Litestar, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "OTLPSpanExporter", lambda endpoint: exported)
    monkeypatch.setattr(tracing, "BatchSpanProcessor", SimpleSpanProcessor)  # exported as each span ends
    traced = create_app(
        settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:4318", "database_pool_size": 2})
    )
    person = await api.person("Traced")
    try:
        transport = httpx.ASGITransport(app=traced)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/api/v1/me", headers=person.headers)).status_code == 200
    finally:
        await traced.state.runtime.stop()
        HTTPXClientInstrumentor().uninstrument()  # instrumented for the whole process

    spans = exported.get_finished_spans()
    servers = [span for span in spans if span.kind.name == "SERVER"]
    assert [span.name for span in servers] == ["GET /api/v1/me"]
    request = servers[0]
    statements = [span for span in spans if span.attributes and "db.statement" in span.attributes]
    # the caller's access is read from the database within the request's trace
    assert [span for span in statements if span.context.trace_id == request.context.trace_id]
    assert request.resource.attributes["service.name"] == "marketplace"
