"""Scaling on calls: the HPA's calls metric, its path (the metrics adapter), and the pod's own
deletion cost access. Evaluated as the real program under mocks; manifests checked strictly."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tooling.plan import write_manifests
from domain import capacity
from k8s import deletion_cost, metrics_adapter
from k8s.scaling import ACTIVE_CALLS_METRIC, calls_quantity
from domain.sizes import SIZES
from tests.k8s.rendered import container_of, env_of, hpa_of, plan_with, pod_of


@pytest.mark.parametrize("stack, size, bursting, cap, quantity", [
    ("dev", "S", True, 4, "2400m"),    # 60 % of 4 calls
    ("prod", "M", False, 7, "4200m"),  # 60 % of 7 calls
])
def test_hpa_targets_a_share_of_the_pods_call_cap(request, stack, size, bursting, cap, quantity):
    plan = request.getfixturevalue(f"{stack}_plan")
    assert capacity.sessions_per_pod(SIZES[size].resources(bursting), 0.7) == cap
    assert env_of(plan)["AGENT_MAX_CALLS"] == str(cap)
    calls = hpa_of(plan)["metrics"][1]
    assert calls == {"type": "Pods", "pods": {"metric": {"name": ACTIVE_CALLS_METRIC},
                                              "target": {"type": "AverageValue", "averageValue": quantity}}}
    # the trigger, tolerance included, stays below the cap
    assert capacity.calls_at_trigger(int(quantity[:-1]) / 1000) < cap


@pytest.mark.parametrize("calls, quantity", [(4.2, "4200m"), (2.4, "2400m"), (1, "1000m"), (0.6, "600m")])
def test_calls_quantity_is_exact_in_milli_units(calls, quantity):
    assert calls_quantity(calls) == quantity


def test_the_metric_is_the_agents_gauge_through_managed_prometheus():
    """The agent's gauge name (agent/voice_agent/metrics.py) as Managed Prometheus stores it."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "agent" / "voice_agent" / "metrics.py").read_text()
    assert '"voice_agent_active_sessions"' in source
    assert ACTIVE_CALLS_METRIC == "prometheus.googleapis.com|voice_agent_active_sessions|gauge"


def test_the_adapter_has_its_own_principal_and_only_monitoring_viewer(prod_plan):
    grants = [r["inputs"] for r in prod_plan.of_type("gcp:projects/iAMMember:IAMMember")
              if r["name"].startswith("metrics-adapter")]
    assert [g["role"] for g in grants] == ["roles/monitoring.viewer"]
    assert grants[0]["member"].endswith(
        f"/subject/ns/{metrics_adapter.NAMESPACE}/sa/{metrics_adapter.SERVICE_ACCOUNT}")
    assert grants[0]["member"].startswith("principal://iam.googleapis.com/projects/")


def test_the_adapter_serves_custom_metrics_only_and_reads_pods_and_nodes(prod_plan):
    kinds = {r["name"]: r for r in prod_plan.resources if r["name"].startswith("metrics-adapter-")}
    services = sorted(r["inputs"]["metadata"]["name"] for r in kinds.values()
                      if r["type"] == "kubernetes:apiregistration.k8s.io/v1:APIService")
    assert services == ["v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io"]
    reader = kinds["metrics-adapter-resource-reader"]["inputs"]["rules"]
    assert reader == [{"apiGroups": [""], "resources": ["pods", "nodes", "nodes/stats"], "verbs": ["get", "list", "watch"]}]
    pod = kinds["metrics-adapter-deployment"]["inputs"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == metrics_adapter.SERVICE_ACCOUNT
    [container] = pod["containers"]
    # Autopilot's minimum without bursting, so nothing is raised silently
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.fixture(scope="module")
def with_deletion_cost():
    return plan_with("prod", podDeletionCost="true")


def test_deletion_cost_gives_the_pod_its_name_a_projected_token_and_nothing_more(with_deletion_cost, prod_plan):
    env = {e["name"]: e for e in container_of(with_deletion_cost)["env"]}
    assert env["AGENT_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["AGENT_POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    spec = pod_of(with_deletion_cost)["spec"]
    assert spec["automountServiceAccountToken"] is False
    [volume] = [v for v in spec["volumes"] if v["name"] == deletion_cost.TOKEN_VOLUME]
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert {"name": deletion_cost.TOKEN_VOLUME, "mountPath": deletion_cost.SERVICE_ACCOUNT_DIR, "readOnly": True} in \
        container_of(with_deletion_cost)["volumeMounts"]
    # control: off, none of it (both committed stacks have it on)
    off = plan_with("prod", podDeletionCost="false")
    assert "AGENT_POD_NAME" not in env_of(off)
    assert not [v for v in pod_of(off)["spec"]["volumes"] if v["name"] == deletion_cost.TOKEN_VOLUME]


def test_the_role_may_only_patch_pods_in_the_agents_namespace(with_deletion_cost):
    [role] = [r for r in with_deletion_cost.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
              if r["name"].startswith("agent-deletion-cost")]
    assert role["inputs"]["metadata"]["namespace"] == "voice-agents"
    assert role["inputs"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    [binding] = [r for r in with_deletion_cost.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
                 if r["name"].startswith("agent-deletion-cost")]
    assert binding["inputs"]["subjects"] == [{"kind": "ServiceAccount", "name": "voice-agent", "namespace": "voice-agents"}]


def test_the_admission_policy_narrows_it_to_the_annotation_on_its_own_pod(with_deletion_cost):
    [policy] = with_deletion_cost.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy")
    spec = policy["inputs"]["spec"]
    assert spec["matchConditions"] == [{"name": "agent-service-account", "expression":
                                        "request.userInfo.username == 'system:serviceaccount:voice-agents:voice-agent'"}]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "authentication.kubernetes.io/pod-name" in expressions and "object.spec == oldObject.spec" in expressions
    assert "controller.kubernetes.io/pod-deletion-cost" in expressions
    [binding] = with_deletion_cost.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding")
    assert binding["inputs"]["spec"] == {"policyName": policy["inputs"]["metadata"]["name"], "validationActions": ["Deny"]}


@pytest.mark.parametrize("version", ["1.33", "1.37"])
def test_the_new_objects_are_valid_in_strict_mode(with_deletion_cost, tmp_path, version):
    import yaml

    for path in write_manifests(with_deletion_cost.resources, tmp_path):
        manifest = yaml.safe_load(path.read_text())
        if manifest["kind"] in ("Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                                "APIService", "ClusterRole", "ClusterRoleBinding", "Service"):
            kubernetes_validate.validate(manifest, version, strict=True)
