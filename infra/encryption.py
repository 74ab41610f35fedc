"""SecretsKey: the Cloud KMS key GKE encrypts Kubernetes Secrets with (application-layer
secrets encryption), and the GKE service agent's right to use it.

With it, every Kubernetes Secret in etcd is encrypted under a key of this stack (the LiveKit
credentials too where livekitCredentials=kubernetesSecret; by default they are in no Secret):
revoking or disabling the key makes them unreadable, and every use is in the KMS audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.names import child, name_part, type_token

KEY_USER_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
# KMS rotates the key itself; 90 days is the common compliance ceiling (CIS GCP 1.10).
ROTATION_PERIOD = f"{90 * 86_400}s"
# Key ring ids are at most 63 characters; "voice-agents-<stack>-<4 hex>".
_RING_STACK_CHARS = 63 - len("voice-agents--abcd")


def gke_service_agent(project_number: str) -> str:
    """The Google-managed identity GKE uses for the cluster (GKE docs, "Encrypt secrets at the
    application layer": it needs cryptoKeyEncrypterDecrypter on the key)."""
    return f"serviceAccount:service-{project_number}@container-engine-robot.iam.gserviceaccount.com"


@dataclass(frozen=True)
class SecretsKeyArgs:
    project: str
    region: str  # GKE requires the key in the cluster's location
    stack: str


class SecretsKey(pulumi.ComponentResource):
    # projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>; resolves only once the
    # GKE service agent has been granted the key, so a cluster reading it waits for the grant.
    key_id: pulumi.Output[str]

    def __init__(self, name: str, args: SecretsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "SecretsKey"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        # Key rings can never be deleted: a destroyed and recreated stack needs a new name.
        suffix = random.RandomId(child(name, "suffix"), byte_length=2, opts=child_opts)
        ring = gcp.kms.KeyRing(
            child(name, "ring"),
            project=args.project,
            location=args.region,
            name=suffix.hex.apply(lambda h: f"voice-agents-{name_part(args.stack, _RING_STACK_CHARS)}-{h}"),
            opts=child_opts,
        )
        key = gcp.kms.CryptoKey(
            child(name, "key"),
            key_ring=ring.id,
            name="gke-secrets",
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            opts=child_opts,
        )
        project = gcp.organizations.get_project_output(project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self))
        grant = gcp.kms.CryptoKeyIAMMember(
            child(name, "gke-agent"),
            crypto_key_id=key.id,
            role=KEY_USER_ROLE,
            member=project.number.apply(gke_service_agent),
            opts=child_opts,
        )
        self.key_id = pulumi.Output.all(key.id, grant.id).apply(lambda ids: ids[0])
        self.register_outputs({"keyId": self.key_id})
