"""`python -m policy.manifests` judges a team's own livekit-agents worker by what any such worker
does (docs/your-agent.md), not by the platform runtime's internals: its LiveKit key and secret
from its own Secret are not a tool credential, and the runtime's own checks (its /ready endpoint,
its job memory cap) are advice for a worker that does not run the runtime."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from policy.manifests import EXIT_OK, EXIT_POLICY, check

DIGEST = "sha256:" + "0" * 64
WORKER = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-agent", "namespace": "agents"},
    "spec": {
        "replicas": 2, "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "selector": {"matchLabels": {"app": "my-agent"}},
        "template": {
            "metadata": {"labels": {"app": "my-agent", "gke-voice-agents/role": "agent"},
                         "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}},
            "spec": {
                # livekit-agents 1.8.9: drain_timeout 3600 s, plus the platform's shutdown budget
                "terminationGracePeriodSeconds": 3700,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "agent", "image": f"ghcr.io/acme/agent@{DIGEST}",
                    "command": ["python", "agent.py", "start"],
                    "env": [{"name": "LIVEKIT_URL", "value": "wss://acme.livekit.cloud"},
                            {"name": "LIVEKIT_API_KEY", "valueFrom": {"secretKeyRef": {"name": "acme-livekit", "key": "api-key"}}},
                            {"name": "LIVEKIT_API_SECRET", "valueFrom": {"secretKeyRef": {"name": "acme-livekit", "key": "api-secret"}}}],
                    "ports": [{"name": "health", "containerPort": 8081}],
                    "resources": {"requests": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "1Gi"},
                                  "limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "1Gi"}},
                    # the framework's own health endpoint (livekit/agents/worker.py: GET / on 8081)
                    "startupProbe": {"httpGet": {"path": "/", "port": 8081}, "periodSeconds": 5, "failureThreshold": 60},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8081}, "periodSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 8081}, "periodSeconds": 10, "failureThreshold": 6},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
            },
        },
    },
}
PDB = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "my-agent", "namespace": "agents"},
       "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "my-agent"}}}}


def _check(tmp_path: Path, worker: dict) -> tuple[int, list[str]]:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump_all([worker, PDB]))
    return check([path], bursting=False)


def _lines(lines: list[str], rule: str) -> list[str]:
    return [line for line in lines if f"] {rule} " in line]


def test_a_sound_worker_of_another_team_passes_with_advice_only(tmp_path):
    code, lines = _check(tmp_path, WORKER)
    assert code == EXIT_OK, lines
    assert not _lines(lines, "agent-mounts-no-tool-credential"), "its own LiveKit key and secret are no tool credential"
    (readiness,) = _lines(lines, "agent-readiness-registered")
    assert "[advisory]" in readiness and "this worker does not run it" in readiness
    (memory,) = _lines(lines, "agent-job-memory-limit")
    assert "[advisory]" in memory


def test_a_real_tool_credential_in_that_worker_is_still_refused(tmp_path):
    worker = copy.deepcopy(WORKER)
    container = worker["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "PLACES_API_KEY", "valueFrom": {"secretKeyRef": {"name": "acme-places", "key": "key"}}})
    code, lines = _check(tmp_path, worker)
    assert code == EXIT_POLICY
    (found,) = _lines(lines, "agent-mounts-no-tool-credential")
    assert "[mandatory]" in found and "env PLACES_API_KEY reads Secret acme-places" in found


def test_the_framework_rules_hold_for_any_worker(tmp_path):
    """Grace against the framework's 3600 s drain, and `start` mode: every livekit-agents worker."""
    worker = copy.deepcopy(WORKER)
    worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 3699
    worker["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "agent.py", "dev"]
    code, lines = _check(tmp_path, worker)
    assert code == EXIT_POLICY
    assert "terminationGracePeriodSeconds 3699 < preStop 0 + drain timeout 3600 + shutdown 100 = 3700 s" in _lines(
        lines, "agent-grace-covers-drain")[0]
    assert "runs development mode" in _lines(lines, "agent-exec-form-start")[0]


def test_the_runtimes_own_rules_stay_mandatory_for_a_worker_that_runs_it(tmp_path):
    worker = copy.deepcopy(WORKER)
    worker["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-m", "voice_agent", "start"]
    code, lines = _check(tmp_path, worker)
    assert code == EXIT_POLICY
    assert "[mandatory]" in _lines(lines, "agent-readiness-registered")[0]


def test_no_command_names_no_module_of_ours_as_the_fix(tmp_path):
    worker = copy.deepcopy(WORKER)
    del worker["spec"]["template"]["spec"]["containers"][0]["command"]
    _, lines = _check(tmp_path, worker)
    (found,) = _lines(lines, "agent-exec-form-start")
    assert "state the worker's command in exec form with its `start` mode" in found
