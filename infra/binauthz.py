"""AdmissionPolicy: Binary Authorization admits only the stack's own images.

The project's singleton policy admits:
- with `binaryAuthorizationAttestor` set (prod): every image that carries that attestor's
  attestation, and nothing else by default. Only the CI build job can sign (bootstrap/
  attestation.py), so an image someone else pushed to a registry, however it got there, is
  refused; a wildcard over the stack's registry would bypass the attestation and is not listed;
- without it: every image in the stack's Artifact Registry repository (CI pushes and promotes by
  digest, tags immutable), and nothing else by default;
- in both: the exact images the platform runs besides its own builds (the pause image, the
  metrics adapter, the Auth Proxy), and an agent from another registry (agentImageRepository)
  by its exact digest only: the reviewed stack config names the one build admitted, so a new
  push to that registry is not admitted until someone changes agentImageDigest.
Google-maintained system images stay admitted through the global policy. The cluster enforces it
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
    # The agent's exact reference (repository@sha256:...) when it comes from another registry.
    outside_images: Sequence[str] = field(default_factory=tuple)
    # projects/<p>/attestors/<id>: every other image needs its attestation (binaryAuthorizationAttestor).
    attestor: str = ""


class AdmissionPolicy(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionPolicyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AdmissionPolicy"), name, None, opts)
        exact = sorted({*args.platform_images, *args.outside_images})
        if args.attestor:
            patterns: list[pulumi.Input[str]] = list(exact)
            default_rule = {"evaluation_mode": "REQUIRE_ATTESTATION", "enforcement_mode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
                            "require_attestations_bies": [args.attestor]}
            description = "gke-voice-agents: only images the CI build attested, and the platform's own exact images"
        else:
            patterns = [pulumi.Output.from_input(args.registry_url).apply(registry_pattern), *exact]
            default_rule = {"evaluation_mode": "ALWAYS_DENY", "enforcement_mode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}
            description = "gke-voice-agents: only the stack's registry and the platform's own images"
        gcp.binaryauthorization.Policy(
            child(name, "policy"),
            project=args.project,
            description=description,
            # Google-maintained GKE system images are admitted without being listed.
            global_policy_evaluation_mode="ENABLE",
            default_admission_rule=default_rule,
            admission_whitelist_patterns=[{"name_pattern": p} for p in patterns],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
