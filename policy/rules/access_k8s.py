"""What a Kubernetes service account can do in a plan, and whether an admission policy really
narrows it. Pure functions over resources, shared by the rules (policy/rules/tools.py,
policy/rules/access.py) and the tests.

Who a binding reaches (Kubernetes "Using RBAC Authorization", subjects; the authorizer's
`appliesToUser` in pkg/registry/rbac/validation/rule.go): a ServiceAccount subject (its
namespace defaults to a RoleBinding's own), the User `system:serviceaccount:<ns>:<name>`, the
Groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.
What it grants: a RoleBinding grants its Role's or ClusterRole's rules in its namespace, a
ClusterRoleBinding its ClusterRole's rules everywhere; a ClusterRole with an aggregationRule
holds the rules of every ClusterRole its selectors match. A role the plan does not declare
grants everything, unless it is one of the few bootstrap roles below whose rules are fixed.

An admission policy narrows a request only when a ValidatingAdmissionPolicyBinding binds it
with `validationActions` containing Deny, its match rules cover that account's request, and its
validations compare every field the request could change (Kubernetes "Validating Admission
Policy": a policy without a binding, or bound with Warn/Audit only, refuses nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from policy.rules.base import Resource, prop

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ADMISSION_POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
ADMISSION_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
EVERYTHING = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
# Bootstrap roles every cluster has, as kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy
# (policy.go, namespace_policy.go) defines them.
BUILTIN = {
    ("ClusterRole", None, "system:auth-delegator"): [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}],
    ("Role", "kube-system", "extension-apiserver-authentication-reader"): [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["extension-apiserver-authentication"],
         "verbs": ["get", "list", "watch"]}],
}
# Pod fields an UPDATE (a PATCH reaches admission as one) can change besides annotations.
# Status and ephemeral containers are subresources the rules' `pods` does not reach.
GUARDED_FIELDS = {"spec": "spec", "labels": "metadata.labels", "finalizers": "metadata.finalizers",
                  "ownerReferences": "metadata.ownerReferences"}


@dataclass(frozen=True)
class Permission:
    rule: Mapping[str, Any]
    namespace: str | None  # None: every namespace
    path: str  # how the account got it
    source: str  # the binding's resource name

    def scope(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "every namespace"


def username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def subject_covers(subject: Mapping[str, Any], binding_namespace: str | None, namespace: str, name: str) -> str | None:
    kind, subject_name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f"ServiceAccount {ns}/{subject_name}" if (ns, subject_name) == (namespace, name) else None
    if kind == "User" and subject_name == username(namespace, name):
        return f"User {subject_name}"
    if kind == "Group" and subject_name in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                            "system:authenticated"):
        return f"Group {subject_name}"
    return None


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A label selector's matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def _roles(resources: list[Resource]) -> dict[tuple[str, str | None, str], list[tuple[Mapping[str, Any], str]]]:
    """(kind, namespace, name) -> [(rule, where it comes from)], aggregated ClusterRoles expanded."""
    declared = {}
    cluster_roles = [r for r in resources if r.type == CLUSTER_ROLE]
    for r in resources:
        if r.type not in (ROLE, CLUSTER_ROLE):
            continue
        kind = "Role" if r.type == ROLE else "ClusterRole"
        ns = prop(r.props, "metadata", "namespace") if kind == "Role" else None
        name = prop(r.props, "metadata", "name", default=r.name)
        rules = [(rule, f"{kind} {name}") for rule in prop(r.props, "rules", default=[])]
        for selector in prop(r.props, "aggregationRule", "clusterRoleSelectors", default=[]):
            for other in cluster_roles:
                if other is not r and _selects(selector, prop(other.props, "metadata", "labels", default={})):
                    other_name = prop(other.props, "metadata", "name", default=other.name)
                    rules += [(rule, f"ClusterRole {name} (aggregating {other_name})")
                              for rule in prop(other.props, "rules", default=[])]
        declared[(kind, ns, name)] = rules
    return declared


def permissions(resources: list[Resource], namespace: str, name: str) -> list[Permission]:
    """Every RBAC rule that reaches service account `namespace/name`, with its scope and path."""
    roles, found = _roles(resources), []
    for r in resources:
        if r.type not in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
            continue
        binding_ns = prop(r.props, "metadata", "namespace") if r.type == ROLE_BINDING else None
        binding = f"{'RoleBinding' if binding_ns else 'ClusterRoleBinding'} {prop(r.props, 'metadata', 'name', default=r.name)}"
        ref = prop(r.props, "roleRef", default={})
        key = (ref.get("kind"), binding_ns if ref.get("kind") == "Role" else None, ref.get("name"))
        for subject in prop(r.props, "subjects", default=[]):
            why = subject_covers(subject, binding_ns, namespace, name)
            if why is None:
                continue
            if key in roles:
                rules = roles[key]
            elif key in BUILTIN:
                rules = [(rule, f"{key[0]} {key[2]} (built in)") for rule in BUILTIN[key]]
            else:
                rules = [(EVERYTHING, f"{key[0]} {key[2]}, which the plan does not declare (counted as everything)")]
            found += [Permission(rule, binding_ns, f"{why} -> {binding} [{r.name}] -> {origin}", r.name)
                      for rule, origin in rules]
            break
    return found


@dataclass(frozen=True)
class Allowance:
    """What a promise admits: verbs on resources of groups, optionally only named objects, only
    in one namespace (None: any scope)."""
    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str] = frozenset()
    namespace: str | None = None


def within(p: Permission, allowances: Iterable[Allowance]) -> bool:
    """`p` grants nothing beyond one of `allowances` (wildcards never are within)."""
    rule = p.rule
    verbs, groups = set(rule.get("verbs", [])), set(rule.get("apiGroups", []))
    resources, names = set(rule.get("resources", [])), set(rule.get("resourceNames", []))
    if rule.get("nonResourceURLs"):
        return False
    return any(verbs <= a.verbs and groups <= a.groups and resources <= a.resources
               and (not a.names or (names and names <= a.names))
               and (a.namespace is None or p.namespace == a.namespace) for a in allowances)


def describe(p: Permission) -> str:
    rule = p.rule
    what = (f"nonResourceURLs {list(rule['nonResourceURLs'])}" if rule.get("nonResourceURLs") else
            f"{list(rule.get('resources', []))} in groups {list(rule.get('apiGroups', []))}")
    names = f" named {list(rule['resourceNames'])}" if rule.get("resourceNames") else ""
    return f"{list(rule.get('verbs', []))} on {what}{names} in {p.scope()} ({p.path})"


# --- admission ---------------------------------------------------------------------------------

def _covers_pod_updates(rules: Iterable[Mapping[str, Any]]) -> bool:
    return any({"", "*"} & set(r.get("apiGroups", [])) and {"v1", "*"} & set(r.get("apiVersions", []))
               and {"UPDATE", "*"} & set(r.get("operations", [])) and {"pods", "*"} & set(r.get("resources", []))
               for r in rules)


def _namespace_problem(match: Mapping[str, Any], namespace: str, who: str) -> str | None:
    selector = match.get("namespaceSelector") or {}
    if not _selects(selector, {"kubernetes.io/metadata.name": namespace}):
        return f"{who}'s namespaceSelector does not select namespace {namespace}"
    if match.get("objectSelector"):
        return f"{who} has an objectSelector: pods without those labels escape it"
    if _covers_pod_updates(match.get("excludeResourceRules") or []):
        return f"{who} excludes pod updates"
    return None


def _guard_problems(validations: list[Mapping[str, Any]], annotation: str) -> list[str]:
    expressions = [str(v.get("expression", "")) for v in validations]

    def compares(path: str) -> bool:
        return any(re.search(rf"\bobject\.{re.escape(path)}\b", e) and re.search(rf"\boldObject\.{re.escape(path)}\b", e)
                   for e in expressions)

    problems = [f"no validation compares {field} (object.{path} with oldObject.{path})"
                for field, path in GUARDED_FIELDS.items() if not compares(path)]
    if not any(annotation in e and "object.metadata.annotations" in e and "oldObject.metadata.annotations" in e
               for e in expressions):
        problems.append(f"no validation keeps annotations other than {annotation}")
    if not any("request.userInfo.extra" in e and "object.metadata.name" in e for e in expressions):
        problems.append("no validation holds the account to the pod its token is bound to")
    return problems


def admission_problems(resources: list[Resource], namespace: str, name: str, annotation: str) -> list[str]:
    """Why no bound, denying policy holds `namespace/name`'s pod updates to `annotation`; [] when
    one does. Each candidate's problems are listed (the closest one first)."""
    policies = {prop(r.props, "metadata", "name"): r for r in resources if r.type == ADMISSION_POLICY}
    user, candidates = username(namespace, name), []
    for b in (r for r in resources if r.type == ADMISSION_BINDING):
        spec = prop(b.props, "spec", default={})
        policy = policies.get(spec.get("policyName"))
        who = f"binding {prop(b.props, 'metadata', 'name')}"
        if policy is None:
            candidates.append([f"{who} names policy {spec.get('policyName')!r}, which the plan does not declare"])
            continue
        p, problems = prop(policy.props, "spec", default={}), []
        if "Deny" not in (spec.get("validationActions") or []):
            problems.append(f"{who} has validationActions {list(spec.get('validationActions') or [])}, without Deny")
        if spec.get("matchResources"):
            problems += [x for x in [_namespace_problem(spec["matchResources"], namespace, who)] if x]
        match = p.get("matchConstraints") or {}
        if not _covers_pod_updates(match.get("resourceRules") or []):
            problems.append(f"policy {spec.get('policyName')} does not match pod UPDATEs")
        problems += [x for x in [_namespace_problem(match, namespace, f"policy {spec.get('policyName')}")] if x]
        if p.get("failurePolicy", "Fail") != "Fail":
            problems.append(f"policy {spec.get('policyName')} has failurePolicy {p.get('failurePolicy')}: an error admits")
        for condition in p.get("matchConditions") or []:
            expression = re.sub(r"\s+", " ", str(condition.get("expression", ""))).strip()
            if expression not in (f"request.userInfo.username == '{user}'", f'request.userInfo.username == "{user}"'):
                problems.append(f"matchCondition {condition.get('name')!r} ({expression}) is not exactly {user}'s requests")
        problems += [f"policy {spec.get('policyName')}: {x}" for x in _guard_problems(p.get("validations") or [], annotation)]
        if not problems:
            return []
        candidates.append(problems)
    if not candidates:
        return ["no ValidatingAdmissionPolicyBinding binds an admission policy"]
    return min(candidates, key=len)
