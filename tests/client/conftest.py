"""A typed client generated from the served OpenAPI document (openapi-python-client), for journeys that
use nothing else: what a buyer, a provider or an administrator with a generated client can do."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from litestar import Litestar

PACKAGE = "exchange_client"
CONFIG = Path(__file__).with_name("generator.yaml")
# The one warning the generator gives on our document (see generator.yaml): the dataset upload's JSON lines.
EXPECTED_WARNINGS = {"Unsupported content type application/x-ndjson"}


def generator_warnings(output: str) -> set[str]:
    return {line.strip() for line in output.splitlines() if line.strip().startswith("Unsupported")}


@pytest.fixture(scope="session")
async def generated(client: httpx.AsyncClient, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client package, generated once per test process from the document the service serves."""
    served = await client.get("/schema/openapi.json")
    assert served.status_code == 200
    workdir = tmp_path_factory.mktemp("client")
    (workdir / "openapi.json").write_bytes(served.content)
    generator = Path(sys.executable).with_name("openapi-python-client")
    arguments = ["--path", "openapi.json", "--meta", "none", "--output-path", PACKAGE, "--config", str(CONFIG)]
    run = await asyncio.to_thread(
        subprocess.run, [generator, "generate", *arguments], cwd=workdir, capture_output=True, text=True, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert generator_warnings(output) == EXPECTED_WARNINGS, output
    sys.path.insert(0, str(workdir))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))


class Client:
    """The generated package and a way to call it as somebody (a bearer token) or as nobody."""

    def __init__(self, package: ModuleType, app: Litestar) -> None:
        self.package = package
        self.app = app

    def operation(self, tag: str, name: str) -> Any:
        """An operation's module, e.g. `operation("orders", "order_pay")`."""
        return importlib.import_module(f"{self.package.__name__}.api.{tag}.{name}")

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.package.__name__}.models"), name)

    def _transport(self) -> dict[str, Any]:
        return {"transport": httpx.ASGITransport(app=self.app)}

    def anonymous(self) -> Any:
        return self.package.Client(base_url="http://testserver", httpx_args=self._transport())

    def as_(self, token: str) -> Any:
        return self.package.AuthenticatedClient(base_url="http://testserver", token=token, httpx_args=self._transport())


@pytest.fixture
def typed(generated: ModuleType, app: Litestar) -> Client:
    return Client(generated, app)
