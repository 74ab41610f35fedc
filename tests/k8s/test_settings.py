"""Each workload setting lands where it should: one setting changed on a committed stack, the
real program evaluated under mocks, and the object that must change checked.

Guards against a setting that is parsed and validated but silently ignored by the component.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from tooling.plan import PlanResult
from domain.capacity import SHUTDOWN_BUDGET_S
from tests.k8s.rendered import container_of, env_of, hpa_of, plan_with, pod_of

DIGEST = "sha256:" + "ab" * 32
REGISTRY = "us-central1-docker.pkg.dev/gva-fixture-prod/voice-agents-prod"


def _grace(r: PlanResult) -> int:
    return pod_of(r)["spec"]["terminationGracePeriodSeconds"]


def _annotations(r: PlanResult) -> dict:
    """The pod template's annotations but the credentials' revision (test_workload.py)."""
    annotations = pod_of(r)["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k != "gke-voice-agents/livekit-credentials-revision"}


def _cap_prod() -> int:
    """prod's call cap (size M, no bursting, threshold 0.7), from the measured figures."""
    from domain.capacity import sessions_per_pod
    from domain.sizes import SIZES

    return sessions_per_pod(SIZES["M"].resources(False), 0.7)


def _admitted(r: PlanResult) -> list[str]:
    """Image patterns the Binary Authorization policy admits (infra/binauthz.py)."""
    return [p["namePattern"] for p in r.named("admission-policy")["inputs"]["admissionWhitelistPatterns"]]


def _placeholders(r: PlanResult) -> int | None:
    found = [x for x in r.resources if x["name"] == "spare-placeholders"]
    return found[0]["inputs"]["spec"]["replicas"] if found else None


# setting -> (overrides on prod, what to read from the plan, what it must be). Every workload
# key of Pulumi.yaml appears here.
CASES: dict[str, tuple[dict[str, str], Callable[[PlanResult], Any], Any]] = {
    "agentNamespace": ({"agentNamespace": "calls"},
                       lambda r: {x["inputs"]["metadata"].get("namespace", x["inputs"]["metadata"]["name"])
                                  for x in r.resources if x["type"].startswith("kubernetes:")
                                  and x["type"] != "kubernetes:scheduling.k8s.io/v1:PriorityClass"
                                  # cluster-scoped: the deletion-cost admission policy and its binding
                                  and not x["type"].startswith("kubernetes:admissionregistration.k8s.io/")
                                  # cluster-scoped: the tool server's TokenReview role and its binding
                                  and x["type"] not in ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
                                                        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
                                  # the metrics adapter lives in its own namespace (custom-metrics)
                                  and not x["name"].startswith("metrics-adapter")},
                       {"calls"}),
    "agentImageName": ({"agentImageName": "support-agent"}, lambda r: container_of(r)["image"],
                       f"{REGISTRY}/support-agent:0.1.0"),
    "agentImageTag": ({"agentImageTag": "1.2.3"}, lambda r: container_of(r)["image"], f"{REGISTRY}/voice-agent:1.2.3"),
    "agentImageDigest": ({"agentImageDigest": DIGEST}, lambda r: container_of(r)["image"],
                         f"{REGISTRY}/voice-agent@{DIGEST}"),
    # another registry, by digest; prod's Binary Authorization policy admits its digests
    "agentImageRepository": ({"agentImageRepository": "ghcr.io/acme/agent", "agentImageDigest": DIGEST},
                             lambda r: (container_of(r)["image"], f"ghcr.io/acme/agent@{DIGEST}" in _admitted(r)),
                             (f"ghcr.io/acme/agent@{DIGEST}", True)),
    "agentVoice": ({"agentVoice": "Charon"}, lambda r: env_of(r).get("AGENT_VOICE"), "Charon"),
    "agentName": ({"agentName": "front-desk"}, lambda r: env_of(r)["AGENT_NAME"], "front-desk"),
    "agentPersona": ({"agentPersona": "front_desk.persona:PERSONA"}, lambda r: env_of(r)["AGENT_PERSONA"],
                     "front_desk.persona:PERSONA"),
    "agentSize": ({"agentSize": "L"}, lambda r: container_of(r)["resources"]["requests"],
                  {"cpu": "4000m", "memory": "8192Mi", "ephemeral-storage": "1Gi"}),
    "cpuBursting": ({"cpuBursting": "true"}, lambda r: container_of(r)["resources"]["limits"]["cpu"], "2800m"),
    "drainTimeoutSeconds": ({"drainTimeoutSeconds": "3000"},
                            lambda r: (env_of(r)["AGENT_DRAIN_TIMEOUT_SECONDS"], _grace(r)),
                            ("3000", 3000 + SHUTDOWN_BUDGET_S)),
    "loadThreshold": ({"loadThreshold": "0.65"}, lambda r: env_of(r)["AGENT_LOAD_THRESHOLD"], "0.65"),
    # Calls and drain both within the autoscaler's 10 minutes: no extended-duration annotation.
    "maxSessionMinutes": ({"maxSessionMinutes": "5", "drainTimeoutSeconds": "400"},
                          lambda r: (_annotations(r), _grace(r), env_of(r)["AGENT_MAX_CALL_SECONDS"]),
                          ({}, 400 + SHUTDOWN_BUDGET_S, "300")),
    "spareCapacityPods": ({"spareCapacityPods": "3"},
                          _placeholders, 3),
    "hpaMinReplicas": ({"hpaMinReplicas": "5"}, lambda r: hpa_of(r)["minReplicas"], 5),
    "hpaMaxReplicas": ({"hpaMaxReplicas": "40"}, lambda r: hpa_of(r)["maxReplicas"], 40),
    "hpaTargetCpuUtilization": ({"hpaTargetCpuUtilization": "45"},
                                lambda r: hpa_of(r)["metrics"][0]["resource"]["target"]["averageUtilization"], 45),
    "hpaTargetCallsPercent": ({"hpaTargetCallsPercent": "50"},
                              lambda r: hpa_of(r)["metrics"][1]["pods"]["target"]["averageValue"],
                              f"{round(_cap_prod() * 500)}m"),
    # on in both stacks: the case turns it off
    "podDeletionCost": ({"podDeletionCost": "false"},
                        lambda r: ("AGENT_POD_NAME" in env_of(r),
                                   any(x["type"] == "kubernetes:rbac.authorization.k8s.io/v1:Role" for x in r.resources)),
                        (False, False)),
    "spareCapacityMode": ({"spareCapacityMode": "capacityBuffer"},
                          lambda r: sorted(x["type"] for x in r.resources if x.get("parent") == "spare"),
                          ["kubernetes:autoscaling.x-k8s.io/v1beta1:CapacityBuffer", "kubernetes:core/v1:PodTemplate"]),
    "hpaScaleUpWindowSeconds": ({"hpaScaleUpWindowSeconds": "15"},
                                lambda r: hpa_of(r)["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 15),
    "hpaScaleDownWindowSeconds": ({"hpaScaleDownWindowSeconds": "1200"},
                                  lambda r: hpa_of(r)["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 1200),
    "hpaScaleDownPodsPerPeriod": ({"hpaScaleDownPodsPerPeriod": "2"},
                                  lambda r: hpa_of(r)["behavior"]["scaleDown"]["policies"][0]["value"], 2),
    "hpaScaleDownPeriodSeconds": ({"hpaScaleDownPeriodSeconds": "600"},
                                  lambda r: hpa_of(r)["behavior"]["scaleDown"]["policies"][0]["periodSeconds"], 600),
    "vertexLocation": ({"vertexLocation": "europe-west4"}, lambda r: env_of(r)["GOOGLE_CLOUD_LOCATION"], "europe-west4"),
    "geminiModel": ({"geminiModel": "gemini-2.0-flash-live-001"}, lambda r: env_of(r)["AGENT_GEMINI_MODEL"],
                    "gemini-2.0-flash-live-001"),
    "agentLogLevel": ({"agentLogLevel": "WARNING"}, lambda r: env_of(r)["AGENT_LOG_LEVEL"], "WARNING"),
    "callWarningSeconds": ({"callWarningSeconds": "90"}, lambda r: env_of(r)["AGENT_CALL_WARNING_SECONDS"], "90"),
    "silenceTimeoutSeconds": ({"silenceTimeoutSeconds": "300"}, lambda r: env_of(r)["AGENT_SILENCE_TIMEOUT_SECONDS"], "300"),
    "geminiConnectRetries": ({"geminiConnectRetries": "0"}, lambda r: env_of(r)["AGENT_GEMINI_CONNECT_RETRIES"], "0"),
    "geminiFallbackLocation": ({"geminiFallbackLocation": "europe-west4"},
                               lambda r: env_of(r).get("AGENT_GEMINI_FALLBACK_LOCATION"), "europe-west4"),
    "geminiFallbackModel": ({"geminiFallbackModel": "gemini-2.0-flash-live-001"},
                            lambda r: env_of(r).get("AGENT_GEMINI_FALLBACK_MODEL"), "gemini-2.0-flash-live-001"),
    # prod's policy refuses it; the plan is still rendered (evaluate does not stop on policy).
    "logConversationText": ({"logConversationText": "true", "agentLogLevel": "DEBUG"},
                            lambda r: env_of(r)["AGENT_LOG_CONVERSATION_TEXT"], "true"),
    "logCallIds": ({"logCallIds": "hashed"}, lambda r: env_of(r)["AGENT_LOG_CALL_IDS"], "hashed"),
    # off: no database, no Auth Proxy sidecar, no DSN, no TCP 3307 egress
    "recoveryEnabled": ({"recoveryEnabled": "false"},
                        lambda r: ("initContainers" in pod_of(r)["spec"], "AGENT_CHECKPOINT_DSN" in env_of(r),
                                   len(r.of_type("gcp:sql/databaseInstance:DatabaseInstance")),
                                   any(p["port"] == 3307 for rule in r.named("agent-egress")["inputs"]["spec"]["egress"]
                                       for p in rule["ports"])),
                        (False, False, 0, False)),
    # LiveKit Cloud restarts jobs itself (docs/recovery.md)
    "recoveryWatcher": ({"recoveryWatcher": "false"}, lambda r: env_of(r)["AGENT_RECOVERY_WATCHER"], "off"),
    # how long a dead call's checkpoint row lives (docs/recovery.md)
    "recoveryRetentionSeconds": ({"recoveryRetentionSeconds": "60"},
                                 lambda r: env_of(r)["AGENT_CHECKPOINT_RETENTION_SECONDS"], "60"),
    # kubernetesSecret: the credentials from a Secret into env (test_workload.py has the details)
    "livekitCredentials": ({"livekitCredentials": "kubernetesSecret"},
                           lambda r: (sorted(e["name"] for e in container_of(r)["env"] if e["name"].startswith("LIVEKIT_")),
                                      len(r.of_type("gcp:secretmanager/secret:Secret"))),
                           (["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL"], 0)),
}


@pytest.mark.parametrize("setting", sorted(CASES))
def test_setting_reaches_the_rendered_objects(setting, prod_plan):
    overrides, read, expected = CASES[setting]
    assert read(plan_with("prod", **overrides)) == expected
    # Control: the committed value gives something else, so the override is what changed it.
    assert read(prod_plan) != expected


def test_every_workload_setting_is_covered():
    """A new workload setting without a case here would go unchecked: the keys below are tied
    to the typed settings' fields by count, and to Pulumi.yaml by name."""
    from dataclasses import fields

    from domain.settings import CallSettings, DispatchSettings, HpaSettings, WorkloadSettings
    from domain.stackfiles import project_declarations

    workload_keys = {
        "agentNamespace", "agentImageName", "agentImageTag", "agentImageDigest", "agentSize", "cpuBursting",
        "drainTimeoutSeconds", "loadThreshold", "maxSessionMinutes",
        "callWarningSeconds", "silenceTimeoutSeconds", "geminiConnectRetries", "geminiFallbackLocation",
        "geminiFallbackModel", "logConversationText", "logCallIds",
        "spareCapacityPods", "livekitUrl", "vertexLocation", "geminiModel", "agentLogLevel",
        "recoveryEnabled", "recoveryWatcher", "recoveryRetentionSeconds",
        "podDeletionCost", "spareCapacityMode", "agentImageRepository", "agentVoice",
        "agentName", "livekitTargetLoad", "agentPersona", "livekitCredentials", "livekitSharedWithStages",
    }
    declared = {k.split(":", 1)[1] for k in project_declarations()}
    hpa_keys = {k for k in declared if k.startswith("hpa")}
    assert workload_keys <= declared
    assert (len(workload_keys) + len(hpa_keys)
            # hpa, call and dispatch are groups; model_prices is derived from priceOverrides
            == len(fields(WorkloadSettings)) - 4 + len(fields(HpaSettings)) + len(fields(CallSettings))
            + len(fields(DispatchSettings)))
    # livekitUrl is a plain variable, or travels in the Secret (test_workload.py, test_apply.py);
    # livekitTargetLoad describes the LiveKit server and only bounds loadThreshold
    # (test_config_errors.py); livekitSharedWithStages only lets the loader accept a shared
    # livekitUrl (tests/infra/test_stages.py).
    assert set(CASES) | {"livekitUrl", "livekitTargetLoad", "livekitSharedWithStages"} == workload_keys | hpa_keys


def test_the_default_agent_comes_from_the_stacks_registry_only():
    """Without agentImageRepository the policy admits no outside repository and the pod gets no
    AGENT_VOICE (the persona's own voice)."""
    r = plan_with("prod")
    assert container_of(r)["image"].startswith(f"{REGISTRY}/voice-agent")
    assert not [p for p in _admitted(r) if "@" in p], _admitted(r)
    assert "AGENT_VOICE" not in env_of(r)
