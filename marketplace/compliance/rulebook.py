"""The rulebook: which installed rules are enabled, at what severity, with which parameters.

Configured by a TOML file (`rules/rulebook.toml` unless RULEBOOK_PATH names another):

    [rules.R5]
    severity = "review"
    [rules.R5.parameters]
    price_deviation_band_bps = 2000

    [rules.S9]
    enabled = false

Every installed rule is enabled at its default severity unless the file says otherwise. A
rule id or parameter the file names but no installed rule has is an error, so a typo cannot
silently leave a rule at its defaults."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.compliance.contract import Rule, Severity, Stage
from marketplace.compliance.errors import RulebookError
from marketplace.kit.canonical import canonical_json

DEFAULT_RULEBOOK_PATH = Path(__file__).resolve().parent.parent.parent / "rules" / "rulebook.toml"


@dataclass(frozen=True)
class ActiveRule:
    rule: Rule
    severity: Severity


def rule_order(rule_id: str) -> tuple[int, int, str]:
    """R1..R8, then S1..S10, then vendor rules by id."""
    match = re.fullmatch(r"([RS])(\d+)", rule_id)
    if match:
        return (0 if match[1] == "R" else 1, int(match[2]), rule_id)
    return (2, 0, rule_id)


class Rulebook:
    def __init__(self, rules: list[ActiveRule], disabled: tuple[str, ...] = ()) -> None:
        self.rules = tuple(sorted(rules, key=lambda active: rule_order(active.rule.id)))
        self.disabled = disabled
        self.by_stage: dict[Stage, tuple[ActiveRule, ...]] = {
            stage: tuple(a for a in self.rules if stage in a.rule.stages) for stage in Stage
        }
        self.fingerprint = hashlib.sha256(canonical_json(self.describe()).encode()).hexdigest()

    def describe(self) -> list[dict[str, Any]]:
        """The canonical list the fingerprint is taken of."""
        return [
            {"id": a.rule.id, "version": a.rule.version, "severity": a.severity.value, "parameters": a.rule.params}
            for a in self.rules
        ]

    def get(self, rule_id: str) -> ActiveRule | None:
        return next((a for a in self.rules if a.rule.id == rule_id), None)


def read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise RulebookError(f"rulebook file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulebookError(f"rulebook file {path} is not valid TOML: {exc}") from exc


def build_rulebook(rule_classes: Mapping[str, type[Rule]], config: Mapping[str, Any]) -> Rulebook:
    unknown_sections = set(config) - {"rulebook", "rules"}
    if unknown_sections:
        raise RulebookError(f"unknown rulebook sections: {sorted(unknown_sections)}")
    settings = config.get("rules", {})
    if not isinstance(settings, dict):
        raise RulebookError("[rules] must be a table")
    unknown = set(settings) - set(rule_classes)
    if unknown:
        raise RulebookError(f"the rulebook configures rules that are not installed: {sorted(unknown)}")
    active: list[ActiveRule] = []
    disabled: list[str] = []
    for rule_id, rule_class in rule_classes.items():
        setting = settings.get(rule_id, {})
        if not isinstance(setting, dict):
            raise RulebookError(f"[rules.{rule_id}] must be a table")
        extra = set(setting) - {"enabled", "severity", "parameters"}
        if extra:
            raise RulebookError(f"[rules.{rule_id}] has unknown keys {sorted(extra)}")
        enabled = setting.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RulebookError(f"[rules.{rule_id}] enabled must be true or false")
        if not enabled:
            disabled.append(rule_id)
            continue
        try:
            severity = Severity(setting.get("severity", rule_class.default_severity.value))
        except ValueError as exc:
            raise RulebookError(f"[rules.{rule_id}] severity must be one of {[s.value for s in Severity]}") from exc
        params = _checked_parameters(rule_id, rule_class.parameters, setting.get("parameters", {}))
        try:
            rule = rule_class(params)
        except (ValueError, TypeError) as exc:
            raise RulebookError(f"rule {rule_id} refuses its parameters: {exc}") from exc
        active.append(ActiveRule(rule=rule, severity=severity))
    return Rulebook(active, tuple(sorted(disabled, key=rule_order)))


def _checked_parameters(rule_id: str, defaults: Mapping[str, Any], overrides: Any) -> dict[str, Any]:
    if not isinstance(overrides, dict):
        raise RulebookError(f"[rules.{rule_id}.parameters] must be a table")
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise RulebookError(f"rule {rule_id} has no parameters {sorted(unknown)}; it has {sorted(defaults)}")
    for name, value in overrides.items():
        expected = defaults[name]
        if not _same_kind(expected, value):
            raise RulebookError(
                f"rule {rule_id} parameter {name} must be {type(expected).__name__}, got {type(value).__name__}"
            )
    return dict(overrides)


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def load_rulebook(path: Path | None = None) -> Rulebook:
    """The installed rules under the configuration at `path` (default: rules/rulebook.toml)."""
    from marketplace.compliance.registry import load_rule_classes

    return build_rulebook(load_rule_classes(), read_config(path or DEFAULT_RULEBOOK_PATH))
