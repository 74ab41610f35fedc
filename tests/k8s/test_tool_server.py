"""The Places tool server in both stacks: its own objects and identity, valid manifests, a
NetworkPolicy that admits only agent pods, and nothing new for the agent's identity."""

from __future__ import annotations

import functools

import kubernetes_validate
import pytest

from domain.settings import ConfigError
from infra.tool_identity import QUOTA_ROLE
from k8s.manifests import manifest_from_inputs
from k8s.pod import tool_env, tool_token_volume
from k8s.tool_server import TOOL_SERVER_ROLE
from tests.k8s.rendered import plan_with

KUBERNETES_VERSIONS = ("1.33", "1.37")
KINDS = {"places-ksa": "ServiceAccount", "places-deployment": "Deployment", "places-service": "Service",
         "places-pdb": "PodDisruptionBudget", "places-network": "NetworkPolicy",
         "places-token-review-role": "ClusterRole", "places-token-review-binding": "ClusterRoleBinding"}


@pytest.fixture(params=("dev", "prod"))
def plan(request):
    """Each committed stack with the tool server turned on (placesToolEnabled defaults to false)."""
    return _enabled(request.param)


@functools.lru_cache(maxsize=None)
def _enabled(stack: str):
    return plan_with(stack, placesToolEnabled="true")


def _objects(plan) -> dict[str, dict]:
    return {r["name"]: r for r in plan.resources if r["name"] in KINDS}


def test_both_stacks_run_the_tool_server_as_its_own_component(plan):
    objects = _objects(plan)
    assert {name: r["type"].rsplit(":", 1)[-1] for name, r in objects.items()} == KINDS
    pod = objects["places-deployment"]["inputs"]["spec"]["template"]
    assert pod["metadata"]["labels"]["gke-voice-agents/role"] == TOOL_SERVER_ROLE
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "places-mcp" and spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    assert container["command"] == ["python", "-m", "places_mcp"]
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] and ctx["runAsNonRoot"] and ctx["capabilities"] == {"drop": ["ALL"]}
    assert {p["httpGet"]["path"] for p in (container["readinessProbe"], container["livenessProbe"])} == {"/readyz", "/healthz"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PLACES_MCP_AUDIENCE"] == "places-mcp"
    assert env["PLACES_MCP_ALLOWED_SUBJECTS"] == "system:serviceaccount:voice-agents:voice-agent"
    assert env["PLACES_MCP_ISSUER"].startswith("https://container.googleapis.com/v1/projects/")
    assert not [e for e in container["env"] if "valueFrom" in e], "the tool server reads no Secret"


def test_the_tool_servers_api_access_is_token_review_and_nothing_else(plan):
    """Its only Kubernetes API call: is this caller's pod still there? One rule, one verb, its own
    short-lived token and the cluster CA in a projected volume; no automounted token."""
    objects = _objects(plan)
    role = objects["places-token-review-role"]["inputs"]
    assert role["rules"] == [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]
    binding = objects["places-token-review-binding"]["inputs"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "places-mcp", "namespace": "voice-agents"}]
    spec = objects["places-deployment"]["inputs"]["spec"]["template"]["spec"]
    [volume] = [v for v in spec["volumes"] if v["name"] == "kube-api"]
    assert volume["projected"]["sources"] == [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]
    [container] = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kube-api")
    assert mount["readOnly"] is True
    assert (env["PLACES_MCP_KUBE_TOKEN_FILE"], env["PLACES_MCP_KUBE_CA_FILE"]) == (
        f"{mount['mountPath']}/token", f"{mount['mountPath']}/ca.crt")


def test_network_policy_admits_only_agent_pods_and_egress_only_to_what_it_calls(plan):
    spec = _objects(plan)["places-network"]["inputs"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"gke-voice-agents/role": "agent"}}}],
                                "ports": [{"protocol": "TCP", "port": 8080}]}]
    ports = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 80), ("TCP", 443), ("TCP", 988), ("UDP", 53)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_are_valid_in_strict_mode(plan, version):
    for name, resource in _objects(plan).items():
        kubernetes_validate.validate(manifest_from_inputs(resource["type"], resource["inputs"]), version, strict=True)


def test_only_the_tool_servers_account_gets_the_quota_role(plan):
    """Places takes no Workload Identity Federation token (tooling/preconditions.py
    federated-token-accepted): the quota role goes to a Google service account of the tool
    server's own, its Kubernetes service account is linked to it, and nothing else may act as it."""
    grants = [r["inputs"] for r in plan.resources if r["type"] == "gcp:projects/iAMMember:IAMMember"]
    quota = [g for g in grants if g["role"] == QUOTA_ROLE]
    # The account is the bootstrap's (infra/accounts.py): the stack names it, never creates it.
    project = plan.one("gcp:container/cluster:Cluster")["inputs"]["project"]
    email = plan.outputs["placesToolServiceAccount"]
    assert email == f"gva-{plan.stack}-places@{project}.iam.gserviceaccount.com"
    assert quota == [{"project": project, "role": QUOTA_ROLE, "member": f"serviceAccount:{email}"}]
    links = [r for r in plan.resources if r["type"] == "gcp:serviceaccount/iAMMember:IAMMember"
             and r["parent"] == "places-identity"]
    assert [r["inputs"]["role"] for r in links] == ["roles/iam.workloadIdentityUser"]
    pool = plan.one("gcp:container/cluster:Cluster")["inputs"]["workloadIdentityConfig"]["workloadPool"]
    assert links[0]["inputs"]["member"] == f"serviceAccount:{pool}[voice-agents/places-mcp]"
    assert "gke-cluster" in links[0]["dependsOn"], "the pool exists once the cluster does"
    ksa = plan.named("places-ksa")["inputs"]["metadata"]
    assert ksa["annotations"] == {"iam.gke.io/gcp-service-account": email}
    agent = [g for g in grants if g["member"].endswith("/sa/voice-agent")]
    assert [g["role"] for g in agent] == ["roles/aiplatform.user"], "the agent's identity gains no tool role"


def test_on_in_the_stacks_and_gone_when_turned_off():
    assert _objects(plan_with("dev"))  # both committed stacks run it
    plan = plan_with("dev", placesToolEnabled="false")
    assert not _objects(plan)
    assert "AGENT_TOOL_SERVERS" not in {e["name"] for e in plan.named("agent-deployment")["inputs"]["spec"]["template"]
                                        ["spec"]["containers"][0]["env"]}
    assert not [r for r in plan.resources if r["type"] == "gcp:projects/iAMMember:IAMMember"
                and r["inputs"]["role"] == QUOTA_ROLE]


@pytest.mark.parametrize(("replicas", "ok"), [("0", False), ("1", True), ("10", True), ("11", False)])
def test_replica_bounds(replicas, ok):
    if ok:
        plan = plan_with("dev", placesToolEnabled="true", placesToolReplicas=replicas)
        assert _objects(plan)["places-deployment"]["inputs"]["spec"]["replicas"] == int(replicas)
    else:
        with pytest.raises(ConfigError, match=rf"placesToolReplicas = {replicas}: must be from 1 to 10 pods"):
            plan_with("dev", placesToolEnabled="true", placesToolReplicas=replicas)


def test_agent_side_token_is_projected_per_server_and_no_secret():
    volume = tool_token_volume(("places",))
    [source] = volume["projected"]["sources"]
    # the shortest lifetime the API server accepts: a copied token is worth ten minutes at most
    assert source == {"serviceAccountToken": {"audience": "places-mcp", "expirationSeconds": 600,
                                              "path": "places/token"}}
    assert tool_env(("places",), "voice-agents") == {
        "AGENT_TOOL_SERVERS": "places=http://places-mcp.voice-agents.svc:8080/mcp",
        "AGENT_TOOL_TOKEN_DIR": "/var/run/secrets/tokens"}
    assert tool_env((), "voice-agents") == {}
