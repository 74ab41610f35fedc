"""Rules that judge what each protected principal can reach (policy/rules/access_gcp.py computes
it), not how a grant is spelled.

- The agent (Kubernetes service account voice-agent): Vertex AI on the project; secretAccessor
  on the secrets its `livekit` SecretProviderClass mounts; token creator on a service account
  that is a Cloud SQL IAM database user (the account its Cloud SQL Auth Proxy sidecar
  impersonates, infra/database.py), and through that account only cloudsql.client /
  cloudsql.instanceUser pinned by an IAM condition to that user's instance; encrypterDecrypter on
  the Cloud KMS key its pods name in AGENT_RECOVERY_KMS_KEY (infra/checkpoint_key.py: the key that
  seals its checkpoints). Nothing else, in any member form, at any level, through any chain.
- Each tool server (pods labelled gke-voice-agents/role=tool-server): the quota role on the
  project, directly or as the one Google service account it acts as through GKE's Workload
  Identity link (workloadIdentityUser on that account: infra/tool_identity.py, as Places takes
  no federated token), nothing else.
- The metrics adapter: monitoring.viewer on the project (k8s/metrics_adapter.py), nothing else.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from k8s.runtime import AGENT_ROLE, AGENT_SERVICE_ACCOUNT, ROLE_LABEL
from policy.rules.access_gcp import Reach, Workload, closure, workload_pools
from policy.rules.access_k8s import Allowance, describe, permissions, within
from policy.rules.agent_pod import agent_pods
from policy.rules.base import DEPLOYMENT, MANDATORY, VERTEX_ROLE, Finding, Resource, Rule, prop
from policy.rules.secrets import ACCESSOR_ROLE, livekit_class
from policy.rules.tools import TOOL_SERVER_ROLE

# Spelled here because the rules import without the Pulumi SDK; tests/policy/test_access_rules.py
# keeps each equal to its home.
QUOTA_ROLE = "roles/serviceusage.serviceUsageConsumer"  # infra.tool_identity.QUOTA_ROLE
ADAPTER_NAMESPACE = "custom-metrics"  # k8s.metrics_adapter.NAMESPACE
ADAPTER_ACCOUNT = "custom-metrics-stackdriver-adapter"  # k8s.metrics_adapter.SERVICE_ACCOUNT
MONITORING_ROLE = "roles/monitoring.viewer"  # k8s.metrics_adapter.MONITORING_ROLE
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"  # infra.database.TOKEN_CREATOR
CLOUDSQL_ROLES = frozenset({"roles/cloudsql.client", "roles/cloudsql.instanceUser"})  # infra.database.CLIENT_ROLES
KMS_KEY_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"  # infra.encryption.KEY_USER_ROLE
KMS_KEY_VARIABLE = "AGENT_RECOVERY_KMS_KEY"  # agent/voice_agent/recovery/config.py KMS_KEY_ENV
SQL_USER = "gcp:sql/user:User"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
# One instance, by name, and nothing that widens it (IAM Conditions, resource attributes:
# https://cloud.google.com/iam/docs/conditions-resource-attributes; Cloud SQL's own sample,
# terraform-docs-samples cloud_sql/instance_iam_condition/main.tf).
_PINNED = re.compile(r"^resource\.name\s*==\s*'projects/(?P<project>[^/']+)/instances/(?P<instance>[^/']+)'"
                     r"(\s*&&\s*resource\.type\s*==\s*'sqladmin\.googleapis\.com/Instance')?$")


def workloads(resources: list[Resource], role: str, default_account: str | None = None) -> list[Workload]:
    """The federated identities of the pods labelled `role`, plus `default_account` in every
    namespace that declares it (or in any namespace when none is declared)."""
    pools = workload_pools(resources)
    found = set()
    for r in resources:
        template = prop(r.props, "spec", "template", default={})
        if r.type == DEPLOYMENT and prop(template, "metadata", "labels", default={}).get(ROLE_LABEL) == role:
            found.add((prop(r.props, "metadata", "namespace", default="default"),
                       prop(template, "spec", "serviceAccountName", default="default")))
        if default_account and r.type == SERVICE_ACCOUNT and prop(r.props, "metadata", "name") == default_account:
            found.add((prop(r.props, "metadata", "namespace", default="default"), default_account))
    if not found and default_account:
        return [Workload(None, default_account, pools)]
    return [Workload(ns, name, pools) for ns, name in sorted(found)]


def _database_accounts(resources: list[Resource]) -> dict[str, str | None]:
    """Service accounts that are Cloud SQL IAM database users (PostgreSQL names them by their
    email without `.gserviceaccount.com`) -> the instance they log in to (None: not known)."""
    return {f"{prop(r.props, 'name')}.gserviceaccount.com".lower(): prop(r.props, "instance")
            for r in resources if r.type == SQL_USER and prop(r.props, "type") == "CLOUD_IAM_SERVICE_ACCOUNT"}


def _checkpoint_keys(resources: list[Resource]) -> frozenset[str]:
    """The Cloud KMS keys the agent's pods seal their checkpoints with (their own env)."""
    return frozenset(pod.env[KMS_KEY_VARIABLE] for pod in agent_pods(resources)
                     if pod.env.get(KMS_KEY_VARIABLE, "").startswith("projects/"))


def _agent_problem(reach: Reach, livekit: frozenset[str], database: dict[str, str | None],
                   keys: frozenset[str] = frozenset()) -> str | None:
    g, hops = reach.grant, len(reach.via)
    if hops == 0:
        if g.role == VERTEX_ROLE and g.level == "project":
            return None
        if g.role == KMS_KEY_ROLE and g.level == "cryptoKey" and g.target in keys:
            return None
        if g.role == ACCESSOR_ROLE and g.level == "secret" and g.target.rpartition("/")[2] in livekit:
            return None
        if g.role == TOKEN_CREATOR and g.level == "serviceAccount" and g.target.rpartition("/")[2].lower() in database:
            return None
        if g.level == "secret":
            return (f"may read a Secret Manager secret ({g.role}) other than its LiveKit files (secretAccessor on a "
                    "secret the livekit SecretProviderClass mounts)")
        if g.level in ("cryptoKey", "keyRing"):
            return (f"is granted {g.role} on {g.where()}: it may only encrypt and decrypt with the key its pods "
                    f"name in {KMS_KEY_VARIABLE} ({KMS_KEY_ROLE} on that key)")
        return f"is granted {g.role} on {g.where()}"
    # hops >= 1 here. Unpacked, not indexed: of a single account, via[0] and via[-1] are the same
    # one, so an index would be a number no test could pin.
    through, *further = reach.via
    if not further and through.email in database and g.role in CLOUDSQL_ROLES:
        pinned, instance = _PINNED.match((g.condition or "").strip()), database[through.email]
        if (pinned and (g.level != "project" or pinned["project"] == g.target)
                and instance in (None, pinned["instance"])):
            return None
        return (f"reaches {g.role} on {g.where()} through its database account without an IAM condition naming "
                f"its instance: every Cloud SQL instance there (condition resource.name == "
                f"'projects/<project>/instances/{instance or '<instance>'}')")
    return f"reaches {g.role} on {g.where()} through {hops} impersonation hop(s)"


def _agent_identity_holds_no_tool_role(resources: list[Resource], ctx) -> list[Finding]:
    livekit, class_problems = livekit_class(resources)
    livekit = livekit if not class_problems else frozenset()
    database = _database_accounts(resources)
    keys = _checkpoint_keys(resources)
    findings = []
    for agent in workloads(resources, AGENT_ROLE, AGENT_SERVICE_ACCOUNT):
        for reach in closure(resources, agent):
            problem = _agent_problem(reach, livekit, database, keys)
            if problem:
                findings.append((reach.grant.source, f"the agent's principal ({agent}) {problem}: {reach.path()}. The "
                                 "agent may hold only Vertex AI, its LiveKit secrets, its database proxy's account and its "
                                 "checkpoint key; "
                                 "grant tool roles to the tool server's principal"))
    return findings


def _only(role: str, who: str, identities: Callable[[list[Resource]], Iterable[Workload]]):
    def check(resources: list[Resource], ctx) -> list[Finding]:
        return [(reach.grant.source, f"the {who}'s principal ({identity}) reaches {reach.role} on {reach.grant.where()}"
                                     f"{f' through {len(reach.via)} impersonation hop(s)' if reach.via else ''}: "
                                     f"{reach.path()}. It may hold only {role} on the project")
                for identity in identities(resources) for reach in closure(resources, identity)
                if reach.via or reach.role != role or reach.grant.level != "project"]
    return check


WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"  # infra.tool_identity's link


def _tool_server_problem(reach: Reach) -> str | None:
    g, hops = reach.grant, len(reach.via)
    if hops == 0 and (g.role, g.level) in ((QUOTA_ROLE, "project"), (WORKLOAD_IDENTITY_USER, "serviceAccount")):
        return None
    # the one hop must be the Workload Identity link itself: a workloadIdentityUser grant on that
    # one service account (read from the hop's grant, not from how its path is written)
    if (hops == 1 and (g.role, g.level) == (QUOTA_ROLE, "project")
            and (reach.hops[0].role, reach.hops[0].grant.level) == (WORKLOAD_IDENTITY_USER, "serviceAccount")):
        return None
    return f"reaches {g.role} on {g.where()}{f' through {hops} impersonation hop(s)' if hops else ''}"


def _tool_server_identity_holds_quota_only(resources: list[Resource], ctx) -> list[Finding]:
    return [(reach.grant.source, f"a tool server's principal ({server}) {problem}: {reach.path()}. It may hold only "
                                 f"{QUOTA_ROLE} on the project, itself or as the one service account it acts as")
            for server in workloads(resources, TOOL_SERVER_ROLE) for reach in closure(resources, server)
            if (problem := _tool_server_problem(reach))]


_READ = frozenset({"get", "list", "watch"})
# The adapter's own roles (k8s/metrics_adapter.py, as upstream's production manifest): delegated
# authentication and authorization, the API server's client CA, and reading pods and nodes.
ADAPTER_ALLOWANCES = (
    Allowance(frozenset({"create"}), frozenset({"authentication.k8s.io"}), frozenset({"tokenreviews"})),
    Allowance(frozenset({"create"}), frozenset({"authorization.k8s.io"}), frozenset({"subjectaccessreviews"})),
    Allowance(_READ, frozenset({""}), frozenset({"configmaps"}), frozenset({"extension-apiserver-authentication"}),
              "kube-system"),
    Allowance(_READ, frozenset({""}), frozenset({"pods", "nodes", "nodes/stats"})),
)


# A tool server asks whether a caller's pod still exists (TokenReview, k8s/tool_server.py) and
# may do nothing else with its token.
TOOL_SERVER_ALLOWANCES = (
    Allowance(frozenset({"create"}), frozenset({"authentication.k8s.io"}), frozenset({"tokenreviews"})),
)


def _kubernetes_access(resources: list[Resource], ctx) -> list[Finding]:
    """Each protected service account's RBAC closure against its promise: the agent patches pods
    of its own namespace (its deletion cost, narrowed further by admission: tools.py), a tool
    server reviews tokens, the metrics adapter reads what the HPA path needs."""
    accounts = [(w, "the agent", (Allowance(frozenset({"patch"}), frozenset({""}), frozenset({"pods"}),
                                            namespace=w.namespace),))
                for w in workloads(resources, AGENT_ROLE)]
    accounts += [(w, "a tool server", TOOL_SERVER_ALLOWANCES) for w in workloads(resources, TOOL_SERVER_ROLE)]
    accounts += [(Workload(ADAPTER_NAMESPACE, ADAPTER_ACCOUNT), "the metrics adapter", ADAPTER_ALLOWANCES)]
    findings = []
    for account, who, allowed in accounts:
        for p in permissions(resources, account.namespace or "default", account.name):
            if not within(p, allowed):
                findings.append((p.source,
                                 f"{who}'s service account {account.namespace}/{account.name} may {describe(p)}: "
                                 "beyond what it needs"))
    return findings


RULES: tuple[Rule, ...] = (
    Rule("agent-identity-holds-no-tool-role", MANDATORY,
         "The agent's Google principal reaches Vertex AI, its LiveKit secrets, its own database instance and its "
         "checkpoint key only.",
         check_stack=_agent_identity_holds_no_tool_role),
    Rule("tool-server-identity-holds-quota-only", MANDATORY,
         "A tool server's Google principal reaches the project's quota role only (itself, or as its one linked "
         "service account).",
         check_stack=_tool_server_identity_holds_quota_only),
    Rule("metrics-adapter-identity-holds-viewer-only", MANDATORY,
         "The metrics adapter's Google principal reaches monitoring.viewer on the project only.",
         check_stack=_only(MONITORING_ROLE, "metrics adapter",
                           lambda rs: [Workload(ADAPTER_NAMESPACE, ADAPTER_ACCOUNT, workload_pools(rs))])),
    Rule("kubernetes-access-as-declared", MANDATORY,
         "The agent, tool servers and the metrics adapter hold no Kubernetes permission beyond their own.",
         check_stack=_kubernetes_access),
)
