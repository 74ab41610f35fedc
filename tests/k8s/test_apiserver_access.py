"""What each of the stack's Kubernetes identities can really do, asked of the real API server
(RBAC on, the stack's ValidatingAdmissionPolicy bound with Deny) with tokens from the
TokenRequest API, as the kubelet gets them for a pod's projected volume.

The agent's account promises one thing (k8s/deletion_cost.py): patch its own pod's
`controller.kubernetes.io/pod-deletion-cost` annotation. The tool server's account promises
nothing. The metrics adapter's account promises what an aggregated API server needs to read
pods and nodes and to check its callers (k8s/metrics_adapter.py). Each is held to exactly that.
Where the policy pack judges the agent's RBAC statically (policy/rules/tools.py), the same
objects are put to the real authorizer (SubjectAccessReview).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from k8s import runtime
from k8s.deletion_cost import ANNOTATION
from policy.rules.base import Resource
from policy.rules.tools import api_token_only_patches_pods
from tests.k8s.apiserver import AppliedStack
from tests.k8s.controlplane import ApiError, ControlPlane, Identity

pytestmark = [pytest.mark.integration, pytest.mark.controlplane]  # starts etcd and kube-apiserver


def _pod_from_template(applied: AppliedStack, deployment: str, name: str) -> dict[str, Any]:
    """A pod as the Deployment's ReplicaSet would create it (no controller manager runs here)."""
    template = applied.first("Deployment", deployment)["spec"]["template"]
    namespace = applied.first("Deployment", deployment)["metadata"]["namespace"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**copy.deepcopy(template["metadata"]), "name": name, "namespace": namespace},
           "spec": copy.deepcopy(template["spec"])}
    return pod


def _ensure_pod(cluster: ControlPlane, pod: dict[str, Any]) -> dict[str, Any]:
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    try:
        return cluster.call("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    except ApiError as error:
        if error.status != 404:
            raise
    return cluster.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod)


class AgentPods:
    """Two agent pods and a token bound to the first, as its kubelet would get it."""

    def __init__(self, applied: AppliedStack):
        self.cluster = applied.cluster
        self.namespace = applied.first("Deployment", "voice-agent")["metadata"]["namespace"]
        self.own = _ensure_pod(self.cluster, _pod_from_template(applied, "voice-agent", "voice-agent-test-own"))
        self.other = _ensure_pod(self.cluster, _pod_from_template(applied, "voice-agent", "voice-agent-test-other"))
        self.token = Identity(token=self.cluster.request_token(self.namespace, runtime.AGENT_SERVICE_ACCOUNT, pod=self.own))

    def path(self, pod: dict[str, Any], subresource: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}{subresource}"

    def patch(self, pod: dict[str, Any], patch: dict[str, Any], identity: Identity | None = None,
              subresource: str = "") -> tuple[int, str]:
        """(status, message) of a JSON merge patch sent with the agent's token."""
        status, raw = self.cluster.raw("PATCH", self.path(pod, subresource), json.dumps(patch).encode(),
                                       content_type="application/merge-patch+json", identity=identity or self.token)
        body = json.loads(raw) if raw else {}
        return status, str(body.get("message", "")) if body.get("kind") == "Status" else ""


@pytest.fixture
def agent(applied: AppliedStack) -> AgentPods:
    return AgentPods(applied)


def _cost(value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {ANNOTATION: value}}}


def test_the_agent_patches_its_own_deletion_cost(agent: AgentPods):
    """The one thing the agent's token is for (voice_agent/deletion_cost.py sends exactly this
    merge patch); the stored pod carries the value."""
    for value in ("100", "0"):
        status, message = agent.patch(agent.own, _cost(value))
        assert status == 200, message
        stored = agent.cluster.call("GET", agent.path(agent.own))
        assert stored["metadata"]["annotations"][ANNOTATION] == value


# A ValidatingAdmissionPolicy's denial carries its validation's `reason`, Invalid (422) when the
# validation names none (admissionregistration.k8s.io/v1 Validation.reason); the stack's name
# none. The worker treats every non-200 the same (voice_agent/deletion_cost.py, PatchRefused).
POLICY_DENIAL = 422


def _policy_names(applied: AppliedStack) -> str:
    return " ".join(o["metadata"]["name"] for o in applied.objects if o["kind"] == "ValidatingAdmissionPolicy")


@pytest.mark.parametrize("what, target, patch, refusal", [
    ("another pod's deletion cost", "other", _cost("0"), "may patch only itself"),
    ("a label", "own", {"metadata": {"labels": {"app.kubernetes.io/name": "not-the-agent"}}}, "may not change labels"),
    ("another annotation", "own", {"metadata": {"annotations": {"example.com/x": "1"}}}, "may change only the"),
    ("the spec", "own", {"spec": {"activeDeadlineSeconds": 30}}, "may not change a pod's spec"),
])
def test_the_admission_policy_refuses_everything_else_on_a_pod(agent: AgentPods, applied: AppliedStack,
                                                               what, target, patch, refusal):
    """RBAC lets the agent patch every pod of its namespace (it cannot name a pod that does not
    exist yet); the admission policy narrows that to its own pod's one annotation."""
    status, message = agent.patch(agent.own if target == "own" else agent.other, patch)
    assert status == POLICY_DENIAL, f"{what}: {status} {message}"
    assert refusal in message and _policy_names(applied).split()[0] in message, message


def test_a_token_not_bound_to_the_pod_may_not_patch_it(agent: AgentPods):
    """The policy trusts the pod-name extra only bound tokens carry: a plain service-account
    token (no boundObjectRef) patches nothing, not even that pod's cost."""
    unbound = Identity(token=agent.cluster.request_token(agent.namespace, runtime.AGENT_SERVICE_ACCOUNT))
    status, message = agent.patch(agent.own, _cost("5"), identity=unbound)
    assert status == POLICY_DENIAL and "may patch only itself" in message, message


def _guards(applied: AppliedStack, field: str) -> bool:
    """Whether the stack's admission policy has a validation that mentions `field`."""
    policies = [o for o in applied.objects if o["kind"] == "ValidatingAdmissionPolicy"]
    return any(field in v["expression"] for p in policies for v in p["spec"].get("validations", []))


@pytest.mark.parametrize("field, patch", [
    ("finalizers", {"metadata": {"finalizers": ["example.com/keep"]}}),
    ("ownerReferences", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "kube-root-ca.crt", "uid": "00000000-0000-0000-0000-000000000001"}]}}),
])
def test_finalizers_and_owner_references_on_its_own_pod(agent: AgentPods, applied: AppliedStack, field, patch):
    """A finalizer keeps a deleted pod (and its node) forever; an owner reference lets the
    garbage collector delete it with another object. The policy as committed checks spec,
    labels and annotations only, so the server lets the agent's token change both on its own
    pod: the test asserts whichever the policy says, so it holds now (the gap, shown on the real
    server) and holds when the policy guards the field (then refused)."""
    status, message = agent.patch(agent.own, patch)
    if _guards(applied, field):
        assert status == POLICY_DENIAL, f"the policy names {field} but the server let the patch through"
    else:
        assert status == 200, f"{status} {message}"
        undo = {"metadata": {field: None}}
        assert agent.cluster.call("PATCH", agent.path(agent.own), undo,
                                  content_type="application/merge-patch+json")["metadata"].get(field) is None


@pytest.mark.parametrize("method, subresource, body", [
    ("GET", "", None),
    ("DELETE", "", None),
    ("PATCH", "/status", {"status": {"message": "x"}}),
    ("POST", "/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": "voice-agent-test-own", "namespace": "voice-agents"}}),
])
def test_the_agent_token_may_not_read_delete_or_evict_its_pod(agent: AgentPods, method, subresource, body):
    data = json.dumps(body).encode() if body else None
    content = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, raw = agent.cluster.raw(method, agent.path(agent.own, subresource), data, content_type=content,
                                    identity=agent.token)
    assert status == 403, raw[:300]


def _subject(namespace: str, account: str) -> dict[str, Any]:
    """A service account's user and groups as the token authenticator sets them."""
    return {"user": f"system:serviceaccount:{namespace}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]}


def allowed(cluster: ControlPlane, subject: dict[str, Any], verb: str, resource: str, namespace: str = "",
            group: str = "", name: str = "") -> bool:
    """The real authorizer's answer (SubjectAccessReview, asked as the admin)."""
    resource, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "resource": resource, "group": group, "namespace": namespace}
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    review = cluster.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {**subject, "resourceAttributes": attributes}})
    return bool(review["status"].get("allowed"))


# (verb, resource, group, namespace) requests any of the stack's accounts might be tempted into.
NS = "voice-agents"
PROBES = [
    ("patch", "pods", "", NS), ("get", "pods", "", NS), ("list", "pods", "", NS), ("watch", "pods", "", NS),
    ("create", "pods", "", NS), ("delete", "pods", "", NS), ("update", "pods", "", NS),
    ("patch", "pods/status", "", NS), ("create", "pods/eviction", "", NS), ("create", "pods/exec", "", NS),
    ("get", "secrets", "", NS), ("list", "secrets", "", ""), ("get", "configmaps", "", NS),
    ("create", "serviceaccounts/token", "", NS), ("patch", "deployments", "apps", NS),
    ("patch", "deployments/scale", "apps", NS), ("get", "nodes", "", ""), ("list", "pods", "", ""),
    ("create", "tokenreviews", "authentication.k8s.io", ""),
    ("create", "subjectaccessreviews", "authorization.k8s.io", ""),
    ("patch", "validatingadmissionpolicies", "admissionregistration.k8s.io", ""),
]


def granted(cluster: ControlPlane, subject: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {probe for probe in PROBES if allowed(cluster, subject, probe[0], probe[1], probe[3], probe[2])}


def test_the_agent_account_may_patch_pods_and_nothing_else(applied: AppliedStack):
    assert granted(applied.cluster, _subject(NS, runtime.AGENT_SERVICE_ACCOUNT)) == {("patch", "pods", "", NS)}


def test_the_tool_server_account_may_review_tokens_and_nothing_else(applied: AppliedStack):
    """The Places server's one Kubernetes call: is this caller's pod still there (TokenReview,
    tools/places/places_mcp/token_review.py). It reads nothing."""
    tool = next(o for o in applied.objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] != runtime.AGENT_SERVICE_ACCOUNT
                and o["metadata"]["namespace"] == NS)
    assert granted(applied.cluster, _subject(NS, tool["metadata"]["name"])) == {
        ("create", "tokenreviews", "authentication.k8s.io", "")}
    token = Identity(token=applied.cluster.request_token(NS, tool["metadata"]["name"]))
    for path in (f"/api/v1/namespaces/{NS}/pods", f"/api/v1/namespaces/{NS}/secrets", "/api/v1/nodes"):
        status, _ = applied.cluster.raw("GET", path, identity=token)
        assert status == 403, path


def test_the_metrics_adapter_account_reads_pods_and_nodes_and_checks_callers(applied: AppliedStack):
    """custom-metrics-stackdriver-adapter serves an aggregated API: it reads pods and nodes,
    delegates authentication and authorization (system:auth-delegator) and reads the
    client-CA ConfigMap in kube-system. Nothing that writes, no Secret."""
    adapter = next(o for o in applied.objects if o["kind"] == "ServiceAccount" and o["metadata"]["namespace"] != NS)
    namespace, name = adapter["metadata"]["namespace"], adapter["metadata"]["name"]
    cluster = applied.cluster
    assert granted(cluster, _subject(namespace, name)) == {
        ("get", "pods", "", NS), ("list", "pods", "", NS), ("watch", "pods", "", NS), ("get", "nodes", "", ""),
        ("list", "pods", "", ""), ("create", "tokenreviews", "authentication.k8s.io", ""),
        ("create", "subjectaccessreviews", "authorization.k8s.io", ""),
    }
    token = Identity(token=cluster.request_token(namespace, name))
    status, _ = cluster.raw("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
                            identity=token)
    assert status == 200
    status, _ = cluster.raw("GET", "/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt", identity=token)
    assert status == 403


# ---- the policy pack's static RBAC verdict against the real authorizer -------------------------
def _resource(obj: dict[str, Any]) -> Resource:
    """An extra object as the policy pack sees a pulumi-kubernetes resource."""
    return Resource(f"kubernetes:{obj['apiVersion']}:{obj['kind']}", f"test-{obj['metadata']['name']}", obj)


EXTRA_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "test-extra-read", "namespace": NS},
              "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}


def _binding(subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "test-extra-read", "namespace": NS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "test-extra-read"},
            "subjects": subjects}


VARIANTS = {
    "as committed": [],
    "a second role for the account": [EXTRA_ROLE, _binding([
        {"kind": "ServiceAccount", "name": runtime.AGENT_SERVICE_ACCOUNT, "namespace": NS}])],
    # a service account is also in system:serviceaccounts[:<ns>] (DESIGN 8.5): the access closures
    # (policy/rules/access_k8s.py) count the group, as the real authorizer does
    "a role for every account of the namespace": [EXTRA_ROLE, _binding([
        {"kind": "Group", "name": f"system:serviceaccounts:{NS}", "apiGroup": "rbac.authorization.k8s.io"}])],
}


@pytest.mark.parametrize("extra", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_static_rbac_verdict_agrees_with_the_real_authorizer(applied: AppliedStack, extra):
    """policy.rules.tools.api_token_only_patches_pods says of the plan's objects (plus `extra`)
    whether the agent's account can do nothing but patch pods; the API server, holding the same
    objects, answers SubjectAccessReviews for the same account."""
    cluster = applied.cluster
    for obj in extra:
        cluster.apply(obj)
    try:
        resources = [Resource(r["type"], r["name"], r["inputs"]) for r in applied.plan.resources]
        resources += [_resource(o) for o in extra]
        static = api_token_only_patches_pods(resources)
        subject = _subject(NS, runtime.AGENT_SERVICE_ACCOUNT)
        # RBAC reaches the authorizer through an informer: wait until it sees `extra`
        if extra:
            cluster.wait_for("the authorizer to see the extra binding",
                             lambda: allowed(cluster, subject, "get", "secrets", NS), timeout=10)
        real = granted(cluster, subject) == {("patch", "pods", "", NS)}
        assert static == real, f"policy pack says only-patch-pods={static}, the authorizer grants {granted(cluster, subject)}"
    finally:
        for obj in reversed(extra):
            cluster.call("DELETE", cluster.object_path(obj))
        cluster.wait_for("the authorizer to drop the extra binding",
                         lambda: not allowed(cluster, _subject(NS, runtime.AGENT_SERVICE_ACCOUNT), "get", "secrets", NS),
                         timeout=10)
