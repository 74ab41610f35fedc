"""DeletionCostAccess: what lets the agent's worker patch its own pod's deletion cost.

The specs are pure functions in k8s/deletion_cost.py; this file only declares the objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.names import child, type_token
from domain.settings import WorkloadSettings
from k8s import runtime
from k8s.deletion_cost import admission_policy_spec, role_rules


@dataclass(frozen=True)
class DeletionCostAccessArgs:
    settings: WorkloadSettings


class DeletionCostAccess(pulumi.ComponentResource):
    """The Role, its binding to the agent's service account, and the admission policy."""

    def __init__(self, name: str, args: DeletionCostAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "DeletionCostAccess"), name, None, opts)
        ns = args.settings.namespace
        child_opts = pulumi.ResourceOptions(parent=self)
        role_name = "voice-agent-deletion-cost"
        role = k8s.rbac.v1.Role(
            child(name, "role"), metadata={"name": role_name, "namespace": ns}, rules=role_rules(), opts=child_opts)
        k8s.rbac.v1.RoleBinding(
            child(name, "binding"),
            metadata={"name": role_name, "namespace": ns},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            subjects=[{"kind": "ServiceAccount", "name": runtime.AGENT_SERVICE_ACCOUNT, "namespace": ns}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role]))
        policy_name = f"{ns}-agent-deletion-cost-only"
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            child(name, "policy"), metadata={"name": policy_name}, spec=admission_policy_spec(ns), opts=child_opts)
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            child(name, "policy-binding"),
            metadata={"name": policy_name},
            spec={"policyName": policy_name, "validationActions": ["Deny"]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self.register_outputs({"role": role_name})
