"""Rules for tools: the agent holds no tool credential, and tool servers answer only agents.

Seed 003's fourth pillar: a prompt injection can reach only what the agent's identity can. So
the agent's pod carries no secret but its own LiveKit one (tool credentials live with the tool
server: a Secret, a CSI secret store or an API-key variable in an agent pod is refused; the one
secret store admitted is the LiveKit files' SecretProviderClass, policy/rules/secrets.py; its
API-server token only while its whole RBAC closure is patching pods and a bound, denying
admission policy holds that to one annotation, policy/rules/access_k8s.py), its Google identity
reaches nothing but Vertex AI, those two LiveKit secrets and its database (policy/rules/access.py:
a tool role belongs to the tool server's own principal, infra/tool_identity.py), and every tool server
(pods labelled gke-voice-agents/role=tool-server, k8s/tool_server.py) has a NetworkPolicy
whose ingress admits agent pods and nothing else. The tool server then checks the caller's
token itself (tools/places/places_mcp/caller_auth.py): network position is not identity.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from k8s.deletion_cost import ANNOTATION as DELETION_COST_ANNOTATION
from k8s.runtime import (
    AGENT_ROLE, AGENT_SERVICE_ACCOUNT, LIVEKIT_SECRET_PROVIDER_CLASS, ROLE_LABEL, SECRET_MANAGER_CSI_DRIVER,
)
from policy.rules.base import (
    DEPLOYMENT, MANDATORY, Finding, Resource, Rule, prop,
)
from policy.rules.access_k8s import Permission, admission_problems, describe, permissions
from policy.rules.secrets import livekit_class
from policy.rules.workload import agent_pods

# Spelled here because the rules must import without the Pulumi SDK (`python -m policy.manifests`),
# and k8s/pod.py and k8s/tool_server.py import it; tests/policy/test_rules_tools.py keeps them equal.
LIVEKIT_SECRET = "livekit"  # k8s.pod.LIVEKIT_SECRET
TOOL_SERVER_ROLE = "tool-server"  # k8s.tool_server.TOOL_SERVER_ROLE
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"




def _agent_namespaces(resources: list[Resource]) -> list[str]:
    found = {prop(r.props, "metadata", "namespace", default="default") for r in resources if r.type == DEPLOYMENT
             and prop(r.props, "spec", "template", "metadata", "labels", default={}).get(ROLE_LABEL) == AGENT_ROLE}
    return sorted(found)


def _permission_problem(p: Permission, namespace: str) -> str | None:
    rule = p.rule
    if (set(rule.get("verbs", [])) == {"patch"} and set(rule.get("resources", [])) == {"pods"}
            and set(rule.get("apiGroups", [])) == {""} and not rule.get("nonResourceURLs") and p.namespace == namespace):
        return None
    return f"it may {describe(p)}"


def api_token_problems(resources: list[Resource]) -> list[str]:
    """Why an API-server token in the agent pod would be a credential: [] when the agent's service
    account can do nothing with it but patch pods of its own namespace (k8s/deletion_cost.py: the
    worker keeps its pod-deletion-cost annotation), and a bound, denying admission policy narrows
    even that to that one annotation of its own pod (policy/rules/access_k8s.py)."""
    problems = []
    for ns in _agent_namespaces(resources):
        granted = permissions(resources, ns, AGENT_SERVICE_ACCOUNT)
        problems += [x for x in (_permission_problem(p, ns) for p in granted) if x]
        if not granted:
            problems.append(f"no RBAC rule lets {ns}/{AGENT_SERVICE_ACCOUNT} patch its pod: the token is of no use")
        problems += admission_problems(resources, ns, AGENT_SERVICE_ACCOUNT, DELETION_COST_ANNOTATION)
    return problems


def api_token_only_patches_pods(resources: list[Resource]) -> bool:
    """True when api_token_problems finds nothing (kept for callers of the earlier name)."""
    return not api_token_problems(resources)


def _csi_problem(volume: Mapping[str, Any], livekit_class_problems: list[str] | None) -> str | None:
    """Why a CSI volume is a credential the agent must not carry, or None for the add-on's
    volume of the `livekit` SecretProviderClass when that class lists the LiveKit files only.
    `livekit_class_problems` None: no class was checked, so no CSI volume is admitted."""
    name, driver = volume.get("name", "?"), prop(volume, "csi", "driver", default="?")
    livekit = (driver == SECRET_MANAGER_CSI_DRIVER
               and prop(volume, "csi", "volumeAttributes", "secretProviderClass") == LIVEKIT_SECRET_PROVIDER_CLASS)
    if livekit and livekit_class_problems == []:
        return None
    problem = f"volume {name} is a CSI volume ({driver}), e.g. a secret store"
    if livekit and livekit_class_problems:
        problem += (f" (its SecretProviderClass {LIVEKIT_SECRET_PROVIDER_CLASS} is not just the LiveKit files: "
                    f"{'; '.join(livekit_class_problems)})")
    return problem


def _credential_mounts(spec: Mapping[str, Any], token_problems: list[str] | None = None,
                       livekit_class_problems: list[str] | None = None) -> list[str]:
    found = []
    for volume in prop(spec, "volumes", default=[]):
        name = volume.get("name", "?")
        if "secret" in volume:
            found.append(f"volume {name} mounts Secret {prop(volume, 'secret', 'secretName', default='?')}")
        csi_problem = _csi_problem(volume, livekit_class_problems) if "csi" in volume else None
        if csi_problem:
            found.append(csi_problem)
        for source in prop(volume, "projected", "sources", default=[]):
            if "secret" in source:
                found.append(f"volume {name} projects Secret {prop(source, 'secret', 'name', default='?')}")
            token = source.get("serviceAccountToken")
            if token is not None and not token.get("audience") and token_problems != []:
                why = "; ".join(token_problems or ["its account's access was not computed"])
                found.append(f"volume {name} projects an API-server token (no audience) while the agent's service "
                             f"account may do more than patch its own pod's deletion cost: {why}. Scope it to one "
                             "tool server, or narrow its RBAC and admission policy")
    for container in prop(spec, "containers", default=[]):
        for env in container.get("env", []) or []:
            ref = prop(env, "valueFrom", "secretKeyRef", "name")
            if ref is not None and ref != LIVEKIT_SECRET:
                found.append(f"env {env.get('name')} reads Secret {ref}")
        for source in container.get("envFrom", []) or []:
            ref = prop(source, "secretRef", "name")
            if ref is not None and ref != LIVEKIT_SECRET:
                found.append(f"envFrom reads Secret {ref}")
    return found


def _agent_mounts_no_tool_credential(resources: list[Resource], ctx) -> list[Finding]:
    token_problems, class_problems = api_token_problems(resources), livekit_class(resources)[1]
    return [(pod.name, f"the agent pod carries a credential: {what}; tool credentials belong to the tool server "
                       "(tools/<name>), which the agent reaches with an audience-bound token")
            for pod in _unique(agent_pods(resources))
            for what in _credential_mounts(pod.spec, token_problems, class_problems)]


def _unique(pods):
    seen, out = set(), []
    for pod in pods:
        if pod.name not in seen:
            seen.add(pod.name)
            out.append(pod)
    return out


def _tool_servers(resources: Iterable[Resource]) -> list[tuple[str, dict[str, str]]]:
    servers = []
    for r in resources:
        if r.type != DEPLOYMENT:
            continue
        labels = prop(r.props, "spec", "template", "metadata", "labels", default={})
        if labels.get(ROLE_LABEL) == TOOL_SERVER_ROLE:
            servers.append((r.name, dict(labels)))
    return servers


def _selects(policy: Resource, labels: Mapping[str, str]) -> bool:
    wanted = prop(policy.props, "spec", "podSelector", "matchLabels", default={})
    return all(labels.get(k) == v for k, v in wanted.items())


def _only_agents(rule: Mapping[str, Any]) -> bool:
    sources = rule.get("from") or []
    return bool(sources) and all(
        set(source) == {"podSelector"}
        and prop(source, "podSelector", "matchLabels", default={}).get(ROLE_LABEL) == AGENT_ROLE
        for source in sources)


def _tool_servers_reachable_only_from_agents(resources: list[Resource], ctx) -> list[Finding]:
    policies = [r for r in resources if r.type == NETWORK_POLICY]
    findings = []
    for name, labels in _tool_servers(resources):
        guarding = [p for p in policies if _selects(p, labels)
                    and "Ingress" in prop(p.props, "spec", "policyTypes", default=[])]
        if not guarding:
            findings.append((name, "no NetworkPolicy with policyTypes Ingress selects this tool server's pods: any pod "
                                   "in the cluster can call it; admit only pods labelled "
                                   f"{ROLE_LABEL}={AGENT_ROLE}"))
        for policy in guarding:
            for rule in prop(policy.props, "spec", "ingress", default=[]):
                if not _only_agents(rule):
                    findings.append((policy.name, f"ingress rule {dict(rule)} admits more than agent pods; its `from` "
                                                  f"must list only podSelector {ROLE_LABEL}={AGENT_ROLE}"))
    return findings


RULES: tuple[Rule, ...] = (
    Rule("agent-mounts-no-tool-credential", MANDATORY,
         "The agent's pod carries no credential but its LiveKit files or Secret and audience-bound tool tokens.",
         check_stack=_agent_mounts_no_tool_credential),
    Rule("tool-server-admits-only-agents", MANDATORY,
         "Every tool server has a NetworkPolicy whose ingress admits agent pods only.",
         check_stack=_tool_servers_reachable_only_from_agents),
)
