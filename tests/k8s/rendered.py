"""Reading the agent's objects out of an offline plan (tooling.plan.evaluate results)."""

from __future__ import annotations

from typing import Any

from tooling.plan import PlanResult, evaluate

P = "gke-voice-agents:"


def plan_with(stack: str, **settings: str) -> PlanResult:
    """The stack's plan with some settings overridden, named without the project prefix."""
    return evaluate(stack, {P + key: value for key, value in settings.items()})


def deployment_of(result: PlanResult) -> dict[str, Any]:
    return result.named("agent-deployment")["inputs"]


def pod_of(result: PlanResult) -> dict[str, Any]:
    return deployment_of(result)["spec"]["template"]


def container_of(result: PlanResult) -> dict[str, Any]:
    [container] = pod_of(result)["spec"]["containers"]
    return container


def env_of(result: PlanResult) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container_of(result)["env"]}


def hpa_of(result: PlanResult) -> dict[str, Any]:
    return result.named("agent-hpa")["inputs"]["spec"]
