"""What a Google principal can reach in a plan: every grant that covers it, directly or through
the service accounts it can impersonate. Pure functions over resources; the rules that judge a
closure against a promise live with their concern (policy/rules/tools.py, identity.py).

Grants. Every pulumi-gcp resource whose type name ends in IamMember / IamBinding / IamPolicy
(any case: `IAMMember`, `iAMBinding`, ...) grants a role: 474 types in pulumi-gcp 9.x, from the
project, folder and organization down to a secret, a bucket, a topic, a key ring or a service
account (tests/policy/test_access_gcp.py checks the pattern against the installed SDK). Member
forms carry `member`, binding forms `members`, authoritative policy forms `policyData` (JSON
with `bindings`). Cloud SQL has no instance-level policy: instance access is a project grant,
narrowed only by an IAM condition on `resource.name`.

Members that cover a principal (IAM "Principal identifiers",
https://cloud.google.com/iam/docs/principal-identifiers, and GKE "About Workload Identity
Federation for GKE", https://cloud.google.com/kubernetes-engine/docs/concepts/workload-identity):
- a Kubernetes service account through its pool: `principal://.../workloadIdentityPools/POOL/
  subject/ns/NS/sa/KSA`; `principalSet://.../POOL/namespace/NS` (every account of the
  namespace); `principalSet://.../POOL/*` (the whole pool); any other principalSet of the pool
  (a cluster, an attribute: the plan cannot bound it, so it counts); the legacy
  `serviceAccount:POOL[NS/KSA]`;
- a Google service account: `serviceAccount:EMAIL`, `principal://iam.googleapis.com/projects/-/
  serviceAccounts/EMAIL`, `principalSet://cloudresourcemanager.googleapis.com/projects/P/type/
  ServiceAccount`;
- everyone: `allUsers`, `allAuthenticatedUsers`, `principalSet://goog/public:all`.
`group:` and `domain:` members are not followed: their membership lives outside the plan.

Impersonation: a role that lets its holder act as a service account (mint its tokens, sign as
it, run things as it, give it keys or set its policy) on that account, or on the project,
folder or organization above it (then: every account there, including ones this plan does not
declare, such as a default compute account holding Editor).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from policy.rules.base import Resource, prop

_GRANT_TYPE = re.compile(r"[Ii][Aa][Mm](Member|Binding|Policy)$")
_NOT_TARGET = frozenset({"role", "member", "members", "condition", "policyData", "etag"})
CUSTOM_ROLE_TYPES = ("gcp:projects/iAMCustomRole:IAMCustomRole", "gcp:organizations/iAMCustomRole:IAMCustomRole")
ACCOUNT = "gcp:serviceaccount/account:Account"
CLUSTER = "gcp:container/cluster:Cluster"
# Permissions that make their holder the account (IAM "Service account permissions",
# https://cloud.google.com/iam/docs/service-account-permissions, and "Roles for service
# account authentication", https://cloud.google.com/iam/docs/service-account-permissions#roles).
IMPERSONATION_PERMISSIONS = frozenset({
    "iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken", "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt", "iam.serviceAccounts.implicitDelegation", "iam.serviceAccounts.actAs",
    "iam.serviceAccountKeys.create", "iam.serviceAccounts.setIamPolicy",
})
# Predefined roles holding one of them (IAM roles reference, "IAM roles and permissions index").
IMPERSONATION_ROLES = {
    "roles/iam.serviceAccountTokenCreator": "token creator",
    "roles/iam.workloadIdentityUser": "workload identity user",
    "roles/iam.serviceAccountUser": "service account user (actAs)",
    "roles/iam.serviceAccountOpenIdTokenCreator": "OpenID token creator",
    "roles/iam.serviceAccountKeyAdmin": "key admin (creates its keys)",
    "roles/iam.serviceAccountAdmin": "service account admin (sets its policy)",
    "roles/iam.securityAdmin": "security admin (sets policies)",
    "roles/resourcemanager.projectIamAdmin": "project IAM admin (sets policies)",
    "roles/editor": "editor (actAs)",
    "roles/owner": "owner",
}
_ABOVE_ACCOUNTS = ("project", "folder", "organization")


@dataclass(frozen=True)
class Grant:
    source: str  # the resource's name
    level: str  # "project", "serviceAccount", "secret", "bucket", "cryptoKey", ...
    target: str  # the granted-on resource's id as the props name it
    role: str
    members: tuple[str, ...]
    condition: str | None  # the CEL expression, when the binding is conditional
    authoritative: bool

    def where(self) -> str:
        return f"{self.level} {self.target}"


@dataclass(frozen=True)
class Workload:
    """A Kubernetes service account's federated identity; None fields: unknown (any)."""
    namespace: str | None
    name: str
    pools: frozenset[str] | None = None

    def __str__(self) -> str:
        return f"Kubernetes service account {self.namespace or '*'}/{self.name}"


@dataclass(frozen=True)
class Account:
    """A Google service account, or every account of a project (`email` '*@<project>')."""
    email: str

    def __str__(self) -> str:
        if self.email.startswith("*@"):
            return f"every service account of {self.email[2:]}"
        return f"service account {self.email}"


@dataclass(frozen=True)
class Hop:
    """One impersonation step: `member` (covering the identity held so far, `why`) holds `grant`,
    whose role makes its holder `account` (`how`)."""
    member: str
    why: str
    grant: Grant
    how: str
    account: Account

    @property
    def role(self) -> str:
        return self.grant.role

    def describe(self) -> str:
        return (f"{self.member} ({self.why}) holds {self.role} on {self.grant.where()} [{self.grant.source}]: "
                f"{self.how} of {self.account}")


@dataclass(frozen=True)
class Reach:
    grant: Grant
    member: str
    why: str  # how the member covers the identity it reached
    hops: tuple[Hop, ...] = ()  # impersonation steps taken before this grant, outermost first

    @property
    def role(self) -> str:
        return self.grant.role

    @property
    def via(self) -> tuple[Account, ...]:
        return tuple(h.account for h in self.hops)

    @property
    def chain(self) -> tuple[str, ...]:
        return tuple(h.describe() for h in self.hops)

    def path(self) -> str:
        steps = [*self.chain, f"{self.member} ({self.why}) holds {self.role} on {self.grant.where()}"
                              f"{' if ' + self.grant.condition if self.grant.condition else ''} [{self.grant.source}]"]
        return " -> ".join(steps)


def is_grant_type(resource_type: str) -> bool:
    return bool(_GRANT_TYPE.search(resource_type.rsplit(":", 1)[-1]))


def _level(resource_type: str) -> str:
    module = resource_type.split(":")[1] if resource_type.count(":") >= 2 else resource_type
    package, _, leaf = module.partition("/")
    kind = re.split(r"[Ii][Aa][Mm](?:Member|Binding|Policy)$", leaf)[0]
    if kind:
        return kind
    return {"projects": "project", "serviceaccount": "serviceAccount", "organizations": "organization"}.get(package, package)


def _target(props: Mapping[str, Any], level: str) -> str:
    keys = [k for k in props if k not in _NOT_TARGET and k != "project"]
    preferred = {"serviceAccount": "serviceAccountId", "organization": "orgId", "folder": "folder"}.get(level)
    key = preferred if preferred in props else (keys[0] if keys else "project")
    return str(props.get(key, "?"))


def grants(resources: Iterable[Resource]) -> list[Grant]:
    found = []
    for r in resources:
        if not is_grant_type(r.type):
            continue
        level = _level(r.type)
        target = _target(r.props, level)
        authoritative = not r.type.endswith("Member")
        if prop(r.props, "policyData") is not None:
            try:
                bindings = json.loads(str(prop(r.props, "policyData", default="{}"))).get("bindings", [])
            except (json.JSONDecodeError, AttributeError):
                bindings = [{"role": "(unreadable policyData)", "members": ["allUsers"]}]
            for b in bindings:
                found.append(Grant(r.name, level, target, str(b.get("role", "")), tuple(map(str, b.get("members", []))),
                                   prop(b, "condition", "expression"), True))
            continue
        members = prop(r.props, "members", default=None)
        members = [prop(r.props, "member", default="")] if members is None else members
        found.append(Grant(r.name, level, target, str(prop(r.props, "role", default="")), tuple(map(str, members)),
                           prop(r.props, "condition", "expression"), authoritative))
    return found


def custom_roles(resources: Iterable[Resource]) -> dict[str, frozenset[str]]:
    """Custom role name -> its permissions (`projects/P/roles/ID`, `organizations/O/roles/ID`)."""
    roles = {}
    for r in resources:
        if r.type in CUSTOM_ROLE_TYPES:
            parent = (f"projects/{prop(r.props, 'project')}" if "projects/" in r.type
                      else f"organizations/{prop(r.props, 'orgId')}")
            roles[f"{parent}/roles/{prop(r.props, 'roleId')}"] = frozenset(prop(r.props, "permissions", default=[]))
    return roles


# A policy-setting role held with this condition may add or remove only the listed roles (IAM
# "Delegate granting roles with conditions", https://cloud.google.com/iam/docs/setting-limits-on-granting-roles;
# bootstrap/roles.py delegated_grants_condition writes it). The whole expression must be this one
# call: anything or'ed to it could admit other roles.
_GRANTS_ONLY = re.compile(r"^\s*api\.getAttribute\(\s*'iam\.googleapis\.com/modifiedGrantsByRole'\s*,\s*\[\]\s*\)"
                          r"\.hasOnly\(\s*\[(?P<roles>[^\]]*)\]\s*\)\s*$")
_PROJECT_POLICY_SETTERS = frozenset({"roles/resourcemanager.projectIamAdmin"})


def delegated_roles(condition: str | None) -> tuple[str, ...] | None:
    """The roles a modifiedGrantsByRole condition limits grants to, or None when it is not one."""
    m = _GRANTS_ONLY.match(condition or "")
    if m is None:
        return None
    return tuple(r.strip().strip("'\"") for r in m["roles"].split(",") if r.strip())


def impersonates(role: str, custom: Mapping[str, frozenset[str]], condition: str | None = None) -> str | None:
    """Why holding `role` on an account (or above it) makes one that account, or None. A project
    policy setter limited to some roles impersonates only if one of those roles does."""
    if role in _PROJECT_POLICY_SETTERS and (limited := delegated_roles(condition)) is not None:
        granted = [r for r in limited if impersonates(r, custom)]
        return f"{IMPERSONATION_ROLES[role]}, may grant {', '.join(granted)}" if granted else None
    if role in IMPERSONATION_ROLES:
        return IMPERSONATION_ROLES[role]
    held = custom.get(role, frozenset()) & IMPERSONATION_PERMISSIONS
    return f"custom role with {', '.join(sorted(held))}" if held else None


def workload_pools(resources: Iterable[Resource]) -> frozenset[str] | None:
    """The clusters' Workload Identity pools; None when no cluster is declared (any pool)."""
    pools = frozenset(str(p) for r in resources if r.type == CLUSTER
                      for p in [prop(r.props, "workloadIdentityConfig", "workloadPool")] if p)
    return pools or None


_POOL = re.compile(r"^principal(?:Set)?://iam\.googleapis\.com/projects/[^/]+/locations/global/workloadIdentityPools/"
                   r"(?P<pool>[^/]+)/(?P<rest>.*)$")
_LEGACY = re.compile(r"^serviceAccount:(?P<pool>[^\[]+)\[(?P<ns>[^/\]]+)/(?P<ksa>[^\]]+)\]$")
_EVERYONE = {"allUsers": "everyone on the internet", "allAuthenticatedUsers": "every authenticated Google identity",
             "principalSet://goog/public:all": "every principal"}


def _covers_workload(member: str, w: Workload) -> str | None:
    legacy = _LEGACY.match(member)
    if legacy:
        pool_ok = w.pools is None or legacy["pool"] in w.pools
        ns_ok = w.namespace is None or legacy["ns"] == w.namespace
        return "the legacy Workload Identity member of that account" if pool_ok and ns_ok and legacy["ksa"] == w.name else None
    m = _POOL.match(member)
    if not m or (w.pools is not None and m["pool"] not in w.pools):
        return None
    rest, single = m["rest"], member.startswith("principal://")
    if single:
        sub = re.fullmatch(r"subject/ns/(?P<ns>[^/]+)/sa/(?P<ksa>[^/]+)", rest)
        ok = sub and sub["ksa"] == w.name and (w.namespace is None or sub["ns"] == w.namespace)
        return "that account's principal" if ok else None
    if rest == "*":
        return "every identity of the pool"
    ns = re.fullmatch(r"namespace/(?P<ns>[^/]+)", rest)
    if ns:
        return f"every service account of namespace {ns['ns']}" if w.namespace in (None, ns["ns"]) else None
    return f"a set of the pool's identities ({rest}) the plan cannot bound"


def _covers_account(member: str, a: Account) -> str | None:
    email = a.email.lower()
    project = email.split("@", 1)[1].split(".", 1)[0] if "@" in email else ""
    low = member.lower()
    if email.startswith("*@"):
        scope = email[2:]
        # a folder or organization ("folder 123"): every account below it, whatever its project
        ok = low.startswith("serviceaccount:") and "[" not in low and (
            " " in scope or low.endswith(f"@{project}.iam.gserviceaccount.com"))
        return f"an account of {scope}" if ok else None
    if low in (f"serviceaccount:{email}", f"principal://iam.googleapis.com/projects/-/serviceaccounts/{email}"):
        return "that account"
    if re.fullmatch(r"principalset://cloudresourcemanager\.googleapis\.com/projects/[^/]+/type/serviceaccount", low):
        return "every service account of a project"
    return None


def covers(member: str, identity: Workload | Account) -> str | None:
    """How `member` covers `identity`, or None when it does not."""
    if member in _EVERYONE:
        return _EVERYONE[member]
    return _covers_workload(member, identity) if isinstance(identity, Workload) else _covers_account(member, identity)


def _account_id(service_account_id: str) -> str:
    """An email from serviceAccountId (`projects/P/serviceAccounts/EMAIL`, `P/EMAIL`, `EMAIL`)."""
    return service_account_id.rpartition("/")[2].lower()


def _accounts_below(g: Grant, resources: list[Resource]) -> list[Account]:
    """The accounts a grant of an impersonation role reaches."""
    if g.level == "serviceAccount":
        email = _account_id(g.target)
        return [Account(email if "@" in email else f"unknown account {g.target}")]
    if g.level in _ABOVE_ACCOUNTS:
        declared = [Account(str(prop(r.props, "email", default="")) or
                            f"{prop(r.props, 'accountId')}@{prop(r.props, 'project')}.iam.gserviceaccount.com")
                    for r in resources if r.type == ACCOUNT]
        scope = g.target if g.level == "project" else g.where()
        return [Account(f"*@{scope}"), *declared]
    return []


def closure(resources: list[Resource], identity: Workload | Account, max_hops: int = 4) -> list[Reach]:
    """Every grant `identity` holds, directly or through accounts it can impersonate."""
    return _walk(resources, identity, max_hops)[0]


def impersonated(resources: list[Resource], identity: Workload | Account,
                 max_hops: int = 4) -> dict[Account, tuple[Hop, ...]]:
    """Every account `identity` can act as (holding grants or not), with the hops that get it there;
    `*@<project>`: every account of that project, including ones the plan does not declare."""
    return _walk(resources, identity, max_hops)[1]


def _walk(resources: list[Resource], identity: Workload | Account,
          max_hops: int) -> tuple[list[Reach], dict[Account, tuple[Hop, ...]]]:
    all_grants, custom = grants(resources), custom_roles(resources)
    frontier: list[tuple[Workload | Account, tuple[Hop, ...]]] = [(identity, ())]
    seen: set[Workload | Account] = {identity}
    reached: list[Reach] = []
    accounts: dict[Account, tuple[Hop, ...]] = {}
    while frontier:
        who, hops = frontier.pop(0)
        for g in all_grants:
            for member in g.members:
                why = covers(member, who)
                if why is None:
                    continue
                reached.append(Reach(g, member, why, hops))
                how = impersonates(g.role, custom, g.condition)
                if how is None or len(hops) >= max_hops:
                    continue
                for account in _accounts_below(g, resources):
                    if account not in seen:
                        seen.add(account)
                        accounts[account] = (*hops, Hop(member, why, g, how, account))
                        frontier.append((account, accounts[account]))
    return reached, accounts
