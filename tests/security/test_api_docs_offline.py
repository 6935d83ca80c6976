"""Hole 15 (API docs): the documentation pages loaded their scripts, styles and icon from CDNs, which an
exchange's network without internet cannot reach. Every asset they name is served by the service itself."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.api import Api


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/schema/redoc"])
async def test_the_docs_pages_name_only_assets_the_service_serves(api: Api, page: str) -> None:
    html = await api.client.get(page)
    assert html.status_code == 200
    assert not re.findall(r"https?://", html.text), "a page names an outside address"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/schema/assets/"), asset
        served = await api.client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset
