"""The import graph of our own packages points down the layers and has no circle.

Guards against the settings layer reaching up into domain rules again (infra/config.py once
imported k8s/capacity.py, which imported infra/config.py back), which makes every new setting
or rule a question of import order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (folder to walk, prefix to strip from the module path)
PACKAGES = (("infra", ""), ("k8s", ""), ("policy", ""), ("bootstrap", ""), ("agent/voice_agent", "agent/"))
# The bottom layer: the settings vocabulary imports nothing of ours.
BOTTOM = ("infra.settings",)


def _modules() -> dict[str, Path]:
    found = {}
    for folder, strip in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix().removeprefix(strip)
            found[rel[:-3].replace("/", ".").removesuffix(".__init__")] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {m for m in (_resolve(n, modules) for n in names) if m and m != module}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle as a path a -> b -> ... -> a, or [] when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_no_import_circle_among_our_modules():
    graph = import_graph()
    assert len(graph) > 30, "the walk found too few modules to mean anything"
    assert find_cycle(graph) == [], " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("module", BOTTOM)
def test_bottom_layer_imports_nothing_of_ours(module):
    assert import_graph()[module] == set()


def test_cycle_finder_finds_a_planted_circle():
    """The check above is only worth something if it can fail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_graph_sees_relative_and_package_imports():
    graph = import_graph()
    assert "policy.rules.base" in graph["policy.rules.workload"]
    assert "k8s.capacity" in graph["policy.rules.workload"]
    assert "infra.settings" in graph["infra.config"]
