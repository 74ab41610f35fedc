"""The import graph of our own packages points down the layers and has no circle, and the
folders are the layers: a module imports only from its own folder's layer or the ones below.

    tooling/, bootstrap/, __main__.py   the offline plan, mocks, rollout check; the programs
    policy/                             the CrossGuard pack over plain rule functions
    k8s/                                Kubernetes components (and those with GCP and Kubernetes children)
    infra/                              GCP components
    domain/                             settings, their declarations and loader, domain rules

Guards against the settings layer reaching up into domain rules again (infra/config.py once
imported k8s/capacity.py, which imported infra/config.py back), which makes every new setting
or rule a question of import order, and against a rule hiding in a component folder (issue 30:
three arrows ran up the house).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (folder to walk, prefix to strip from the module path)
PACKAGES = (("domain", ""), ("infra", ""), ("k8s", ""), ("policy", ""), ("tooling", ""), ("bootstrap", ""),
            ("agent/voice_agent", "agent/"))
# Bottom to top; a module may import its own layer and the ones below. The agent (its own venv
# and image) imports none of the stack's packages and none of them imports it.
LAYERS = (("domain",), ("infra",), ("k8s",), ("policy",), ("tooling", "bootstrap", "__main__"))
# Provider SDKs declare resources; the domain layer describes them and must not.
RESOURCE_MODULES = ("pulumi_gcp", "pulumi_kubernetes", "pulumi_random", "pulumi_policy")
# The bottom layer: the settings vocabulary imports nothing of ours.
BOTTOM = ("domain.settings",)


def _modules() -> dict[str, Path]:
    found = {"__main__": ROOT / "__main__.py"}
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
    assert "domain.capacity" in graph["policy.rules.workload"]
    assert "domain.settings" in graph["domain.config"]


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    return next((i for i, folders in enumerate(LAYERS) if top in folders), None)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer's folder to a higher one, as "a -> b"."""
    found = []
    for module, targets in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here is None or there is None:
                if (here is None) != (there is None):  # the agent and the stack never import each other
                    found.append(f"{module} -> {target}")
            elif there > here:
                found.append(f"{module} -> {target}")
    return found


def test_every_folder_is_a_layer():
    graph = import_graph()
    assert {m.split(".")[0] for m in graph} == {f for layer in LAYERS for f in layer} | {"voice_agent"}


def test_imports_only_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_a_planted_upward_import():
    graph = {"domain.capacity": {"k8s.pod"}, "k8s.pod": {"domain.capacity"}, "tooling.plan": {"infra.cluster"},
             "voice_agent.worker": {"domain.runbook"}}
    assert upward_imports(graph) == ["domain.capacity -> k8s.pod", "voice_agent.worker -> domain.runbook"]


def test_the_domain_layer_declares_no_resource():
    """Settings, sizes, timing, maintenance, database and cost rules import no provider SDK."""
    for module, path in sorted(_modules().items()):
        if not module.startswith("domain."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in RESOURCE_MODULES], (module, names)


def test_no_policy_module_grows_past_its_reading_size():
    """Issue 30: policy/rules/workload.py had grown back to 569 lines. identity.py and tools.py
    are being rewritten elsewhere and are held to the same bound once they land."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "policy").rglob("*.py")}
    assert sizes and max(sizes.values()) <= 350, {n: s for n, s in sizes.items() if s > 350}
