"""Hole 5, deeply nested JSON: a body nested a thousand levels deep, sent without logging in, made the JSON
decoder give up with a RecursionError (500 and a traceback in the log). Any depth is now a 4xx problem."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.api import Api


@pytest.mark.parametrize("depth", [900, 1_000, 5_000, 100_000])
@pytest.mark.parametrize("shape", ["[{}]", '{{"a":{}}}'])
async def test_any_depth_of_nesting_is_a_client_error(
    api: Api, depth: int, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    opening, closing = shape.split("{}")
    body = opening * depth + "1" + closing * depth
    with caplog.at_level(logging.ERROR):
        response = await api.client.post(
            "/api/v1/auth/token", content=body, headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
