"""Rules for identities: no keys, and Vertex AI reached only through Workload Identity."""

from __future__ import annotations

from policy.rules.access_gcp import grants
from policy.rules.base import MANDATORY, SA_KEY, VERTEX_ROLE, Rule


def _no_sa_keys(resources, ctx):
    return [(r.name, "a service-account key is a long-lived credential; use Workload Identity (agents) and "
                     "Workload Identity Federation (CI) instead") for r in resources if r.type == SA_KEY]


def _vertex_by_workload_identity(resources, ctx):
    # Every grant form at every level (policy/rules/access_gcp.py), not only project members.
    vertex = [g for g in grants(resources) if g.role == VERTEX_ROLE]
    findings = [(g.source, f"Vertex AI is granted to {member} on {g.where()}: a Google service account invites keys and "
                           "is shared by whatever can impersonate it; grant roles/aiplatform.user to the agent's Workload "
                           "Identity principal (principal://.../subject/ns/<namespace>/sa/<ksa>)")
                for g in vertex for member in g.members if not member.startswith(("principal://", "principalSet://"))]
    if not any(g.level == "project" for g in vertex):
        findings.append(("stack", "no roles/aiplatform.user grant for the agent's Workload Identity principal: Gemini calls will fail"))
    return findings


RULES: tuple[Rule, ...] = (
    Rule("no-service-account-keys", MANDATORY, "No service-account keys exist.", check_stack=_no_sa_keys),
    Rule("vertex-via-workload-identity", MANDATORY, "Vertex AI access goes to a Workload Identity principal.", check_stack=_vertex_by_workload_identity),
)
