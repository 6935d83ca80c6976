"""The shape of the service, read from its source: packages import one another without a cycle, no class
grows past a size one can read, and no service builds its peers (they are wired in `marketplace.wiring`)."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "marketplace"
MAX_CLASS_LINES = 300


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def top_level(path: Path) -> str:
    """The package (or top-level module) of `marketplace` a file belongs to: accounts, app, ..."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_packages(tree: ast.Module) -> set[str]:
    """The `marketplace` packages a module imports, wherever the import stands (lazy ones included)."""
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "marketplace":
                names = [f"marketplace.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(name.split(".")[1] for name in names if name.startswith("marketplace."))
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path, tree in modules():
        source = top_level(path)
        graph[source].update(imported_packages(tree) - {source})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the list of its nodes, or None (depth-first search, colouring nodes)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_package_import_graph_has_no_cycle() -> None:
    graph = package_graph()
    assert {"accounts", "orders", "flows", "web", "api"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def classes() -> Iterator[tuple[Path, ast.ClassDef]]:
    for path, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                yield path, node


def test_no_class_is_longer_than_300_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"
        for path, node in classes()
        if (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_CLASS_LINES
    ]
    assert not long, long


def service_classes() -> set[str]:
    """Domain services (`...Service`) and flows (every class of marketplace/flows)."""
    names = set()
    for path, node in classes():
        if node.name.endswith("Service") or top_level(path) == "flows":
            names.add(node.name)
    return names


def constructed_in_init(node: ast.ClassDef) -> set[str]:
    """Names of the classes `__init__` calls, e.g. `AuditService(session)`."""
    called = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "__init__":
            for call in ast.walk(item):
                if isinstance(call, ast.Call):
                    function = call.func
                    if isinstance(function, ast.Name):
                        called.add(function.id)
                    elif isinstance(function, ast.Attribute):
                        called.add(function.attr)
    return called


def test_no_service_or_flow_constructs_another_in_its_init() -> None:
    services = service_classes()
    assert {"OrderService", "AccountService", "Trading", "Settlement", "Delivery"} <= services
    built = [
        f"{path.relative_to(PACKAGE)}: {node.name}.__init__ builds {sorted(called)}"
        for path, node in classes()
        if (called := constructed_in_init(node) & services)
    ]
    assert not built, built


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n    def __init__(self, s):\n        self.b = BService(s)\n", {"BService"}),
        ("class A:\n    def __init__(self, b):\n        self.b = b\n", set()),
        ("class A:\n    def __init__(self, s):\n        self.r = x.Repository(s)\n", {"Repository"}),
    ],
)
def test_the_constructor_check_sees_what_init_calls(source: str, expected: set[str]) -> None:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    assert constructed_in_init(node) == expected
