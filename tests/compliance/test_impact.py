"""`marketplace rules impact`: what a candidate rulebook would change for admitted organisations."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import pytest

from marketplace.cli import main as cli_main
from tests.fixtures.api import Api


async def run_cli(api: Api, *args: str) -> tuple[int, str]:
    settings = api.app.state.runtime.settings
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", settings.database_url)
        patch.setenv("STORAGE_DIR", str(settings.storage_dir))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = await asyncio.to_thread(cli_main, list(args))
    return code, out.getvalue()


async def test_impact_names_the_organisations_a_stricter_rulebook_would_reject(api: Api, tmp_path: Path) -> None:
    admin = await api.admin()
    weak = await api.admitted_organization(await api.person("Weak"), admin, kind="provider", dsmm_level=2)
    strong = await api.admitted_organization(await api.person("Strong"), admin, kind="provider", dsmm_level=4)

    candidate = tmp_path / "stricter.toml"
    candidate.write_text("[rules.S10.parameters]\nrequired_level_by_grade = { general = 3, important = 4, core = 5 }\n")
    code, out = await run_cli(api, "rules", "impact", "--rulebook", str(candidate))
    assert code == 0
    report = json.loads(out)
    assert report["subjects_checked"] == 2
    assert report["candidate_fingerprint"] != report["current_fingerprint"]
    [change] = report["changes"]
    assert change["subject_id"] == weak["id"]
    assert (change["current_decision"], change["candidate_decision"]) == ("accepted", "rejected")
    assert change["newly_failing"] == ["S10.level-for-declared-grade"]
    assert strong["id"] not in out
    assert report["would_now_fail"] == 1


async def test_impact_of_the_current_rulebook_changes_nothing(api: Api) -> None:
    admin = await api.admin()
    await api.admitted_organization(await api.person("Any"), admin, kind="provider")
    code, out = await run_cli(api, "rules", "impact", "--rulebook", "rules/rulebook.toml")
    report = json.loads(out)
    assert code == 0
    assert report["subjects_checked"] == 1
    assert report["changes"] == []
