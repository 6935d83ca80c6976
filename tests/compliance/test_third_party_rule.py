"""A rule from another installed distribution is loaded, listed, fingerprinted and decides.

The test builds a real wheel that declares a rule under the `marketplace.rules` entry-point
group, installs it with pip into a directory of its own, and runs the `marketplace` command
with that directory on the path, so the project's environment stays untouched."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.rules.snapshots import BUYER, replace, trade_snapshot

DIST = "gz_export_control"
RULE_SOURCE = textwrap.dedent(
    '''
    """A vendor rule: no trade with buyers in embargoed jurisdictions."""
    from typing import Any, ClassVar

    from marketplace.compliance.contract import Finding, Rule, RuleContext, Severity, Stage


    class ExportControlRule(Rule):
        id: ClassVar[str] = "GZ-EXPORT-1"
        title_zh: ClassVar[str] = "出口管制名单检查"
        title_en: ClassVar[str] = "Export control list check"
        version: ClassVar[str] = "0.3.0"
        basis: ClassVar[tuple[str, ...]] = ("Export Control Law Art. 18",)
        stages: ClassVar[frozenset[Stage]] = frozenset({Stage.TRADE})
        parameters: ClassVar[dict[str, Any]] = {"embargoed": ["KP", "XX"]}
        default_severity: ClassVar[Severity] = Severity.BLOCK

        def evaluate(self, ctx: RuleContext) -> list[Finding]:
            buyer = ctx.snapshot.buyer
            if buyer is None:
                return [self.failed("buyer", "no buyer in the trade snapshot")]
            return [
                self.check(
                    "embargo",
                    buyer.jurisdiction not in self.params["embargoed"],
                    "buyer is outside embargoed jurisdictions",
                    "buyer is in an embargoed jurisdiction",
                    {"jurisdiction": buyer.jurisdiction},
                )
            ]
    '''
)


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path) -> Path:
    info = f"{DIST}-0.3.0.dist-info"
    files = {
        f"{DIST}/__init__.py": RULE_SOURCE.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.3.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[marketplace.rules]\nGZ-EXPORT-1 = {DIST}:ExportControlRule\n".encode(),
    }
    record = "\n".join([*(record_line(n, d) for n, d in files.items()), f"{info}/RECORD,,"]) + "\n"
    wheel = directory / f"{DIST}-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


@pytest.fixture(scope="module")
def vendor_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("vendor")
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(build_wheel(work)),
        ],
        check=True,
    )
    return site


def marketplace(*args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "marketplace.cli", *args], capture_output=True, text=True, env=env, check=False
    )


def test_installed_vendor_rule_is_loaded_listed_and_fingerprinted(vendor_site: Path) -> None:
    without = json.loads(marketplace("rules", "list", "--json").stdout)
    with_vendor = marketplace("rules", "list", "--json", site=vendor_site)
    assert with_vendor.returncode == 0, with_vendor.stderr
    listed = json.loads(with_vendor.stdout)
    vendor = next(item for item in listed["items"] if item["id"] == "GZ-EXPORT-1")
    assert vendor["source"] == DIST
    assert vendor["version"] == "0.3.0"
    assert vendor["parameters"] == {"embargoed": ["KP", "XX"]}
    assert [item["id"] for item in listed["items"]][-1] == "GZ-EXPORT-1"  # vendor rules run after R1..S10
    assert listed["fingerprint"] != without["fingerprint"]


def test_installed_vendor_rule_decides(vendor_site: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.json"
    clean.write_text(trade_snapshot().model_dump_json())
    embargoed = tmp_path / "embargoed.json"
    embargoed.write_text(trade_snapshot(buyer=replace(BUYER, jurisdiction="KP")).model_dump_json())

    args = ("rules", "evaluate", "--stage", "trade", "--at", "2026-11-22T10:00:00Z")
    accepted = json.loads(marketplace(*args, "--snapshot", str(clean), site=vendor_site).stdout)
    assert accepted["decision"] == "accepted"
    run = marketplace(*args, "--snapshot", str(embargoed), site=vendor_site)
    rejected = json.loads(run.stdout)
    assert rejected["decision"] == "rejected"
    vendor_findings = [f for f in rejected["findings"] if f["rule_id"] == "GZ-EXPORT-1"]
    assert vendor_findings == [
        {
            "rule_id": "GZ-EXPORT-1",
            "check": "GZ-EXPORT-1.embargo",
            "outcome": "fail",
            "message": "buyer is in an embargoed jurisdiction",
            "message_id": None,  # plain text: shown as it is in every language
            "params": {},
            "evidence": {"jurisdiction": "KP"},
            "basis": ["Export Control Law Art. 18"],
        }
    ]


def test_a_vendor_rule_that_fails_to_load_stops_the_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "broken_rules-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken_rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[marketplace.rules]\nBROKEN-1 = broken_rules:Missing\n")
    run = marketplace("rules", "list", site=site)
    assert run.returncode != 0
    assert "BROKEN-1" in run.stderr
    assert "failed to load" in run.stderr
