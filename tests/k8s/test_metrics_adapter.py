"""The metrics adapter runs hardened like our own pods (k8s/metrics_adapter.py): the agent's own
hardening check passes on it, it carries no automounted token, one port is the same everywhere,
and a NetworkPolicy selects it."""

from __future__ import annotations

import functools

import pytest

from tooling.plan import evaluate
from k8s import deletion_cost, metrics_adapter
from k8s.runtime import GKE_METADATA_SERVER, METADATA_SERVER
from policy.rules.base import Context
from policy.rules.workload import AgentPod, _security_context


@functools.lru_cache(maxsize=None)
def _objects(stack: str) -> dict[str, dict]:
    return {r["name"]: r["inputs"] for r in evaluate(stack).resources if r["name"].startswith("metrics-adapter-")}


@pytest.fixture(params=["dev", "prod"])
def adapter(request) -> dict[str, dict]:
    return _objects(request.param)


def _pod(adapter):
    return adapter["metrics-adapter-deployment"]["spec"]["template"]["spec"]


def test_the_agents_hardening_check_passes_on_the_adapter(adapter):
    pod = _pod(adapter)
    [container] = pod["containers"]
    assert _security_context(AgentPod("metrics-adapter", pod, {}, {}, container), Context()) == []
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, "no capability added back"
    assert pod["securityContext"]["runAsUser"] > 0 and pod["securityContext"]["runAsGroup"] > 0


def test_the_hardening_check_would_catch_upstreams_pod():
    """The same check on upstream's container as its manifest ships it (root, writable root, no
    securityContext): the test above can fail."""
    pod = {"containers": [{"name": "pod-custom-metrics-stackdriver-adapter", "image": metrics_adapter.IMAGE}]}
    [message] = _security_context(AgentPod("upstream", pod, {}, {}, pod["containers"][0]), Context())
    assert "runAsNonRoot is not true" in message and "root filesystem is writable" in message


def test_no_automounted_token_only_a_projected_one_hour_token(adapter):
    pod = _pod(adapter)
    assert pod["automountServiceAccountToken"] is False
    assert adapter["metrics-adapter-ksa"]["automountServiceAccountToken"] is False
    [token] = [s["serviceAccountToken"] for v in pod["volumes"] for s in v.get("projected", {}).get("sources", [])
               if "serviceAccountToken" in s]
    assert token["expirationSeconds"] == deletion_cost.TOKEN_SECONDS and "audience" not in token
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts[deletion_cost.SERVICE_ACCOUNT_DIR]["readOnly"] is True
    # the generated serving certificate lands on the writable emptyDir, not the read-only root
    assert metrics_adapter.CERT_DIR.startswith("/tmp/") and "/tmp" in mounts
    assert [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"]][0]["emptyDir"]


def test_one_serving_port_everywhere(adapter):
    [container] = _pod(adapter)["containers"]
    port = metrics_adapter.PORT
    assert port >= 1024, "a non-root process binds no port below 1024 without a capability"
    assert f"--secure-port={port}" in container["command"]
    assert container["ports"] == [{"name": "https", "containerPort": port, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["port"] == port
    assert adapter["metrics-adapter-service"]["spec"]["ports"] == [{"port": 443, "protocol": "TCP", "targetPort": port}]
    assert adapter["metrics-adapter-network"]["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": port}]}]


def test_a_network_policy_selects_the_adapter_and_narrows_both_ways(adapter):
    policy = adapter["metrics-adapter-network"]
    labels = adapter["metrics-adapter-deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector and all(labels.get(k) == v for k, v in selector.items())
    assert policy["metadata"]["namespace"] == metrics_adapter.NAMESPACE
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ports = sorted((p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == sorted([("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", METADATA_SERVER[1]),
                            ("TCP", GKE_METADATA_SERVER[1])])
    metadata_rules = [r for r in policy["spec"]["egress"] if "to" in r]
    assert {r["to"][0]["ipBlock"]["cidr"] for r in metadata_rules} == {METADATA_SERVER[0], GKE_METADATA_SERVER[0]}
