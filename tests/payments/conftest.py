"""Fixtures for the payments tests: localstripe on the loopback interface, a recording stand-in for
the Stripe API where localstripe cannot serve (Connect accounts, transfers, customers and setups), an
application that uses the Stripe gateway (on localstripe, or on the stand-in), and webhook signing."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from litestar import Litestar

from marketplace.app import create_app
from marketplace.config import Settings
from marketplace.payments.stripe_gateway import StripeGateway
from tests.fixtures.api import Api

STRIPE_KEY = "sk_test_marketplace_0123456789"
WEBHOOK_SECRET = "whsec_marketplace_test_secret"
LAUNCHER = Path(__file__).with_name("localstripe_server.py")


# localstripe


@pytest.fixture(scope="session")
def localstripe_url(run_dir: Path) -> Iterator[str]:
    """localstripe in a subprocess on 127.0.0.1 (a free port), answering before the first test uses it.
    Its log goes to a file: a pipe nobody reads would fill up and stop it."""
    log_path = run_dir / "localstripe.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(LAUNCHER)], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"localstripe did not start: {log_path.read_text()}")
        url = f"http://127.0.0.1:{port}"
        _wait_until_answering(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait_until_answering(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v1/balance", auth=(STRIPE_KEY, ""), timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("localstripe does not answer")
        time.sleep(0.1)


@pytest.fixture(scope="session")
async def stripe_gateway(localstripe_url: str) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, api_base=localstripe_url)
    yield gateway
    await gateway.aclose()


# a recording stand-in for the Stripe API


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    form: dict[str, str]
    body: bytes


class StripeRecorder:
    """A loopback HTTP server that records every request and answers from `routes`:
    (method, path) -> (status, JSON body); anything else gets 404 like Stripe's unknown paths."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.routes: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.arrived = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with recorder.arrived:
                    recorder.requests.append(
                        RecordedRequest(
                            method=self.command,
                            path=path,
                            headers={name.lower(): value for name, value in self.headers.items()},
                            form=dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)),
                            body=body,
                        )
                    )
                    recorder.arrived.notify_all()
                status, answer = recorder.routes.get(
                    (self.command, path),
                    (404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "none"}}),
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_recorded")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # a short poll: shutdown() waits for it, once per test
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def route(self, method: str, path: str, body: dict[str, Any], status: int = 200) -> None:
        self.routes[(method, path)] = (status, body)

    async def wait_for(self, wanted: Callable[[RecordedRequest], bool], seconds: float) -> list[RecordedRequest]:
        """The requests that are `wanted`, once there is one (or `seconds` have passed)."""

        def wait() -> list[RecordedRequest]:
            with self.arrived:
                self.arrived.wait_for(lambda: any(wanted(r) for r in self.requests), seconds)
                return [r for r in self.requests if wanted(r)]

        return await asyncio.to_thread(wait)


@pytest.fixture
def recorder() -> Iterator[StripeRecorder]:
    recording = StripeRecorder()
    recording.thread.start()
    yield recording
    recording.server.shutdown()
    recording.server.server_close()


@pytest.fixture
async def recorded_gateway(recorder: StripeRecorder) -> AsyncIterator[StripeGateway]:
    """The Stripe gateway talking to the recorder, without retries (each call is one request)."""
    gateway = StripeGateway(
        api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, api_base=recorder.url, max_network_retries=0
    )
    yield gateway
    await gateway.aclose()


# webhooks


def signature_header(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as Stripe computes it: HMAC-SHA256 of "{timestamp}.{body}" with the secret."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def event_payload(
    event_type: str, object_id: str, *, event_id: str | None = None, obj: str = "payment_intent"
) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{time.time_ns()}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": {"id": object_id, "object": obj}},
        }
    ).encode()


# an application that uses the Stripe gateway, on the run's database


@pytest.fixture(scope="session")
async def stripe_app(settings: Settings, localstripe_url: str) -> Litestar:
    return create_app(
        settings.model_copy(
            update={
                "payment_gateway": "stripe",
                "stripe_api_key": STRIPE_KEY,
                "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_api_base": localstripe_url,
                "database_pool_size": 5,
            }
        )
    )


@pytest.fixture(scope="session")
async def stripe_client(stripe_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stripe_app), base_url="http://testserver") as http:
        yield http
    await stripe_app.state.runtime.gateway.aclose()
    await stripe_app.state.runtime.db_sessions.kw["bind"].dispose()


@pytest.fixture
def stripe_api(app: Litestar, stripe_app: Litestar, stripe_client: httpx.AsyncClient) -> Api:
    """The API of the Stripe-configured application (`app` is asked for so that the tables are
    emptied after the test, as for every test that uses the database)."""
    return Api(stripe_app, stripe_client)


@pytest.fixture
async def recorded_stripe_api(app: Litestar, settings: Settings, recorder: StripeRecorder) -> AsyncIterator[Api]:
    """An application whose Stripe gateway talks to the recording stand-in."""
    recorded_app = create_app(
        settings.model_copy(
            update={
                "payment_gateway": "stripe",
                "stripe_api_key": STRIPE_KEY,
                "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_api_base": recorder.url,
                "database_pool_size": 2,
            }
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recorded_app), base_url="http://testserver") as http:
        yield Api(recorded_app, http)
    await recorded_app.state.runtime.gateway.aclose()
    await recorded_app.state.runtime.db_sessions.kw["bind"].dispose()
