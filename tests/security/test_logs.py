"""Hole 15 (logs): under `marketplace serve` every log line is one JSON object, the server's own lines
included, and a line written while serving a request names its id, which the answer carries in
`X-Request-Id`; an error's traceback stays inside its line."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marketplace.api import compliance
from marketplace.app import create_app
from marketplace.config import Settings
from marketplace.kit.logs import JsonFormatter
from tests.fixtures.api import Api

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_an_error_is_one_json_line_with_the_request_id(
    api: Api, json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(rulebook: object, language: object) -> object:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(compliance.RulebookRead, "of", broken)
    response = await api.client.get("/api/v1/rules")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (error,) = [line for line in lines if line["level"] == "error"]
    assert error["request_id"] == request_id
    assert "RuntimeError: a bug" in error["exception"]
    assert "over two lines" not in response.text  # the client is told nothing of it


async def test_a_client_request_id_is_kept_when_it_is_a_short_token(api: Api) -> None:
    kept = await api.client.get("/health", headers={"X-Request-Id": "trace-42.a_b"})
    assert kept.headers["x-request-id"] == "trace-42.a_b"
    replaced = await api.client.get("/health", headers={"X-Request-Id": "no spaces\tor tabs"})
    assert len(replaced.headers["x-request-id"]) == 32
    assert (await api.client.get("/health")).headers["x-request-id"] != replaced.headers["x-request-id"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.long
def test_every_line_marketplace_serve_writes_is_json(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "STORAGE_DIR": str(tmp_path / "var"),
        "LOG_JSON": "true",
        "LOG_LEVEL": "INFO",
    }
    command = Path(sys.executable).with_name("marketplace")
    subprocess.run([command, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True)
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [command, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ids = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ids.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).headers["x-request-id"])
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ids, "the server did not answer"
        missing = httpx.get(f"http://127.0.0.1:{port}/api/v1/nowhere", timeout=2)
        assert missing.status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    assert lines, "the server wrote nothing"
    for line in lines:
        entry = json.loads(line)  # not JSON: the test fails here, naming the line
        assert {"time", "level", "message"} <= set(entry), line


def test_the_app_leaves_the_root_logger_its_one_json_handler(tmp_path: Path) -> None:
    """Litestar's default logging config would replace the root logger's handler with its own plain-text one: a
    line logged in a worker (the pool's error as the worker stops, an unhandled error) would not be JSON."""
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    try:
        create_app(
            Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", storage_dir=tmp_path, log_json=True)
        )
        assert [type(handler.formatter) for handler in root.handlers] == [JsonFormatter]
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)
