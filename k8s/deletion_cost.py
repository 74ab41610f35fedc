"""Idle pods first on scale-down: the worker keeps its own pod's deletion cost.

When the HPA removes pods, the ReplicaSet controller deletes those with the lowest
``controller.kubernetes.io/pod-deletion-cost`` first (Kubernetes "ReplicaSet", pod deletion
cost, beta and on since 1.22). Without it, a pod carrying calls can go before an idle one and
drain its calls for up to the drain timeout. The worker (agent/voice_agent/deletion_cost.py)
sets the annotation in a few bands (idle / busy / full) and only when its band changes, so the
API server sees a handful of PATCHes per pod per hour, not one per call.

What the pod gets for that, and no more:
- its own name and namespace (downward API env);
- a service-account token projected for the API server, valid one hour (the kubelet renews it
  at 80 % of its life), with the cluster's CA; the automounted token stays off;
- a Role in its namespace that may only ``patch`` pods (RBAC cannot name a pod that does not
  exist yet, so resourceNames cannot narrow it);
- narrower still, a ValidatingAdmissionPolicy, bound with Deny: a request by the agent's service
  account may change only that annotation (not the spec, labels, other annotations,
  finalizers or owner references), and only on the pod its token is bound to (the token's
  ``authentication.kubernetes.io/pod-name`` extra, Kubernetes 1.30+ bound tokens).

Pure functions, no Pulumi import (the manifest policy CLI renders pods without the SDK); the
component that declares the Role and the policy is k8s/deletion_cost_access.py.
"""

from __future__ import annotations

from k8s import runtime

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
POD_NAME_ENV = "AGENT_POD_NAME"
POD_NAMESPACE_ENV = "AGENT_POD_NAMESPACE"
# Where client libraries look for in-cluster credentials (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME = "kube-api-token"
# The kubelet's usual lifetime for projected tokens; the API server refuses less than 600 s.
TOKEN_SECONDS = 3600
# Every namespace has this ConfigMap with the cluster's CA (Kubernetes 1.21+, RootCAConfigMap).
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"


def downward_env() -> list[dict]:
    return [
        {"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": POD_NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]


def token_volumes() -> list[dict]:
    return [{
        "name": TOKEN_VOLUME,
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            ],
        },
    }]


def token_mounts() -> list[dict]:
    return [{"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}]


def role_rules() -> list[dict]:
    """Patch pods, nothing else: no get, no list, no other resource."""
    return [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]


def service_account_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{runtime.AGENT_SERVICE_ACCOUNT}"


def _field(obj: str, field: str, empty: str) -> str:
    """`obj.metadata.<field>`, or `empty` when the object has none (CEL's has() on an absent field)."""
    return f"(has({obj}.metadata.{field}) ? {obj}.metadata.{field} : {empty})"


def _annotations(obj: str) -> str:
    return _field(obj, "annotations", "{}")


def admission_policy_spec(namespace: str) -> dict:
    """CEL over the update (a PATCH reaches admission as UPDATE): the agent's own pod, that one
    annotation. Evaluated by the API server only; nothing here runs CEL (no API server locally)."""
    new, old = _annotations("object"), _annotations("oldObject")
    key = f"'{ANNOTATION}'"
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                               "resources": ["pods"]}],
        },
        "matchConditions": [{"name": "agent-service-account",
                             "expression": f"request.userInfo.username == '{service_account_user(namespace)}'"}],
        "validations": [
            {"expression": f"'{POD_NAME_EXTRA}' in request.userInfo.extra && "
                           f"request.userInfo.extra['{POD_NAME_EXTRA}'] == [object.metadata.name]",
             "message": "an agent pod may patch only itself"},
            {"expression": "object.spec == oldObject.spec", "message": "an agent pod may not change a pod's spec"},
            {"expression": f"{_field('object', 'labels', '{}')} == {_field('oldObject', 'labels', '{}')}",
             "message": "an agent pod may not change labels"},
            # A pod's update may also add finalizers (the pod then never goes away) or owner
            # references (garbage collection, and which controller counts it); neither is the
            # agent's to touch.
            {"expression": f"{_field('object', 'finalizers', '[]')} == {_field('oldObject', 'finalizers', '[]')}",
             "message": "an agent pod may not change finalizers"},
            {"expression": f"{_field('object', 'ownerReferences', '[]')} == "
                           f"{_field('oldObject', 'ownerReferences', '[]')}",
             "message": "an agent pod may not change owner references"},
            {"expression": f"{new}.all(k, k == {key} || (k in {old} && {old}[k] == {new}[k])) && "
                           f"{old}.all(k, k == {key} || k in {new})",
             "message": f"an agent pod may change only the {ANNOTATION} annotation"},
        ],
    }
