"""Finding the installed rules: every entry point of the group `marketplace.rules`.

A rule that fails to load, is not a proper rule, or shares its id with another stops the
service from starting, with a message that names it."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from marketplace.compliance.contract import ENTRY_POINT_GROUP, Rule, Severity, Stage
from marketplace.compliance.errors import RuleLoadError


def installed_entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def load_rule_classes(points: Iterable[EntryPoint] | None = None) -> dict[str, type[Rule]]:
    classes: dict[str, type[Rule]] = {}
    sources: dict[str, str] = {}
    for point in installed_entry_points() if points is None else points:
        where = f"entry point {point.name!r} = {point.value!r}"
        if point.dist is not None:
            where += f" (from {point.dist.name})"
        try:
            loaded = point.load()
        except Exception as exc:
            raise RuleLoadError(f"rule {where} failed to load: {type(exc).__name__}: {exc}") from exc
        rule_class = _checked_rule_class(loaded, where)
        if rule_class.id != point.name:
            raise RuleLoadError(f"rule {where} declares id {rule_class.id!r}; the entry point must be named after it")
        if rule_class.id in classes:
            raise RuleLoadError(f"two rules share the id {rule_class.id!r}: {sources[rule_class.id]} and {where}")
        classes[rule_class.id] = rule_class
        sources[rule_class.id] = where
    return classes


def _checked_rule_class(loaded: object, where: str) -> type[Rule]:
    if not (isinstance(loaded, type) and issubclass(loaded, Rule)):
        raise RuleLoadError(f"rule {where} is not a subclass of marketplace.compliance.contract.Rule")
    problems: list[str] = []
    for name in ("id", "title_zh", "title_en", "version"):
        if not isinstance(getattr(loaded, name, None), str) or not getattr(loaded, name):
            problems.append(f"{name} must be a non-empty string")
    basis = getattr(loaded, "basis", None)
    if not isinstance(basis, tuple) or not basis or not all(isinstance(b, str) for b in basis):
        problems.append("basis must be a non-empty tuple of strings")
    stages = getattr(loaded, "stages", None)
    if not isinstance(stages, frozenset) or not stages or not all(isinstance(s, Stage) for s in stages):
        problems.append("stages must be a non-empty frozenset of Stage")
    if not isinstance(loaded.parameters, dict):
        problems.append("parameters must be a dict of defaults")
    if not isinstance(loaded.default_severity, Severity):
        problems.append("default_severity must be a Severity")
    if loaded.evaluate is Rule.evaluate:
        problems.append("evaluate() is not implemented")
    if problems:
        raise RuleLoadError(f"rule {where} is not a valid rule: " + "; ".join(problems))
    return loaded
