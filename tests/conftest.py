"""Shared fixtures. Pulumi mocks are process-global, so every evaluation goes through
tooling.plan.evaluate, which installs fresh mocks each time; results are plain data."""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tooling.plan import PlanResult, evaluate  # noqa: E402

STACKS = ("dev", "prod")


@functools.lru_cache(maxsize=None)
def _evaluated_once(stack: str) -> PlanResult:
    return evaluate(stack)


def _committed_plan(stack: str) -> PlanResult:
    """A private copy of the committed stack's plan: tests may mutate what they get."""
    return copy.deepcopy(_evaluated_once(stack))


@pytest.fixture(params=STACKS)
def plan(request) -> PlanResult:
    """The offline plan of each committed stack, evaluated once per test session."""
    return _committed_plan(request.param)


@pytest.fixture
def dev_plan() -> PlanResult:
    return _committed_plan("dev")


@pytest.fixture
def prod_plan() -> PlanResult:
    return _committed_plan("prod")
