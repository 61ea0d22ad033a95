"""The packages of the gateway import each other without a cycle (docs/architecture.md draws the graph)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import_graph.py"


def _import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_between_the_packages_of_the_gateway() -> None:
    graph = _import_graph()
    edges = graph.package_imports()
    assert {"auth", "audit", "citizens", "backends", "errors"} <= set(edges)
    assert graph.cycle(edges) is None


def test_a_cycle_is_found_and_named() -> None:
    graph = _import_graph()
    assert graph.cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert graph.cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert graph.reduction({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == {"a": {"b"}, "b": {"c"}, "c": set()}
