"""AgentWorkload as the program declares it: one evaluation of each committed stack under mocks.

Guards the Deployment, HPA, PDB, PodMonitoring, NetworkPolicy and the LiveKit credentials (a
SecretProviderClass, or a Secret with livekitCredentials=kubernetesSecret) against drifting from
the runtime contract (CONTRACT.md, k8s/runtime.py) and from the timing rules (domain/capacity.py).
"""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from tooling.mocks import ParentTrackingMonitor
from k8s import deletion_cost, livekit_files, runtime
from domain.capacity import SHUTDOWN_BUDGET_S, worker_load_at_target
from domain.settings import LOG_CALL_IDS_MODES
from domain.sizes import SIZES
from tests.agent_env import agent_declarations
from tests.k8s.rendered import container_of, deployment_of, env_of, hpa_of, plan_with, pod_of

AGENT_TYPES = {
    "namespace": "kubernetes:core/v1:Namespace",
    "ksa": "kubernetes:core/v1:ServiceAccount",
    # livekitCredentials=secretManager (both stacks): the files' SecretProviderClass
    "livekit-files": "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass",
    "deployment": "kubernetes:apps/v1:Deployment",
    "hpa": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "pdb": "kubernetes:policy/v1:PodDisruptionBudget",
    "podmonitoring": "kubernetes:monitoring.googleapis.com/v1:PodMonitoring",
    "egress": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    # podDeletionCost (both stacks): the patch-pods Role, its binding and the admission policy
    "deletion-cost": "gke-voice-agents:k8s:DeletionCostAccess",
}
# Stack -> (size, bursting, drain timeout): the committed Pulumi.<stack>.yaml values.
COMMITTED = {"dev": ("S", True, 900), "prod": ("M", False, 2700)}


def _cpu_m(quantity: str) -> int:
    assert quantity.endswith("m"), quantity
    return int(quantity[:-1])


# --- the component ------------------------------------------------------------------------------


def test_children_are_parented_and_named_by_role(plan):
    """Index-based or unparented children would change URNs on reorder and escape the component."""
    component = plan.named("agent")
    assert component["type"] == "gke-voice-agents:k8s:AgentWorkload" and component["parent"] is None
    children = {r["name"]: r["type"] for r in plan.resources if r["parent"] == "agent"}
    assert children == {f"agent-{role}": typ for role, typ in AGENT_TYPES.items()}


def test_every_object_lives_in_the_agent_namespace(plan):
    for role, typ in AGENT_TYPES.items():
        if typ.startswith("gke-voice-agents:"):
            continue  # a component; its own objects are checked in tests/k8s/test_scaling.py
        metadata = plan.named(f"agent-{role}")["inputs"]["metadata"]
        if role == "namespace":
            assert metadata["name"] == "voice-agents"
        else:
            assert metadata["namespace"] == "voice-agents", role
            assert metadata["labels"]["app.kubernetes.io/name"] == "voice-agent", role


def test_service_account_is_the_one_workload_identity_binds(plan):
    ksa = plan.named("agent-ksa")["inputs"]
    assert ksa["metadata"]["name"] == runtime.AGENT_SERVICE_ACCOUNT
    assert ksa["automountServiceAccountToken"] is False
    assert pod_of(plan)["spec"]["serviceAccountName"] == runtime.AGENT_SERVICE_ACCOUNT


def test_replicas_are_left_to_the_hpa(monkeypatch):
    """Without ignore_changes every `pulumi up` would reset the HPA's replica count; the option
    travels in the registration request, which this test reads."""
    seen: dict[str, list[str]] = {}
    real = ParentTrackingMonitor.RegisterResource

    def register(self, request):
        seen[request.name] = list(request.ignoreChanges)
        return real(self, request)

    monkeypatch.setattr(ParentTrackingMonitor, "RegisterResource", register)
    result = plan_with("prod")
    assert seen["agent-deployment"] == ["spec.replicas"]
    assert "replicas" not in deployment_of(result)["spec"]


def test_container_reads_livekit_credentials_as_files_from_secret_manager(plan):
    """Key and secret are paths under the add-on's volume of the `livekit` class; the URL, no
    secret, is a plain value; no Kubernetes Secret exists and the stack's values reach only the
    Secret Manager versions (as Pulumi secrets)."""
    env = env_of(plan)
    from domain.stackfiles import load_stack_values

    assert env["LIVEKIT_URL"] == load_stack_values(plan.stack).config["gke-voice-agents:livekitUrl"]
    assert (env["LIVEKIT_API_KEY_FILE"], env["LIVEKIT_API_SECRET_FILE"]) == (
        "/var/run/secrets/livekit/api-key", "/var/run/secrets/livekit/api-secret")
    assert not {"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} & set(env)
    assert not [e for e in container_of(plan)["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert not [r for r in plan.resources if r["type"] == "kubernetes:core/v1:Secret"]
    spec = pod_of(plan)["spec"]
    assert livekit_files.volume() in spec["volumes"] and livekit_files.mount() in container_of(plan)["volumeMounts"]
    assert livekit_files.volume()["csi"] == {"driver": "secrets-store-gke.csi.k8s.io", "readOnly": True,
                                             "volumeAttributes": {"secretProviderClass": "livekit"}}
    versions = [r for r in plan.resources if r["type"] == "gcp:secretmanager/secretVersion:SecretVersion"]
    assert [v["inputs"]["secretData"] for v in versions] == ["[secret]", "[secret]"]


def test_the_secret_provider_class_lists_the_stacks_two_secrets(plan):
    spc = plan.named("agent-livekit-files")["inputs"]
    assert spc["metadata"]["name"] == runtime.LIVEKIT_SECRET_PROVIDER_CLASS and spc["spec"]["provider"] == "gke"
    project = f"gva-fixture-{plan.stack}"
    assert yaml.safe_load(spc["spec"]["parameters"]["secrets"]) == [
        {"resourceName": f"projects/{project}/secrets/{plan.stack}-livekit-api-key/versions/latest", "path": "api-key"},
        {"resourceName": f"projects/{project}/secrets/{plan.stack}-livekit-api-secret/versions/latest", "path": "api-secret"}]
    secret_ids = sorted(r["inputs"]["secretId"] for r in plan.resources if r["type"] == "gcp:secretmanager/secret:Secret")
    assert secret_ids == [f"{plan.stack}-livekit-api-key", f"{plan.stack}-livekit-api-secret"]


def test_pods_wait_for_their_credentials(plan):
    """No pod may start before its class, its secrets and its read grant exist: the Deployment
    depends on the class, and the workload on the secrets, their versions and the grants (the
    engine expands a component dependency to its children)."""
    assert "agent-livekit-files" in plan.named("agent-deployment")["dependsOn"]
    assert {f"livekit-{f}{part}" for f in ("api-key", "api-secret") for part in ("", "-version", "-agent-reader")} <= set(
        plan.named("agent")["dependsOn"])


def test_a_rotation_rolls_the_pods(plan):
    """The secret versions are on the pod template, so a new version starts new pods (each reads
    its files once) while the old ones drain with what they hold."""
    annotations = pod_of(plan)["metadata"]["annotations"]
    assert annotations[livekit_files.REVISION_ANNOTATION] == "1-1"


def test_kubernetes_secret_mode_reads_the_credentials_from_a_secret():
    """livekitCredentials=kubernetesSecret: the Secret's contents (URL, key, secret, as Pulumi
    secrets) are checked on the wire in test_apply.py; here, that the container takes all three
    from it and nowhere else, and that nothing of Secret Manager is declared."""
    plan = plan_with("dev", livekitCredentials="kubernetesSecret")
    assert plan.named("agent-livekit")["inputs"]["stringData"] == "[secret]"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container_of(plan)["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"LIVEKIT_URL": {"name": "livekit", "key": "url"},
                    "LIVEKIT_API_KEY": {"name": "livekit", "key": "api-key"},
                    "LIVEKIT_API_SECRET": {"name": "livekit", "key": "api-secret"}}
    assert not {"LIVEKIT_API_KEY_FILE", "LIVEKIT_API_SECRET_FILE"} & set(env_of(plan))
    assert "livekit-credentials" not in [v["name"] for v in pod_of(plan)["spec"]["volumes"]]
    assert livekit_files.REVISION_ANNOTATION not in pod_of(plan)["metadata"]["annotations"]
    assert not [r for r in plan.resources if r["type"].startswith(("gcp:secretmanager/", "kubernetes:secrets-store"))]
    assert "agent-livekit" in plan.named("agent-deployment")["dependsOn"]


# --- the pod --------------------------------------------------------------------------------------


def test_runs_the_worker_in_production_mode_in_exec_form(plan):
    c = container_of(plan)
    assert c["command"] == list(runtime.COMMAND) == ["python", "-m", "voice_agent"]
    assert c["args"] == list(runtime.ARGS) == ["start"]
    assert "lifecycle" not in c  # the worker drains on SIGTERM; no preStop by default


def test_ports_are_the_contracts(plan):
    assert container_of(plan)["ports"] == [
        {"name": "health", "containerPort": runtime.HEALTH_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": runtime.METRICS_PORT, "protocol": "TCP"},
    ]


@pytest.mark.parametrize("stack", sorted(COMMITTED))
def test_grace_is_derived_from_drain_and_shutdown_budget(stack):
    result = plan_with(stack)
    drain = COMMITTED[stack][2]
    assert pod_of(result)["spec"]["terminationGracePeriodSeconds"] == drain + SHUTDOWN_BUDGET_S == drain + 100
    assert env_of(result)["AGENT_DRAIN_TIMEOUT_SECONDS"] == str(drain)
    # Both stacks outlive the autoscaler's 10-minute cap: extended-duration pods.
    assert pod_of(result)["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                                                         livekit_files.REVISION_ANNOTATION: "1-1"}


def test_environment_is_exactly_the_agent_contract(plan):
    env = env_of(plan)
    assert set(env) == {
        "LIVEKIT_URL", "LIVEKIT_API_KEY_FILE", "LIVEKIT_API_SECRET_FILE", "AGENT_DRAIN_TIMEOUT_SECONDS",
        "AGENT_LOAD_THRESHOLD", "AGENT_HEALTH_PORT", "AGENT_METRICS_PORT", "AGENT_LOG_LEVEL",
        "AGENT_GEMINI_MODEL", "AGENT_VERSION", "AGENT_METRICS_LINGER_SECONDS", "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_GENAI_USE_VERTEXAI", "HOME", "AGENT_MAX_CALL_SECONDS", "AGENT_CALL_WARNING_SECONDS",
        "AGENT_SILENCE_TIMEOUT_SECONDS", "AGENT_GEMINI_CONNECT_RETRIES", "AGENT_LOG_CONVERSATION_TEXT",
        "AGENT_LOG_CALL_IDS", "AGENT_MAX_CALLS", "AGENT_JOB_MEMORY_LIMIT_MB", "AGENT_JOB_MEMORY_WARN_MB",
        # crash recovery (recoveryEnabled, both stacks): the Auth Proxy sidecar on loopback
        "AGENT_CHECKPOINT_DSN", "AGENT_RECOVERY_WATCHER", "AGENT_CHECKPOINT_RETENTION_SECONDS",
        # ... and the KMS key that seals its checkpoints (infra/checkpoint_key.py)
        "AGENT_RECOVERY_KMS_KEY",
        # explicit dispatch and the persona (agentName, agentPersona)
        "AGENT_NAME", "AGENT_PERSONA",
        # podDeletionCost (both stacks): the pod's own name and namespace, from the downward API
        "AGENT_POD_NAME", "AGENT_POD_NAMESPACE",
        # placesToolEnabled (both stacks): the MCP tool server and where its token is
        "AGENT_TOOL_SERVERS", "AGENT_TOOL_TOKEN_DIR",
        # the plan's Gemini prices (domain/data/prices.json) for the call's cost estimate
        "AGENT_MODEL_PRICES"}
    assert json.loads(env["AGENT_MODEL_PRICES"])["output_audio"] > 0
    assert env["AGENT_NAME"] == "voice-agent" and env["AGENT_PERSONA"] == "voice_agent.persona:SAMPLE"
    assert env["AGENT_CHECKPOINT_DSN"] == (
        f"postgresql://gva-{plan.stack}-db%40gva-fixture-{plan.stack}.iam@127.0.0.1:5432/voice_agent")
    assert env["AGENT_RECOVERY_WATCHER"] == "on" and env["AGENT_CHECKPOINT_RETENTION_SECONDS"] == "900"
    assert env["AGENT_LOAD_THRESHOLD"] == "0.7" and env["HOME"] == "/tmp"
    assert env["AGENT_HEALTH_PORT"] == str(runtime.HEALTH_PORT) and env["AGENT_METRICS_PORT"] == str(runtime.METRICS_PORT)
    assert env["GOOGLE_CLOUD_PROJECT"] == f"gva-fixture-{plan.stack}" and env["GOOGLE_GENAI_USE_VERTEXAI"] == "true"
    assert env["AGENT_LOG_LEVEL"] == {"dev": "DEBUG", "prod": "INFO"}[plan.stack]
    # the call limit is the maxSessionMinutes the drain is sized for
    assert env["AGENT_MAX_CALL_SECONDS"] == {"dev": "900", "prod": "2700"}[plan.stack]
    assert env["AGENT_LOG_CONVERSATION_TEXT"] == "false"
    assert env["AGENT_LOG_CALL_IDS"] == "off"  # no caller's number in the logs unless asked


def _every_agent_env(plan) -> dict[str, str | None]:
    """The pod's environment, plus what the stack sets only on some stacks: the fallback model
    and voice (call settings), the kubernetesSecret credentials mode, the tool servers."""
    from dataclasses import replace

    from k8s import pod
    from tests.k8s.test_apply import workload_settings

    w = workload_settings()
    w = replace(w, agent_voice="Puck", call=replace(w.call, gemini_fallback_location="europe-west4",
                                                    gemini_fallback_model="gemini-live-2.5-flash-native-audio"))
    secret_mode = {e["name"]: e.get("value") for e in pod.livekit_env(None, w.livekit_url)}
    return {**env_of(plan), **pod.call_env(w), **pod.tool_env(["places"], "voice-agents"), **secret_mode}


def test_every_agent_variable_the_pod_sets_is_declared_by_the_agent(plan):
    """The agent's declarations are the other half of the contract: a variable it does not
    declare would be a setting that silently does nothing, and one it requires that the pod does
    not set would stop every pod at start. Each plain value the stack renders is one its
    declaration accepts."""
    decl = agent_declarations()
    declared = {name: v for v in decl.VARIABLES for name in v.names}
    env = _every_agent_env(plan)
    assert set(env) <= set(declared), sorted(set(env) - set(declared))
    for v in decl.VARIABLES:
        if not set(v.names) & set(env):
            assert v.default is not decl.REQUIRED, f"{v.name} is required but the stack does not set it"
    checked = 0
    for name, value in env.items():
        v = declared[name]
        if value is not None and v.kind != "credential":  # None: from the downward API or a Secret
            assert decl.read(v, value)[1] is None, (name, value)
            checked += 1
    assert checked > 25


def test_the_stack_offers_the_call_id_modes_the_agent_accepts():
    """logCallIds' choices and the agent's AGENT_LOG_CALL_IDS values (the agent's declaration)
    are one list; a mode only one side knew would fail the pod at start."""
    decl = agent_declarations()
    assert decl.LOG_CALL_IDS_MODES == LOG_CALL_IDS_MODES
    assert decl.BY_NAME["AGENT_LOG_CALL_IDS"].choices == LOG_CALL_IDS_MODES


def test_hardened_with_writable_tmp_only(plan):
    c, spec = container_of(plan), pod_of(plan)["spec"]
    assert c["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": runtime.RUN_AS_UID, "runAsGroup": runtime.RUN_AS_GID,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == 10001
    # /tmp writable; read-only: the deletion-cost token (k8s/deletion_cost.py), the tool servers'
    # audience-bound tokens and the LiveKit credential files
    assert [m["name"] for m in c["volumeMounts"]] == ["tmp", deletion_cost.TOKEN_VOLUME, "tool-tokens",
                                                      "livekit-credentials"]
    assert spec["volumes"][0] == {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}
    assert spec["volumes"][1:2] == deletion_cost.token_volumes()
    assert [s["serviceAccountToken"]["audience"] for s in spec["volumes"][2]["projected"]["sources"]] == ["places-mcp"]
    assert all(m.get("readOnly") for m in c["volumeMounts"] if m["name"] != "tmp")
    assert spec["automountServiceAccountToken"] is False


def test_spread_across_zones_and_never_on_spot(plan):
    spec = pod_of(plan)["spec"]
    keys = [t["topologyKey"] for t in spec["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert all(t["labelSelector"] == {"matchLabels": deployment_of(plan)["spec"]["selector"]["matchLabels"]}
               for t in spec["topologySpreadConstraints"])
    # Spot on Autopilot is asked for by node selector or toleration; neither is there.
    assert "nodeSelector" not in spec and "tolerations" not in spec and "affinity" not in spec


def test_probes_ask_the_agent_for_registration_and_a_live_loop(plan):
    """Guards against readiness on the framework's GET / (200 until it gives up on LiveKit,
    ~130 s), which let a release with a wrong secret replace every healthy pod."""
    c = container_of(plan)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == int(env_of(plan)["AGENT_METRICS_PORT"]) == runtime.METRICS_PORT
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/live", "port": "metrics"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 120  # 20x the measured 4-6 s start
    liveness = c["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 60
    readiness = c["readinessProbe"]
    assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (5, 1)


@pytest.mark.parametrize("stack", sorted(COMMITTED))
def test_resources_come_from_the_size_table(stack):
    size, bursting, _ = COMMITTED[stack]
    declared = SIZES[size].resources(bursting)
    resources = container_of(plan_with(stack))["resources"]
    assert resources == {
        "requests": {"cpu": f"{declared.cpu_request_m}m", "memory": f"{declared.memory_request_mi}Mi",
                     "ephemeral-storage": "1Gi"},
        "limits": {"cpu": f"{declared.cpu_limit_m}m", "memory": f"{declared.memory_limit_mi}Mi",
                   "ephemeral-storage": "1Gi"},
    }
    assert (declared.cpu_limit_m > declared.cpu_request_m) is bursting


def test_rollouts_add_capacity_before_removing_any(plan):
    """A new pod that never registers never becomes ready, so with maxUnavailable 0 no old pod
    is ever terminated for it: the rollout stalls (and reports ProgressDeadlineExceeded)."""
    spec = deployment_of(plan)["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
    assert spec["minReadySeconds"] == 10
    # node boot 120 + startup budget 120 + model check 20 + start 6 + minReady 10 = 276 <= 300
    assert spec["progressDeadlineSeconds"] == 300 > spec["minReadySeconds"]


@pytest.mark.parametrize("stack", sorted(COMMITTED))
def test_pods_and_the_agent_carry_the_release(stack):
    result = plan_with(stack)
    version = pod_of(result)["metadata"]["labels"]["app.kubernetes.io/version"]
    assert env_of(result)["AGENT_VERSION"] == version
    # the committed stacks deploy by tag: the label is the image reference's tag
    assert container_of(result)["image"].rsplit(":", 1)[1] == version
    # the selector is immutable: the release must never be part of it
    assert "app.kubernetes.io/version" not in deployment_of(result)["spec"]["selector"]["matchLabels"]


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("tag, digest, expected", [
    ("v1.2.3", "", "v1.2.3"),
    ("a" * 63, "", "a" * 63),                     # the longest label value
    ("v1.2.3", DIGEST, "sha256-0123456789ab"),     # a digest wins, shortened to a label
])
def test_release_version_is_a_valid_label(tag, digest, expected):
    from dataclasses import replace

    from k8s.pod import release_version
    from tests.k8s.test_apply import workload_settings

    assert release_version(replace(workload_settings(), image_tag=tag, image_digest=digest)) == expected


@pytest.mark.parametrize("tag", ["a" * 64, "v1.2.3-", "_v1"])
def test_a_tag_that_cannot_label_a_pod_is_refused_by_name(tag):
    from dataclasses import replace

    from k8s.pod import release_version
    from tests.k8s.test_apply import workload_settings

    with pytest.raises(ValueError, match=r"agentImageTag=.*at most 63 characters.*agentImageDigest"):
        release_version(replace(workload_settings(), image_tag=tag, image_digest=""))


# --- autoscaling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack, replicas, up, down, period", [
    ("dev", (1, 3), 30, 300, 60),
    ("prod", (3, 20), 60, 900, 300),
])
def test_hpa_scales_up_fast_and_down_slowly(stack, replicas, up, down, period):
    hpa = hpa_of(plan_with(stack))
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-agent"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == replicas
    assert hpa["metrics"][0] == {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
    # and active calls per pod (tests/k8s/test_scaling.py checks the target)
    assert hpa["metrics"][1]["pods"]["metric"]["name"] == "prometheus.googleapis.com|voice_agent_active_sessions|gauge"
    assert hpa["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": up, "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60},
                     {"type": "Percent", "value": 100, "periodSeconds": 60}]}
    assert hpa["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": down, "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": period}]}


def test_hpa_fires_before_the_worker_reports_full(plan):
    """The deadlock check on the rendered numbers, not on the settings: target x request/limit
    with the HPA's 10 % tolerance must stay below the worker's load threshold."""
    resources = container_of(plan)["resources"]
    target = hpa_of(plan)["metrics"][0]["resource"]["target"]["averageUtilization"]
    load = worker_load_at_target(target, _cpu_m(resources["requests"]["cpu"]), _cpu_m(resources["limits"]["cpu"]))
    assert load < float(env_of(plan)["AGENT_LOAD_THRESHOLD"])
    assert load == pytest.approx({"dev": 0.55 / 1.4, "prod": 0.55}[plan.stack])


# --- disruption, monitoring, network ---------------------------------------------------------------


def test_pdb_takes_one_pod_at_a_time(plan):
    spec = plan.named("agent-pdb")["inputs"]["spec"]
    assert spec == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                    "selector": deployment_of(plan)["spec"]["selector"]}


def test_managed_prometheus_scrapes_the_metrics_port(plan):
    monitoring = plan.named("agent-podmonitoring")["inputs"]
    assert monitoring["apiVersion"] == "monitoring.googleapis.com/v1" and monitoring["kind"] == "PodMonitoring"
    assert monitoring["spec"]["selector"] == deployment_of(plan)["spec"]["selector"]
    [endpoint] = monitoring["spec"]["endpoints"]
    named = {p["name"]: p["containerPort"] for p in container_of(plan)["ports"]}
    assert named[endpoint["port"]] == runtime.METRICS_PORT and endpoint["path"] == "/metrics"
    # the agent keeps /metrics up one scrape (+5 s) after its drain, so the last counters arrive
    assert endpoint["interval"] == "30s" and env_of(plan)["AGENT_METRICS_LINGER_SECONDS"] == "35"


def test_egress_only_policy_opens_what_a_call_needs(plan):
    netpol = plan.named("agent-egress")["inputs"]["spec"]
    assert netpol["policyTypes"] == ["Egress"] and "ingress" not in netpol
    assert netpol["podSelector"] == deployment_of(plan)["spec"]["selector"]
    open_ports = {(p["protocol"], p["port"], p.get("endPort")) for rule in netpol["egress"] for p in rule["ports"]}
    assert {("UDP", 53, None), ("TCP", 53, None), ("TCP", 443, None), ("TCP", 7880, None), ("TCP", 7881, None),
            ("UDP", 3478, None), ("UDP", 50000, 60000)} <= open_ports
    # Workload Identity tokens come from the metadata server; only it is open on link-local.
    link_local = [(peer["ipBlock"]["cidr"], rule["ports"]) for rule in netpol["egress"] for peer in rule.get("to", [])
                  if "ipBlock" in peer]
    # the tool servers, by their role label, on the MCP port only
    pods = [(peer["podSelector"], rule["ports"]) for rule in netpol["egress"] for peer in rule.get("to", [])
            if "podSelector" in peer]
    assert pods == [({"matchLabels": {"gke-voice-agents/role": "tool-server"}}, [{"protocol": "TCP", "port": 8080}])]
    # and the checkpoint database's private range, on Cloud SQL's connector port only
    assert link_local == [("169.254.169.254/32", [{"protocol": "TCP", "port": 80}]),
                          ("169.254.169.252/32", [{"protocol": "TCP", "port": 988}]),
                          ("10.60.0.0/20", [{"protocol": "TCP", "port": 3307}])]
