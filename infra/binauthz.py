"""AdmissionPolicy: Binary Authorization admits only the stack's own images.

The project's singleton policy denies every image by default and admits the stack's Artifact
Registry repository (where CI pushes and promotes by digest, tags immutable), the few
images the platform itself runs (the spare-capacity pause image) and, when the agent comes from
another registry (agentImageRepository, deployed by digest only), every digest of that one
repository. Google-maintained system
images stay admitted through the global policy. The cluster enforces it
(`binary_authorization.evaluation_mode = PROJECT_SINGLETON_POLICY_ENFORCE`, infra/cluster.py).

One policy per project: two stacks sharing a project would overwrite each other's, so put
dev and prod in their own projects (docs/ci.md already does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.names import child, type_token


def repository_pattern(repository: str) -> str:
    """Every digest of one image repository outside the stack's registry: a trailing `*` stays
    within the last path segment, so `repo@*` admits `repo@sha256:...` and neither
    `repo-other` nor `repo/sub` (Binary Authorization allowlist pattern syntax)."""
    return f"{repository}@*"


def registry_pattern(registry_url: str) -> str:
    """Every image under the repository (`**` crosses path segments, Binary Authorization
    allowlist pattern syntax)."""
    return f"{registry_url}/**"


@dataclass(frozen=True)
class AdmissionPolicyArgs:
    project: str
    registry_url: pulumi.Input[str]
    # Exact image references the platform runs besides the agent (k8s/spare_capacity.py).
    platform_images: Sequence[str] = field(default_factory=tuple)
    # agentImageRepository when the agent comes from another registry (deployed by digest only).
    agent_repository: str = ""


class AdmissionPolicy(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionPolicyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AdmissionPolicy"), name, None, opts)
        patterns = [pulumi.Output.from_input(args.registry_url).apply(registry_pattern), *sorted(args.platform_images)]
        if args.agent_repository:
            patterns.append(repository_pattern(args.agent_repository))
        gcp.binaryauthorization.Policy(
            child(name, "policy"),
            project=args.project,
            description="gke-voice-agents: only the stack's registry and the platform's own images",
            # Google-maintained GKE system images are admitted without being listed.
            global_policy_evaluation_mode="ENABLE",
            default_admission_rule={
                "evaluation_mode": "ALWAYS_DENY",
                "enforcement_mode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
            },
            admission_whitelist_patterns=[{"name_pattern": p} for p in patterns],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
