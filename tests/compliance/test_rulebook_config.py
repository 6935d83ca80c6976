"""The rulebook file and the registry refuse what they cannot honour, and say what is wrong."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from marketplace.compliance.contract import Outcome
from marketplace.compliance.errors import RulebookError, RuleLoadError
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.rulebook import build_rulebook, read_config
from tests.compliance.toy_rules import toy_rule

CLASSES = {"V1": toy_rule("V1", [Outcome.PASS], parameters={"band_bps": 3000, "share": 0.5, "on": True})}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": {"V9": {}}}, "not installed"),
        ({"rules": {"V1": {"severity": "fatal"}}}, "severity must be one of"),
        ({"rules": {"V1": {"enabled": "no"}}}, "enabled must be true or false"),
        ({"rules": {"V1": {"parameters": {"band": 1}}}}, "has no parameters ['band']"),
        ({"rules": {"V1": {"parameters": {"band_bps": "3000"}}}}, "must be int"),
        ({"rules": {"V1": {"parameters": {"on": 1}}}}, "must be bool"),
        ({"rules": {"V1": {"colour": "red"}}}, "unknown keys"),
        ({"rulez": {}}, "unknown rulebook sections"),
    ],
)
def test_bad_configuration_is_refused(config, message) -> None:
    with pytest.raises(RulebookError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_rulebook(CLASSES, config)


def test_integer_is_accepted_for_a_float_parameter() -> None:
    rulebook = build_rulebook(CLASSES, {"rules": {"V1": {"parameters": {"share": 1}}}})
    assert rulebook.rules[0].rule.params["share"] == 1


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RulebookError, match="does not exist"):
        read_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[rules.R1\n")
    with pytest.raises(RulebookError, match="not valid TOML"):
        read_config(broken)


def point(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=target, group="marketplace.rules")


def test_registry_loads_rules_from_entry_points() -> None:
    classes = load_rule_classes([point("X-GOOD", "tests.compliance.toy_rules:GoodRule")])
    assert list(classes) == ["X-GOOD"]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([point("X-GONE", "tests.compliance.no_such_module:Rule")], "failed to load: ModuleNotFoundError"),
        ([point("X-NOT", "tests.compliance.toy_rules:NotARule")], "is not a subclass"),
        ([point("X-OTHER", "tests.compliance.toy_rules:GoodRule")], "declares id 'X-GOOD'"),
        (
            [
                point("X-GOOD", "tests.compliance.toy_rules:GoodRule"),
                point("X-GOOD", "tests.compliance.toy_rules:OtherGoodRule"),
            ],
            "two rules share the id 'X-GOOD'",
        ),
    ],
)
def test_registry_refuses_broken_or_clashing_rules(points, message) -> None:
    with pytest.raises(RuleLoadError, match=message):
        load_rule_classes(points)


def test_a_rule_that_refuses_its_parameter_values_stops_the_rulebook() -> None:
    from tests.compliance.toy_rules import toy_rule as make

    picky = make("V2", [Outcome.PASS], parameters={"band_bps": 3000})
    original_init = picky.__init__

    def init(self, params=None):  # type: ignore[no-untyped-def]
        original_init(self, params)
        if self.params["band_bps"] < 0:
            raise ValueError("band_bps must not be negative")

    picky.__init__ = init  # type: ignore[method-assign]
    with pytest.raises(RulebookError, match="V2 refuses its parameters: band_bps must not be negative"):
        build_rulebook({"V2": picky}, {"rules": {"V2": {"parameters": {"band_bps": -1}}}})
