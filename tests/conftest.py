"""Shared fixtures. Pulumi mocks are process-global, so every evaluation goes through
tooling.plan.evaluate, which installs fresh mocks each time; results are plain data.

The suite plans its own stack files (tests/fixtures/stacks/Pulumi.<stack>.yaml, project ids
gva-fixture-<stack>), never the user's Pulumi.dev.yaml / Pulumi.prod.yaml: a user edits those
(README step "set your project"), and no test verdict may depend on what they hold."""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain import stackfiles  # noqa: E402
from tooling.plan import PlanResult, evaluate  # noqa: E402

STACKS = ("dev", "prod")
FIXTURE_STACKS = ROOT / "tests" / "fixtures" / "stacks"
# Every in-process evaluation (tooling.plan.evaluate, domain.stackfiles.load_stack_values) that names
# no directory reads the fixture stacks. Subprocesses (`python -m tooling.plan`) read the directory
# their command line names (--stack-dir), else the committed files.
stackfiles.STACK_DIR = FIXTURE_STACKS


def fixture_project(stack: str) -> str:
    """The GCP project id of a fixture stack (its own file, not the user's)."""
    return stackfiles.load_stack_values(stack, stack_dir=FIXTURE_STACKS).config["gcp:project"]


@functools.lru_cache(maxsize=None)
def _evaluated_once(stack: str) -> PlanResult:
    return evaluate(stack)


def _fixture_plan(stack: str) -> PlanResult:
    """A private copy of the fixture stack's plan: tests may mutate what they get."""
    return copy.deepcopy(_evaluated_once(stack))


@pytest.fixture(params=STACKS)
def plan(request) -> PlanResult:
    """The offline plan of each fixture stack (tests/fixtures/stacks), evaluated once per test session."""
    return _fixture_plan(request.param)


@pytest.fixture
def dev_plan() -> PlanResult:
    return _fixture_plan("dev")


@pytest.fixture
def prod_plan() -> PlanResult:
    return _fixture_plan("prod")


def copy_project(tmp_path: Path) -> Path:
    """A throwaway copy of the program whose Pulumi.dev.yaml / Pulumi.prod.yaml are the fixture
    stacks, for tests that run `python -m tooling.plan` on a stack file they break."""
    import shutil

    target = tmp_path / "repo"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        ".venv", ".git", "agent", "out", ".tools", "__pycache__", ".pytest_cache", "bootstrap", "examples"))
    for stack in STACKS:
        shutil.copy(FIXTURE_STACKS / f"Pulumi.{stack}.yaml", target / f"Pulumi.{stack}.yaml")
    return target
