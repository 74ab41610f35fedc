"""The agent's pods as the workload rules see them: its Deployment read from the rendered
objects, the way the cluster will see it (policy/rules/workload.py and its neighbours use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from k8s.runtime import AGENT_ROLE, ROLE_LABEL
from policy.rules.base import DEPLOYMENT, Context, Finding, Resource, prop

# livekit-agents 1.8.9 defaults when the container does not set them (worker.py).
FRAMEWORK_LOAD_THRESHOLD = 0.7
FRAMEWORK_DRAIN_TIMEOUT_S = 3600


@dataclass(frozen=True)
class AgentPod:
    """The agent's Deployment, seen as the facts the timing rules need."""

    name: str
    spec: Mapping[str, Any]  # pod spec
    annotations: Mapping[str, Any]
    labels: Mapping[str, Any]
    container: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def drain_timeout(self) -> int:
        return int(self.env.get("AGENT_DRAIN_TIMEOUT_SECONDS", FRAMEWORK_DRAIN_TIMEOUT_S))

    @property
    def load_threshold(self) -> float:
        return float(self.env.get("AGENT_LOAD_THRESHOLD", FRAMEWORK_LOAD_THRESHOLD))

    @property
    def grace(self) -> int:
        # Kubernetes' default when unset.
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    @property
    def pre_stop(self) -> Mapping[str, Any] | None:
        return prop(self.container, "lifecycle", "preStop")

    @property
    def pre_stop_seconds(self) -> int:
        return pre_stop_sleep_seconds(self.pre_stop)


def pre_stop_sleep_seconds(pre_stop: Mapping[str, Any] | None) -> int:
    """Seconds a preStop hook waits: native sleep, or `sleep N` run by exec."""
    if not pre_stop:
        return 0
    if "sleep" in pre_stop:
        return int(prop(pre_stop, "sleep", "seconds", default=0))
    words = " ".join(prop(pre_stop, "exec", "command", default=[])).replace(";", " ").split()
    return sum(int(words[i + 1]) for i, w in enumerate(words[:-1]) if w == "sleep" and words[i + 1].isdigit())


def _is_sleep_only(pre_stop: Mapping[str, Any] | None) -> bool:
    if pre_stop and "sleep" in pre_stop:
        return True
    command = " ".join(prop(pre_stop or {}, "exec", "command", default=[]))
    words = [w for w in command.replace(";", " ").split() if w not in ("/bin/sh", "sh", "bash", "/bin/bash", "-c")]
    return bool(words) and all(w == "sleep" or w.isdigit() for w in words)


def is_agent(template: Mapping[str, Any]) -> bool:
    """Agent pods say so (k8s/pod.py: gke-voice-agents/role=agent). Placeholders, tool servers
    and Deployments that are not ours carry another role or none, and the agent rules, which are
    about a LiveKit worker's drain and load, leave them alone."""
    return prop(template, "metadata", "labels", default={}).get(ROLE_LABEL) == AGENT_ROLE


def agent_pods(resources: Iterable[Resource]) -> list[AgentPod]:
    pods = []
    for r in resources:
        if r.type != DEPLOYMENT:
            continue
        template = prop(r.props, "spec", "template", default={})
        if not is_agent(template):
            continue
        spec = prop(template, "spec", default={})
        for container in prop(spec, "containers", default=[]):
            env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
            pods.append(AgentPod(
                name=r.name, spec=spec, annotations=prop(template, "metadata", "annotations", default={}),
                labels=prop(template, "metadata", "labels", default={}), container=container, env=env,
            ))
    return pods


def _per_pod(check: Callable[[AgentPod, Context], list[str]]) -> Callable[[list[Resource], Context], list[Finding]]:
    def run(resources: list[Resource], ctx: Context) -> list[Finding]:
        return [(pod.name, message) for pod in agent_pods(resources) for message in check(pod, ctx)]
    return run
