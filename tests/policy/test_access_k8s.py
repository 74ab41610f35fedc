"""Attacks on the Kubernetes access closures (policy/rules/access_k8s.py): each case changes the
real evaluated dev plan so that a protected service account can do more than its promise, in a
form the old rules did not read, and expects the refusal to name the path.

Subjects and their semantics follow Kubernetes "Using RBAC Authorization" (a service account is
also the User `system:serviceaccount:<ns>:<name>` and a member of the Groups
`system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`; aggregated
ClusterRoles) and "Validating Admission Policy" (a policy acts only through a binding whose
validationActions include Deny).
"""

from __future__ import annotations

import copy
import functools

import pytest

from tooling.plan import evaluate
from k8s.deletion_cost import ANNOTATION, admission_policy_spec
from policy.engine import as_resources, evaluate_plan
from policy.rules import access_k8s

TOKEN_RULE, ACCESS_RULE = "agent-mounts-no-tool-credential", "kubernetes-access-as-declared"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1:"
NS, AGENT = "voice-agents", "voice-agent"


@functools.lru_cache(maxsize=None)
def _evaluated(stack: str):
    return evaluate(stack)


def _plan(stack: str = "dev") -> list[dict]:
    resources = copy.deepcopy(_evaluated(stack).resources)
    assert any(r["type"] == access_k8s.ADMISSION_POLICY for r in resources), "the stack runs the deletion-cost token"
    return resources


def _messages(resources, rule, stack="dev"):
    return [v["message"] for v in evaluate_plan(resources, stack) if v["rule"] == rule]


def _add(resources, kind, name, **inputs):
    resources.append({"type": RBAC + kind, "name": name, "parent": None, "dependsOn": [], "inputs": inputs})


def _bind(resources, name, subject, role_kind="ClusterRole", role="secret-reader", namespace=NS):
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    _add(resources, kind, name, metadata=meta, subjects=[subject],
         roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role})


def _secret_reader(resources, labels=None):
    _add(resources, "ClusterRole", "secret-reader", metadata={"name": "secret-reader", **({"labels": labels} if labels else {})},
         rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}])


def _named(resources, type_suffix):
    return next(r for r in resources if r["type"].endswith(type_suffix))["inputs"]


def _policy(resources):
    return _named(resources, ":ValidatingAdmissionPolicy")["spec"]


def _policy_binding(resources):
    return _named(resources, ":ValidatingAdmissionPolicyBinding")["spec"]


# --- RBAC forms that reach the agent -----------------------------------------------------------

def _namespace_group(rs):
    _secret_reader(rs)
    _bind(rs, "ns-group", {"kind": "Group", "name": f"system:serviceaccounts:{NS}", "apiGroup": "rbac.authorization.k8s.io"})


def _all_service_accounts(rs):
    _secret_reader(rs)
    _bind(rs, "all-sas", {"kind": "Group", "name": "system:serviceaccounts", "apiGroup": "rbac.authorization.k8s.io"},
          namespace=None)


def _authenticated(rs):
    _secret_reader(rs)
    _bind(rs, "everyone", {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"},
          namespace=None)


def _user_form(rs):
    _bind(rs, "as-user", {"kind": "User", "name": f"system:serviceaccount:{NS}:{AGENT}", "apiGroup": "rbac.authorization.k8s.io"},
          role="edit", namespace=None)


def _aggregated(rs):
    _secret_reader(rs, labels={"example.com/aggregate-to-agent": "true"})
    _add(rs, "ClusterRole", "agent-extra", metadata={"name": "agent-extra"},
         aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-agent": "true"}}]})
    _bind(rs, "agent-extra", {"kind": "ServiceAccount", "name": AGENT, "namespace": NS}, role="agent-extra")


def _wildcard_verbs(rs):
    _named(rs, ":Role")["rules"][0]["verbs"] = ["*"]


def _cluster_wide_patch(rs):
    """The same patch-pods rule, bound cluster-wide: pods of other namespaces, where the
    admission policy's namespaceSelector does not look."""
    role = _named(rs, ":Role")
    _add(rs, "ClusterRole", "pod-patcher", metadata={"name": "pod-patcher"}, rules=copy.deepcopy(role["rules"]))
    _bind(rs, "pod-patcher", {"kind": "ServiceAccount", "name": AGENT, "namespace": NS}, role="pod-patcher", namespace=None)


def _subject_without_namespace(rs):
    """A RoleBinding's ServiceAccount subject without a namespace means the binding's own."""
    _secret_reader(rs)
    _bind(rs, "implicit-ns", {"kind": "ServiceAccount", "name": AGENT})


RBAC_ATTACKS = {
    "Group system:serviceaccounts:<ns>": (_namespace_group, "Group system:serviceaccounts:voice-agents -> RoleBinding ns-group"),
    "Group system:serviceaccounts": (_all_service_accounts, "Group system:serviceaccounts -> ClusterRoleBinding all-sas"),
    "Group system:authenticated": (_authenticated, "['secrets'] in groups [''] in every namespace (Group system:authenticated"),
    "User form": (_user_form, "ClusterRole edit, which the plan does not declare (counted as everything)"),
    "aggregated ClusterRole": (_aggregated, "ClusterRole agent-extra (aggregating secret-reader)"),
    "wildcard verbs": (_wildcard_verbs, "['*'] on ['pods'] in groups [''] in namespace voice-agents"),
    "cluster-wide patch": (_cluster_wide_patch, "['patch'] on ['pods'] in groups [''] in every namespace"),
    "subject without namespace": (_subject_without_namespace, "ServiceAccount voice-agents/voice-agent -> RoleBinding implicit-ns"),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_are_clean(stack):
    resources = _plan(stack)
    assert _messages(resources, TOKEN_RULE, stack) == _messages(resources, ACCESS_RULE, stack) == []


@pytest.mark.parametrize("case", sorted(RBAC_ATTACKS))
def test_rbac_forms_make_the_token_a_credential(case):
    mutate, path = RBAC_ATTACKS[case]
    resources = _plan()
    mutate(resources)
    token = _messages(resources, TOKEN_RULE)
    declared = _messages(resources, ACCESS_RULE)
    assert any("projects an API-server token" in m and path in m for m in token), token
    assert any(path in m and m.startswith("the agent's service account voice-agents/voice-agent may") for m in declared), declared


# --- the admission policy ----------------------------------------------------------------------

def _unbound(rs):
    rs[:] = [r for r in rs if not r["type"].endswith(":ValidatingAdmissionPolicyBinding")]


def _warn_only(rs):
    _policy_binding(rs)["validationActions"] = ["Warn", "Audit"]


def _binding_names_another_policy(rs):
    _policy_binding(rs)["policyName"] = "something-else"


def _drop_validation(message_word):
    def mutate(rs):
        spec = _policy(rs)
        spec["validations"] = [v for v in spec["validations"] if message_word not in v["message"]]
    return mutate


def _other_namespace(rs):
    _policy(rs)["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "default"}}


def _another_user(rs):
    _policy(rs)["matchConditions"][0]["expression"] = "request.userInfo.username == 'system:serviceaccount:default:default'"


def _fail_open(rs):
    _policy(rs)["failurePolicy"] = "Ignore"


def _create_only(rs):
    _policy(rs)["matchConstraints"]["resourceRules"][0]["operations"] = ["CREATE"]


def _object_selector(rs):
    _policy_binding(rs)["matchResources"] = {"objectSelector": {"matchLabels": {"checked": "yes"}}}


ADMISSION_ATTACKS = {
    "unbound policy": (_unbound, "no ValidatingAdmissionPolicyBinding binds an admission policy"),
    "Warn/Audit only": (_warn_only, "validationActions ['Warn', 'Audit'], without Deny"),
    "binding to another policy": (_binding_names_another_policy, "names policy 'something-else'"),
    "finalizers unguarded": (_drop_validation("finalizers"), "no validation compares finalizers"),
    "owner references unguarded": (_drop_validation("owner references"), "no validation compares ownerReferences"),
    "spec unguarded": (_drop_validation("spec"), "no validation compares spec"),
    "labels unguarded": (_drop_validation("labels"), "no validation compares labels"),
    "other annotations unguarded": (_drop_validation("only the"), "no validation keeps annotations other than"),
    "any pod, not its own": (_drop_validation("only itself"), "no validation holds the account to the pod"),
    "another namespace": (_other_namespace, "namespaceSelector does not select namespace voice-agents"),
    "another user's requests": (_another_user, "is not exactly system:serviceaccount:voice-agents:voice-agent's requests"),
    "fails open": (_fail_open, "failurePolicy Ignore"),
    "creates only": (_create_only, "does not match pod UPDATEs"),
    "binding narrowed by labels": (_object_selector, "has an objectSelector"),
}


@pytest.mark.parametrize("case", sorted(ADMISSION_ATTACKS))
def test_an_admission_policy_counts_only_bound_denying_and_guarding_everything(case):
    mutate, says = ADMISSION_ATTACKS[case]
    resources = _plan()
    mutate(resources)
    [message] = _messages(resources, TOKEN_RULE)
    assert "projects an API-server token (no audience)" in message and says in message, message
    assert _messages(resources, ACCESS_RULE) == [], "RBAC alone is unchanged"


def test_the_stacks_policy_guards_finalizers_and_owner_references():
    """The fix itself: the stack's own policy compares both (k8s/deletion_cost.py)."""
    expressions = [v["expression"] for v in admission_policy_spec(NS)["validations"]]
    for field in ("finalizers", "ownerReferences"):
        assert any(f"object.metadata.{field}" in e and f"oldObject.metadata.{field}" in e for e in expressions), field
    assert access_k8s.admission_problems(as_resources(_plan()), NS, AGENT, ANNOTATION) == []


# --- the other two accounts --------------------------------------------------------------------

def _tool(subject_kind, name, namespace=NS, **binding):
    def mutate(rs):
        _secret_reader(rs)
        _bind(rs, "tool-extra", {"kind": subject_kind, "name": name, "namespace": namespace}, **binding)
    return mutate


def _tool_server_mints_tokens(rs):
    """Its TokenReview role widened to TokenRequest: it could mint the agent's tokens."""
    role = next(r for r in rs if r["name"].endswith("token-review-role"))["inputs"]
    role["rules"].append({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]})


def _adapter_reads_secrets(rs):
    reader = next(r for r in rs if r["name"] == "metrics-adapter-resource-reader")["inputs"]
    reader["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})


def _adapter_wildcard(rs):
    reader = next(r for r in rs if r["name"] == "metrics-adapter-resource-reader")["inputs"]
    reader["rules"][0]["resources"] = ["*"]


def _adapter_writes_pods(rs):
    reader = next(r for r in rs if r["name"] == "metrics-adapter-resource-reader")["inputs"]
    reader["rules"][0]["verbs"] = ["get", "list", "watch", "delete"]


def _adapter_group(rs):
    _secret_reader(rs)
    _bind(rs, "metrics-group", {"kind": "Group", "name": "system:serviceaccounts:custom-metrics"}, namespace="custom-metrics")


def _adapter_auth_reader_everywhere(rs):
    """The built-in configmap reader, but as a ClusterRole bound cluster-wide: any ConfigMap."""
    _bind(rs, "cm-everywhere", {"kind": "ServiceAccount", "name": "custom-metrics-stackdriver-adapter",
                                "namespace": "custom-metrics"}, role="view", namespace=None)


OTHER_ATTACKS = {
    "tool server by ServiceAccount": (_tool("ServiceAccount", "places-mcp"), "a tool server's service account voice-agents/places-mcp"),
    "tool server by User": (_tool("User", "system:serviceaccount:voice-agents:places-mcp", namespace=None),
                            "User system:serviceaccount:voice-agents:places-mcp"),
    "tool server by namespace group": (_namespace_group, "a tool server's service account voice-agents/places-mcp may"),
    "tool server by all accounts": (_all_service_accounts, "a tool server's service account"),
    "tool server mints tokens": (_tool_server_mints_tokens, "['create'] on ['serviceaccounts/token']"),
    "tool server by undeclared role": (_tool("ServiceAccount", "places-mcp", role="admin"), "counted as everything"),
    "adapter reads secrets": (_adapter_reads_secrets, "['get'] on ['secrets']"),
    "adapter wildcard": (_adapter_wildcard, "on ['*']"),
    "adapter deletes pods": (_adapter_writes_pods, "'delete'"),
    "adapter namespace group": (_adapter_group, "Group system:serviceaccounts:custom-metrics"),
    "adapter bound to view": (_adapter_auth_reader_everywhere, "ClusterRole view, which the plan does not declare"),
}


@pytest.mark.parametrize("case", sorted(OTHER_ATTACKS))
def test_the_tool_server_and_adapter_hold_only_their_own(case):
    mutate, says = OTHER_ATTACKS[case]
    resources = _plan()
    mutate(resources)
    messages = _messages(resources, ACCESS_RULE)
    assert any(says in m for m in messages), messages


def test_subjects_that_do_not_cover_the_agent_are_not_counted():
    resources = _plan()
    _secret_reader(resources)
    for i, subject in enumerate([{"kind": "ServiceAccount", "name": AGENT, "namespace": "other"},
                                 {"kind": "Group", "name": "system:serviceaccounts:other"},
                                 {"kind": "User", "name": f"system:serviceaccount:other:{AGENT}"},
                                 {"kind": "User", "name": AGENT}]):
        _bind(resources, f"elsewhere-{i}", subject, namespace=None)
    assert _messages(resources, TOKEN_RULE) == _messages(resources, ACCESS_RULE) == []


# For tests/policy/test_rules.py's FAILING table.
FAILING_CASES = {ACCESS_RULE: (_namespace_group, "Group system:serviceaccounts:voice-agents -> RoleBinding ns-group")}


def test_the_built_in_roles_the_adapter_is_bound_to_grant_what_kubernetes_gives_them():
    """system:auth-delegator and extension-apiserver-authentication-reader are not in the plan;
    the closure knows them as Kubernetes 1.36 bootstraps them (plugin/pkg/auth/authorizer/rbac/
    bootstrappolicy), written out here, and the real authorizer agrees
    (tests/k8s/test_apiserver_access.py)."""
    held = {(tuple(p.rule.get("resources", ())), tuple(p.rule.get("resourceNames", ())), tuple(p.rule["verbs"]),
             p.namespace)
            for p in access_k8s.permissions(as_resources(_plan("dev")), "custom-metrics",
                                            "custom-metrics-stackdriver-adapter")}
    assert (("tokenreviews",), (), ("create",), None) in held
    assert (("subjectaccessreviews",), (), ("create",), None) in held
    assert (("configmaps",), ("extension-apiserver-authentication",), ("get", "list", "watch"), "kube-system") in held


@pytest.mark.parametrize(("expression", "labels", "selected"), [
    ({"key": "app", "operator": "In", "values": ["agent"]}, {"app": "agent"}, True),
    ({"key": "app", "operator": "In", "values": ["agent"]}, {"app": "tool"}, False),
    ({"key": "app", "operator": "NotIn", "values": ["agent"]}, {"app": "tool"}, True),
    ({"key": "app", "operator": "NotIn", "values": ["agent"]}, {"app": "agent"}, False),
    ({"key": "app", "operator": "NotIn", "values": ["agent"]}, {}, True),  # absent is not in the list
    ({"key": "app", "operator": "Exists"}, {"app": "x"}, True),
    ({"key": "app", "operator": "Exists"}, {}, False),
    ({"key": "app", "operator": "DoesNotExist"}, {}, True),
    ({"key": "app", "operator": "DoesNotExist"}, {"app": "x"}, False),
    ({"key": "app", "operator": "Unknown"}, {"app": "x"}, False),
])
def test_label_selector_expressions_as_kubernetes_reads_them(expression, labels, selected):
    """metav1.LabelSelector semantics (apimachinery labels.Selector): what decides whether an
    admission policy's namespace or object selector covers the agent."""
    assert access_k8s._selects({"matchExpressions": [expression]}, labels) is selected
