"""The pack's entry file, run as the Pulumi CLI runs it, with PolicyPack replaced by a recorder.

The real PolicyPack starts a gRPC server and blocks forever, so the test swaps that one class
(nothing else) and executes policy/__main__.py top to bottom with runpy: the same imports, the
same sys.path handling, the same arguments the CLI's analyzer would receive.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import pulumi_policy
import pytest
from pulumi_policy import EnforcementLevel

from policy.rules import RULES

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "policy"


class RecordingPack:
    built: list[dict] = []

    def __init__(self, **kwargs):
        RecordingPack.built.append(kwargs)


@pytest.fixture
def recorded(monkeypatch) -> list[dict]:
    RecordingPack.built = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", RecordingPack)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the entry file prepends the repo root
    runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    return RecordingPack.built


def test_entry_file_builds_one_pack_with_every_rule_exactly_once(recorded):
    [pack] = recorded
    names = [policy.name for policy in pack["policies"]]
    assert sorted(names) == sorted(rule.id for rule in RULES)
    assert len(names) == len(set(names))
    levels = {policy.name: policy.enforcement_level for policy in pack["policies"]}
    assert {rule.id: levels[rule.id].value for rule in RULES} == {rule.id: rule.severity for rule in RULES}
    # Every policy states its own level, so the pack-wide default never decides one.
    assert all(isinstance(level, EnforcementLevel) for level in levels.values())


def test_entry_file_pack_name_is_valid_for_the_cli(recorded):
    [pack] = recorded
    assert pack["name"] == "gke-voice-agents"


def test_no_pack_module_shadows_a_standard_or_installed_module():
    """The CLI runs the pack with policy/ itself first on sys.path, so a file there named like
    a stdlib or installed top-level module (types.py, grpc.py, ...) would replace it for every
    import in the process."""
    own = {path.stem for path in POLICY_DIR.glob("*.py")} - {"__init__", "__main__"}
    own |= {path.name for path in POLICY_DIR.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    clashing = sorted(name for name in own if name in sys.stdlib_module_names or _installed_top_level(name))
    assert clashing == []


def _installed_top_level(name: str) -> bool:
    """Whether `name` already names a module outside policy/ (an installed package, say)."""
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin is not None and not Path(spec.origin).is_relative_to(POLICY_DIR)
