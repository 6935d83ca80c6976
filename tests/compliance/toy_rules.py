"""Small rules for testing the engine, the rulebook and the registry without the real ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from marketplace.compliance.contract import Finding, Outcome, Rule, RuleContext, Severity, Stage

ALL_STAGES = frozenset(Stage)


def toy_rule(
    rule_id: str,
    outcomes: Sequence[Outcome],
    *,
    stages: frozenset[Stage] = ALL_STAGES,
    severity: Severity = Severity.BLOCK,
    parameters: dict[str, Any] | None = None,
) -> type[Rule]:
    """A rule that returns one finding per given outcome, whatever the snapshot."""

    class Toy(Rule):
        id: ClassVar[str] = rule_id
        title_zh: ClassVar[str] = f"测试规则 {rule_id}"
        title_en: ClassVar[str] = f"Toy rule {rule_id}"
        version: ClassVar[str] = "1.0.0"
        basis: ClassVar[tuple[str, ...]] = ("test",)
        default_severity: ClassVar[Severity] = severity

        def evaluate(self, ctx: RuleContext) -> list[Finding]:
            return [self.finding(f"check-{n}", outcome, outcome.value) for n, outcome in enumerate(outcomes)]

    Toy.stages = stages
    Toy.parameters = parameters or {"threshold": 10}
    Toy.__name__ = f"Toy{rule_id}"
    return Toy


class RaisingRule(Rule):
    id: ClassVar[str] = "X-RAISES"
    title_zh: ClassVar[str] = "出错规则"
    title_en: ClassVar[str] = "A rule that raises"
    version: ClassVar[str] = "1.0.0"
    basis: ClassVar[tuple[str, ...]] = ("test",)
    stages: ClassVar[frozenset[Stage]] = ALL_STAGES
    default_severity: ClassVar[Severity] = Severity.WARN

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        raise KeyError("a fact the rule expected")


# For registry tests: referenced by entry points as tests.compliance.toy_rules:NAME
GoodRule = toy_rule("X-GOOD", [Outcome.PASS])
OtherGoodRule = toy_rule("X-GOOD", [Outcome.PASS])


class NotARule:
    id = "X-NOT"
