"""Run the agent policy rules over plain Kubernetes YAML (rendered or hand-written manifests).

    python -m policy.manifests [--bursting] FILE...

The agent rules check the Deployments whose pod template carries the agent's role label
(gke-voice-agents/role=agent, as k8s/pod.py renders it); other objects are read and left alone.

A team's own agent is judged by what any livekit-agents worker does: SIGTERM and `start` mode,
grace against the framework's drain (3600 s unless the platform runtime's AGENT_DRAIN_TIMEOUT_SECONDS
says otherwise), CPU limit and HPA against the load threshold, Autopilot sizes, Spot, probes,
rollout, PDB, hardening, and no credential in the pod but the worker's own LiveKit key and secret
(the LIVEKIT_API_KEY / LIVEKIT_API_SECRET variables livekit-agents reads, from any Secret). The few
rules about this platform's runtime (agent/voice_agent: its /ready endpoint, its per-job memory
and call caps, its conversation-text switch) apply in full only to a worker that runs it
(`python -m voice_agent`); for any other worker they are reported as advisory, with that said.
Exit 0 when no mandatory rule fails, 1 when one does, 2 when the input cannot be checked (a
missing or unreadable file, no Kubernetes object, no agent workload). Needs PyYAML, not the
Pulumi SDK: a manifest is the wire form of the Pulumi resource, typed
`kubernetes:<group/version>:<Kind>`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from k8s.runtime import AGENT_ROLE, ROLE_LABEL
from policy.engine import violations
from policy.rules import ADVISORY, MANDATORY, RULES, Resource
from policy.rules.workload import agent_pods

EXIT_OK, EXIT_POLICY, EXIT_INPUT = 0, 1, 2
# Rules that check this platform's runtime (agent/voice_agent), not what livekit-agents does.
RUNTIME_RULES = ("agent-readiness-registered", "agent-job-memory-limit", "agent-hpa-calls-below-cap",
                 "agent-no-conversation-text")
RUNTIME_MODULE = "voice_agent"
# livekit-agents 1.8.9 reads the worker's LiveKit credentials from these variables
# (livekit/agents/worker.py, WorkerOptions: api_key / api_secret default to the environment).
LIVEKIT_CREDENTIAL_ENV = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
TOOL_CREDENTIAL_RULE = "agent-mounts-no-tool-credential"


class InputError(ValueError):
    """A file the rules cannot read; the message names it."""


@dataclass
class Loaded:
    resources: list[Resource] = field(default_factory=list)
    origin: dict[tuple[str, str], Path] = field(default_factory=dict)  # (type, name) -> file
    skipped: list[str] = field(default_factory=list)      # documents that are no Kubernetes object


def resource_type(manifest: dict) -> str:
    api_version = manifest["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{manifest['kind']}"


def _is_object(doc: Any) -> bool:
    return (isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)
            and isinstance(doc.get("metadata"), dict) and isinstance(doc["metadata"].get("name"), str))


def _documents(path: Path) -> list[Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return list(yaml.safe_load_all(path.read_text()))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0]
        raise InputError(f"{path}: not valid YAML ({first})") from err


def load_manifests(paths: list[Path]) -> Loaded:
    loaded = Loaded()
    for path in paths:
        for number, doc in enumerate(_documents(path), start=1):
            if doc is None:
                continue
            if not _is_object(doc):
                loaded.skipped.append(f"{path} document {number}: not a Kubernetes object (no apiVersion, kind, metadata.name)")
                continue
            resource = Resource(resource_type(doc), doc["metadata"]["name"], doc)
            loaded.resources.append(resource)
            loaded.origin[(resource.type, resource.name)] = path
    return loaded


def _file_of(loaded: Loaded, name: str) -> Path | str:
    """The file a violation points at. Rules report a resource by name, and a Deployment, its
    Service and its NetworkPolicy often share one: the workload objects the rules judge win."""
    candidates = {t: p for (t, n), p in loaded.origin.items() if n == name}
    for judged in ("kubernetes:apps/v1:Deployment", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                   "kubernetes:policy/v1:PodDisruptionBudget"):
        if judged in candidates:
            return candidates[judged]
    return next(iter(candidates.values()), "(all files)")


def check(paths: list[Path], bursting: bool) -> tuple[int, list[str]]:
    """(exit code, lines to print)."""
    try:
        loaded = load_manifests(paths)
    except InputError as err:
        return EXIT_INPUT, [str(err)]
    lines = [f"skipped {s}" for s in loaded.skipped]
    if not loaded.resources:
        return EXIT_INPUT, lines + [f"no Kubernetes object in {len(paths)} file(s): nothing to check"]
    agents = sorted({pod.name for pod in agent_pods(loaded.resources)})
    if not agents:
        return EXIT_INPUT, lines + [
            f"no agent workload among {len(loaded.resources)} object(s): the agent rules check Deployments whose pod "
            f"template is labelled {ROLE_LABEL}={AGENT_ROLE}; label the agent's pod template"]
    workload_rules = tuple(r for r in RULES if r.id.startswith("agent-"))
    # The same per-rule config form as policy/<stack>.json.
    config = {r.id: {"bursting": bursting} for r in workload_rules if "bursting" in r.config}
    found = _as_any_worker(violations(loaded.resources, config, workload_rules), runtime_pods(loaded.resources))
    for v in found:
        where = _file_of(loaded, v["resource"])
        lines.append(f"{where}: [{v['severity']}] {v['rule']} {v['resource']}: {v['message']}")
    mandatory = sum(v["severity"] == MANDATORY for v in found)
    lines.append(f"checked {len(loaded.resources)} object(s) in {len(paths)} file(s), agent workload(s): "
                 f"{', '.join(agents)}; {len(found)} violation(s), {mandatory} mandatory")
    return (EXIT_POLICY if mandatory else EXIT_OK), lines


def runtime_pods(resources: list[Resource]) -> set[str]:
    """Agent workloads whose container runs this platform's runtime (`python -m voice_agent`)."""
    return {pod.name for pod in agent_pods(resources)
            if RUNTIME_MODULE in [*(pod.container.get("command") or []), *(pod.container.get("args") or [])]}


def _own_livekit_credential(message: str) -> bool:
    return any(message.startswith(f"the agent pod carries a credential: env {name} reads Secret ")
               for name in LIVEKIT_CREDENTIAL_ENV)


def _as_any_worker(found: list[dict], on_runtime: set[str]) -> list[dict]:
    """A worker's own LiveKit key and secret are not a tool credential, from whatever Secret they
    come; the runtime's own rules are advice for a worker that does not run the runtime."""
    judged = []
    for v in found:
        if v["rule"] == TOOL_CREDENTIAL_RULE and _own_livekit_credential(v["message"]):
            continue
        if v["rule"] in RUNTIME_RULES and v["resource"] not in on_runtime:
            v = {**v, "severity": ADVISORY,
                 "message": v["message"] + f" (a check of the platform runtime, {RUNTIME_MODULE}; this worker does not run "
                                           "it, so it is advice: do what it says with your worker's own options)"}
        judged.append(v)
    return judged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.manifests", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--bursting", action="store_true", help="the cluster supports Autopilot CPU bursting")
    args = parser.parse_args(argv)
    code, lines = check(args.files, args.bursting)
    stream = sys.stderr if code == EXIT_INPUT else sys.stdout
    for line in lines:
        print(line, file=stream)
    return code


if __name__ == "__main__":
    sys.exit(main())
