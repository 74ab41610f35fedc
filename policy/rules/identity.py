"""Rules for identities: no keys, and Vertex AI reached only through Workload Identity."""

from __future__ import annotations

from policy.rules.base import (
    MANDATORY, PROJECT_BINDING, PROJECT_MEMBER, Resource, Rule, SA_KEY, VERTEX_ROLE, prop,
)


def _no_sa_keys(resources, ctx):
    return [(r.name, "a service-account key is a long-lived credential; use Workload Identity (agents) and "
                     "Workload Identity Federation (CI) instead") for r in resources if r.type == SA_KEY]


def _vertex_members(r: Resource) -> list[str]:
    if r.type == PROJECT_MEMBER:
        return [str(prop(r.props, "member", default=""))]
    return [str(m) for m in prop(r.props, "members", default=[])]


def _vertex_by_workload_identity(resources, ctx):
    grants = [r for r in resources if r.type in (PROJECT_MEMBER, PROJECT_BINDING) and prop(r.props, "role") == VERTEX_ROLE]
    findings = [(r.name, f"Vertex AI is granted to {member}: a Google service account invites keys and is shared by "
                         "whatever can impersonate it; grant roles/aiplatform.user to the agent's Workload Identity "
                         "principal (principal://.../subject/ns/<namespace>/sa/<ksa>)")
                for r in grants for member in _vertex_members(r) if not member.startswith(("principal://", "principalSet://"))]
    if not grants:
        findings.append(("stack", "no roles/aiplatform.user grant for the agent's Workload Identity principal: Gemini calls will fail"))
    return findings


RULES: tuple[Rule, ...] = (
    Rule("no-service-account-keys", MANDATORY, "No service-account keys exist.", check_stack=_no_sa_keys),
    Rule("vertex-via-workload-identity", MANDATORY, "Vertex AI access goes to a Workload Identity principal.", check_stack=_vertex_by_workload_identity),
)
