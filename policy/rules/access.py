"""Rules that judge what each protected principal can reach (policy/rules/access_gcp.py computes
it), not how a grant is spelled.

- The agent (Kubernetes service account voice-agent): Vertex AI on the project; secretAccessor
  on the secrets its `livekit` SecretProviderClass mounts; token creator on the one account its
  Cloud SQL Auth Proxy sidecar impersonates (`--impersonate-service-account`), and through that
  account only cloudsql.client / cloudsql.instanceUser pinned by an IAM condition to one
  instance. Nothing else, in any member form, at any level, through any chain.
- Each tool server (pods labelled gke-voice-agents/role=tool-server): the quota role on the
  project (infra/tool_identity.py), nothing else.
- The metrics adapter: monitoring.viewer on the project (k8s/metrics_adapter.py), nothing else.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from k8s.runtime import AGENT_ROLE, AGENT_SERVICE_ACCOUNT, ROLE_LABEL
from policy.rules.access_gcp import Reach, Workload, closure, workload_pools
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
PROXY_CONTAINER = "cloud-sql-proxy"
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


def _proxied_accounts(resources: list[Resource]) -> frozenset[str]:
    """The accounts the agent pods' Cloud SQL Auth Proxy impersonates (a single account, not a
    delegation chain)."""
    accounts = set()
    for r in resources:
        spec = prop(r.props, "spec", "template", "spec", default={})
        if r.type != DEPLOYMENT or prop(r.props, "spec", "template", "metadata", "labels", default={}).get(ROLE_LABEL) != AGENT_ROLE:
            continue
        for c in [*prop(spec, "initContainers", default=[]), *prop(spec, "containers", default=[])]:
            if c.get("name") != PROXY_CONTAINER:
                continue
            for arg in c.get("args", []) or []:
                value = str(arg).partition("--impersonate-service-account=")[2]
                if value and "," not in value:
                    accounts.add(value.lower())
    return frozenset(accounts)


def _agent_problem(reach: Reach, livekit: frozenset[str], proxied: frozenset[str]) -> str | None:
    g, hops = reach.grant, len(reach.via)
    if hops == 0:
        if g.role == VERTEX_ROLE and g.level == "project":
            return None
        if g.role == ACCESSOR_ROLE and g.level == "secret" and g.target.rsplit("/", 1)[-1] in livekit:
            return None
        if g.role == TOKEN_CREATOR and g.level == "serviceAccount" and g.target.rsplit("/", 1)[-1].lower() in proxied:
            return None
        if g.level == "secret":
            return (f"may read a Secret Manager secret ({g.role}) other than its LiveKit files (secretAccessor on a "
                    "secret the livekit SecretProviderClass mounts)")
        return f"is granted {g.role} on {g.where()}"
    if hops == 1 and reach.via[0].email in proxied and g.role in CLOUDSQL_ROLES:
        pinned = _PINNED.match((g.condition or "").strip())
        if pinned and (g.level != "project" or pinned["project"] == g.target):
            return None
        return (f"reaches {g.role} on {g.where()} through its Cloud SQL Auth Proxy's account without an IAM condition "
                "naming one instance: every Cloud SQL instance there (condition resource.name == "
                "'projects/<project>/instances/<instance>')")
    return f"reaches {g.role} on {g.where()} through {hops} impersonation hop(s)"


def _agent_identity_holds_no_tool_role(resources: list[Resource], ctx) -> list[Finding]:
    livekit, class_problems = livekit_class(resources)
    livekit = livekit if not class_problems else frozenset()
    proxied = _proxied_accounts(resources)
    findings = []
    for agent in workloads(resources, AGENT_ROLE, AGENT_SERVICE_ACCOUNT):
        for reach in closure(resources, agent):
            problem = _agent_problem(reach, livekit, proxied)
            if problem:
                findings.append((reach.grant.source, f"the agent's principal ({agent}) {problem}: {reach.path()}. The "
                                 "agent may hold only Vertex AI, its LiveKit secrets and its database proxy's account; "
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


RULES: tuple[Rule, ...] = (
    Rule("agent-identity-holds-no-tool-role", MANDATORY,
         "The agent's Google principal reaches Vertex AI, its LiveKit secrets and its own database instance only.",
         check_stack=_agent_identity_holds_no_tool_role),
    Rule("tool-server-identity-holds-quota-only", MANDATORY,
         "A tool server's Google principal reaches the project's quota role only.",
         check_stack=_only(QUOTA_ROLE, "tool server", lambda rs: workloads(rs, TOOL_SERVER_ROLE))),
    Rule("metrics-adapter-identity-holds-viewer-only", MANDATORY,
         "The metrics adapter's Google principal reaches monitoring.viewer on the project only.",
         check_stack=_only(MONITORING_ROLE, "metrics adapter",
                           lambda rs: [Workload(ADAPTER_NAMESPACE, ADAPTER_ACCOUNT, workload_pools(rs))])),
)
