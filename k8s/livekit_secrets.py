"""LiveKitSecrets: the agent's LiveKit API key and secret in Secret Manager, readable by the
agent's Workload Identity principal and by no other identity of the stack.

The values come from the stack's encrypted config (livekitApiKey, livekitApiSecret) as today;
what changes is where the cluster gets them: GKE's Secret Manager add-on mounts them into the
agent's pods as files (k8s/livekit_files.py), so no Kubernetes Secret holds them and no
environment variable carries them. Every read is in the Secret Manager audit log, per pod
identity; revoking the grant or disabling a version cuts access without touching the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra.names import LIVEKIT_SECRET_LABEL, child, livekit_secret_id, name_part, type_token
from k8s.livekit_files import LiveKitFiles
from k8s.runtime import LIVEKIT_FILES

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
# A rotation replaces the version. The old one is disabled, not destroyed: no pod can mount the
# rotated-out credential any more, yet its value stays recoverable and its history audited. Pods
# read `latest` (the newest version), so a rollback is setting the old values again, which adds a
# version; re-enabling an old one changes nothing, and disabling the newest one makes every new
# pod's mount fail (tests/k8s/test_csi_mount.py). Running pods keep the files they read.
OLD_VERSION_POLICY = "DISABLE"


@dataclass(frozen=True)
class LiveKitSecretsArgs:
    project: str
    region: str  # the one replica's location: the credentials stay in the stack's region
    stack: str
    agent_principal: pulumi.Input[str]
    api_key: pulumi.Input[str] = field(repr=False)
    api_secret: pulumi.Input[str] = field(repr=False)
    protected: bool = True  # deletion protection, as the cluster's


class LiveKitSecrets(pulumi.ComponentResource):
    files: LiveKitFiles

    def __init__(self, name: str, args: LiveKitSecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "LiveKitSecrets"), name, None, opts)
        values = {"api-key": args.api_key, "api-secret": args.api_secret}
        ids = {file: livekit_secret_id(args.stack, file) for file in LIVEKIT_FILES}
        versions = [self._secret(name, args, file, ids[file], values[file]) for file in LIVEKIT_FILES]
        revision = pulumi.Output.all(*versions).apply(lambda numbers: "-".join(numbers))
        self.files = LiveKitFiles(project=args.project, secret_ids=ids, revision=revision)
        self.register_outputs({"secretIds": ids, "revision": revision})

    def _secret(self, name: str, args: LiveKitSecretsArgs, file: str, secret_id: str,
                value: pulumi.Input[str]) -> pulumi.Output[str]:
        """One credential: the secret, its value as a version, the agent's right to read it."""
        opts = pulumi.ResourceOptions(parent=self)
        secret = gcp.secretmanager.Secret(
            child(name, file), project=args.project, secret_id=secret_id,
            replication={"user_managed": {"replicas": [{"location": args.region}]}},
            labels={LIVEKIT_SECRET_LABEL[0]: LIVEKIT_SECRET_LABEL[1], "gke-voice-agents-stack": name_part(args.stack, 63)},
            deletion_protection=args.protected, opts=opts)
        version = gcp.secretmanager.SecretVersion(
            child(name, f"{file}-version"), secret=secret.id, secret_data=pulumi.Output.secret(value),
            deletion_policy=OLD_VERSION_POLICY, opts=opts)
        # The id as a plain string (known at preview, so the policy pack can read it); the
        # dependency keeps the grant after the secret.
        gcp.secretmanager.SecretIamMember(
            child(name, f"{file}-agent-reader"), project=args.project, secret_id=secret_id,
            role=ACCESSOR_ROLE, member=args.agent_principal,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret]))
        return version.version
