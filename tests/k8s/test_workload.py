"""The agent Deployment, HPA and friends: every timing number derives from the settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.config import ConfigError
from infra.plan import evaluate
from k8s import runtime
from k8s.capacity import SHUTDOWN_BUDGET_S, termination_grace_seconds, worker_load_at_target
from k8s.sizes import SIZES, autopilot_problems

ROOT = Path(__file__).resolve().parents[2]
P = "gke-voice-agents:"


def pod_of(result):
    return result.named("agent-deployment")["inputs"]["spec"]["template"]


def container_of(result):
    return pod_of(result)["spec"]["containers"][0]


def env_of(result) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container_of(result)["env"]}


def test_runs_the_worker_in_production_mode_in_exec_form(plan):
    c = container_of(plan)
    assert c["command"] == ["python", "-m", "voice_agent"] and c["args"] == ["start"]
    assert "lifecycle" not in c  # the worker drains on SIGTERM; no preStop sleep


@pytest.mark.parametrize("stack, drain, sessions", [("dev", 900, 15), ("prod", 2700, 45)])
def test_grace_is_derived_from_drain_and_shutdown_budget(stack, drain, sessions):
    from tests.conftest import _committed_plan

    result = _committed_plan(stack)
    spec = pod_of(result)["spec"]
    assert spec["terminationGracePeriodSeconds"] == drain + SHUTDOWN_BUDGET_S
    assert env_of(result)["AGENT_DRAIN_TIMEOUT_SECONDS"] == str(drain)
    # Longer than the autoscaler's 10-minute cap: pods must be marked extended-duration.
    assert pod_of(result)["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def test_short_sessions_need_no_extended_duration_annotation():
    result = evaluate("dev", {P + "maxSessionMinutes": "5", P + "drainTimeoutSeconds": "400"})
    assert pod_of(result)["spec"]["terminationGracePeriodSeconds"] == 400 + SHUTDOWN_BUDGET_S
    assert pod_of(result)["metadata"].get("annotations", {}) == {}


def test_pre_stop_when_asked_for_counts_inside_grace():
    result = evaluate("dev", {P + "preStopSeconds": "5"})
    assert container_of(result)["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod_of(result)["spec"]["terminationGracePeriodSeconds"] == termination_grace_seconds(5, 900)


def test_environment_matches_the_agent_contract(prod_plan):
    env = env_of(prod_plan)
    assert env["AGENT_LOAD_THRESHOLD"] == "0.7"
    assert env["AGENT_HEALTH_PORT"] == str(runtime.HEALTH_PORT) and env["AGENT_METRICS_PORT"] == str(runtime.METRICS_PORT)
    assert env["GOOGLE_CLOUD_PROJECT"] == "my-voice-agents-prod" and env["GOOGLE_GENAI_USE_VERTEXAI"] == "true"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container_of(prod_plan)["env"] if "valueFrom" in e}
    assert set(secrets) == {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"}


def test_image_by_digest_when_given_else_by_tag():
    digest = "sha256:" + "ab" * 32
    by_digest = container_of(evaluate("prod", {P + "agentImageDigest": digest}))["image"]
    assert by_digest == f"us-central1-docker.pkg.dev/my-voice-agents-prod/voice-agents-prod/voice-agent@{digest}"
    from tests.conftest import _committed_plan
    assert container_of(_committed_plan("prod"))["image"].endswith("/voice-agent:0.1.0")


def test_hardened_pod_with_writable_tmp_only(plan):
    c, spec = container_of(plan), pod_of(plan)["spec"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsUser"] == runtime.RUN_AS_UID
    assert c["volumeMounts"] == [{"mountPath": "/tmp", "name": "tmp"}]
    assert spec["volumes"][0]["emptyDir"]
    assert spec["serviceAccountName"] == runtime.AGENT_SERVICE_ACCOUNT
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "nodeSelector" not in spec and "tolerations" not in spec


def test_probes_allow_for_prewarm(plan):
    c = container_of(plan)
    startup = c["startupProbe"]
    assert startup["httpGet"]["port"] == "health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert c["livenessProbe"]["httpGet"]["path"] == "/"


@pytest.mark.parametrize("stack, size, bursting", [("dev", "S", True), ("prod", "M", False)])
def test_resources_come_from_the_size_table(stack, size, bursting):
    from tests.conftest import _committed_plan

    resources = container_of(_committed_plan(stack))["resources"]
    cpu_limit, mem_limit = SIZES[size].limits(bursting)
    assert resources["requests"]["cpu"] == f"{SIZES[size].cpu_m}m"
    assert resources["limits"] == {"cpu": f"{cpu_limit}m", "memory": f"{mem_limit}Mi", "ephemeral-storage": "1Gi"}


@pytest.mark.parametrize("name", sorted(SIZES))
@pytest.mark.parametrize("bursting", [False, True])
def test_every_size_is_valid_on_autopilot_as_declared(name, bursting):
    size = SIZES[name]
    assert autopilot_problems(size.cpu_m, size.memory_mi, bursting) == []


def test_autopilot_rules_catch_silent_raises_and_rejections():
    assert "rounds it up to 500m" in " ".join(autopilot_problems(300, 1024, bursting=False))
    assert "below the Autopilot minimum 250m" in " ".join(autopilot_problems(100, 1024, bursting=False))
    assert autopilot_problems(100, 512, bursting=True) == []
    assert "ratio 8.00" in " ".join(autopilot_problems(1000, 8192, bursting=False))
    assert "exceed the Autopilot maximum" in " ".join(autopilot_problems(32000, 65536, bursting=False))


def test_hpa_scales_on_cpu_fast_up_slow_down(prod_plan):
    hpa = prod_plan.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["inputs"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-agent"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert hpa["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 900, "selectPolicy": "Min",
                                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}
    load = worker_load_at_target(hpa["metrics"][0]["resource"]["target"]["averageUtilization"], 2000, 2000)
    assert load == pytest.approx(0.55) and load < 0.7


def test_deployment_leaves_replicas_to_the_hpa_and_surges_on_rollout(plan):
    spec = plan.named("agent-deployment")["inputs"]["spec"]
    assert "replicas" not in spec
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_pdb_monitoring_and_egress_policy(plan):
    assert plan.one("kubernetes:policy/v1:PodDisruptionBudget")["inputs"]["spec"]["maxUnavailable"] == 1
    monitoring = plan.one("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")["inputs"]
    assert monitoring["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    netpol = plan.one("kubernetes:networking.k8s.io/v1:NetworkPolicy")["inputs"]["spec"]
    assert netpol["policyTypes"] == ["Egress"]
    ports = {(p["protocol"], p["port"]) for rule in netpol["egress"] for p in rule["ports"]}
    assert {("UDP", 53), ("TCP", 443), ("TCP", 7881)} <= ports


@pytest.mark.parametrize("overrides, pattern", [
    ({"hpaTargetCpuUtilization": "75", "cpuBursting": "false", "agentSize": "M"},
     r"hpaTargetCpuUtilization = 75: at this target each pod's worker load reaches 0.83 .* >= loadThreshold 0.7: .*use at most 63"),
    ({"drainTimeoutSeconds": "600", "maxSessionMinutes": "15"},
     r"drainTimeoutSeconds = 600: is shorter than maxSessionMinutes = 15 \(900 s\)"),
    ({"drainTimeoutSeconds": "3600", "maxSessionMinutes": "15"},
     r"drainTimeoutSeconds = 3600: grace = preStop 0 \+ drain 3600 \+ shutdown 80 = 3680 s, but GKE node upgrades honour at most 3600 s; lower drainTimeoutSeconds to 3520"),
    ({"hpaScaleDownWindowSeconds": "30"}, r"hpaScaleDownWindowSeconds = 30: must be longer than hpaScaleUpWindowSeconds = 30"),
    ({"spotPods": "true"}, r"spotPods = True: Spot Pods get 25 s to stop"),
])
def test_unsafe_workload_settings_are_refused_before_any_resource(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        evaluate("dev", {P + k: v for k, v in overrides.items()})


def _dockerfile_instruction(text: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, re.MULTILINE)]


def test_dockerfile_runs_what_the_deployment_runs():
    dockerfile = ROOT / "agent" / "Dockerfile"
    text = dockerfile.read_text()
    import json
    entrypoint = json.loads(_dockerfile_instruction(text, "ENTRYPOINT")[-1])
    cmd = json.loads(_dockerfile_instruction(text, "CMD")[-1])
    assert entrypoint == list(runtime.COMMAND) and cmd == list(runtime.ARGS)
    exposed = {int(p) for line in _dockerfile_instruction(text, "EXPOSE") for p in line.split()}
    assert exposed == {runtime.HEALTH_PORT, runtime.METRICS_PORT}
    assert _dockerfile_instruction(text, "USER")[-1].split(":")[0] == str(runtime.RUN_AS_UID)
