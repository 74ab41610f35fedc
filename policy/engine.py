"""Runs every rule over an offline plan's resources (infra/plan.py and the tests use this)."""

from __future__ import annotations

from typing import Any

from policy.rules import RULES, Context, Resource, Rule

# Stacks whose cluster must refuse deletion.
PROTECTED_STACKS = frozenset({"prod"})


def context_for_stack(stack: str) -> Context:
    """Bursting is a property of the stack's config (whether limits may exceed requests)."""
    from infra.stackfiles import load_stack_values

    bursting = load_stack_values(stack).config.get("gke-voice-agents:cpuBursting", "false") == "true"
    return Context(bursting=bursting, protected=stack in PROTECTED_STACKS)


def as_resources(plan_resources: list[dict[str, Any]]) -> list[Resource]:
    return [Resource(r["type"], r["name"], r["inputs"]) for r in plan_resources]


def violations(resources: list[Resource], ctx: Context, rules: tuple[Rule, ...] = RULES) -> list[dict[str, str]]:
    return [
        {"rule": rule.id, "severity": rule.severity, "resource": name, "message": message}
        for rule in rules
        for name, message in rule.findings(resources, ctx)
    ]


def evaluate_plan(resources: list[dict[str, Any]], stack: str, ctx: Context | None = None) -> list[dict[str, str]]:
    return violations(as_resources(resources), ctx or context_for_stack(stack))
