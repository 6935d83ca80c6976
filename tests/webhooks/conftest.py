"""What the webhook tests share: a real HTTP receiver on loopback that answers as it is told and keeps every
request, the application's runtime with loopback allow-listed (and retries that wait nothing, when asked), an
independent check of Standard Webhooks signatures, and the order tests' market."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from marketplace.events.models import EventType
from marketplace.jobs import deliver_webhooks
from marketplace.wiring import Runtime
from tests.fixtures.api import Api, Person
from tests.orders.conftest import market

__all__ = ["market"]

ENDPOINTS = "/api/v1/webhook-endpoints"
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1: answers the statuses in `script` in turn, then `then`; keeps every request."""

    server: ThreadingHTTPServer
    script: list[int] = field(default_factory=list)
    then: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            request.status = self.script.pop(0) if self.script else self.then
            return request.status

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = holder[0].answer(Received(self.path, headers, body))
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(f"answered {status}".encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
async def hooks(api: Api) -> AsyncIterator[Runtime]:
    """The application with loopback allow-listed (its requests and the job): the runtime the job runs on."""
    original: Runtime = api.app.state.runtime
    runtime = with_settings(original, webhook_allowed_networks=LOOPBACK)
    api.app.state.runtime = runtime
    try:
        yield runtime
    finally:
        api.app.state.runtime = original


def with_settings(runtime: Runtime, **changes: Any) -> Runtime:
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=changes))


async def run_until_idle(runtime: Runtime, runs: int = 10) -> None:
    """The webhook job, again until a run queues and sends nothing."""
    for _ in range(runs):
        done = await deliver_webhooks(runtime)
        if not any(done.values()):
            return
    raise AssertionError("the webhook job still had work after 10 runs")


async def create_endpoint(
    api: Api, who: Person | dict[str, str], organization_id: str, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    headers = who.headers if isinstance(who, Person) else who
    body = {"organization_id": organization_id, "url": url, "event_types": event_types or ["order.", "licence."]}
    response = await api.client.post(ENDPOINTS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def record_event(api: Api, organization_id: str, event_type: EventType = EventType.ORDER_PAID) -> None:
    """An event concerning one organisation, as a flow records it."""
    subject = uuid.uuid4()
    async with api.services() as services:
        await services.events.record(
            event_type,
            subject_type=event_type.value.split(".")[0],
            subject_id=subject,
            parties=[uuid.UUID(organization_id)],
            payload={"order_id": str(subject), "status": event_type.value.split(".")[1]},
        )


def signatures_by(secret: str, request: Received) -> int:
    """How many of the request's `webhook-signature` values the secret makes, by the Standard Webhooks
    algorithm written out here on its own: base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with
    the base64-decoded secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = request.headers["webhook-signature"].split(" ")
    return sum(hmac.compare_digest(value, f"v1,{expected}") for value in given)
