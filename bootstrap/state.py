"""StateBackend: the self-managed Pulumi state bucket and one secrets key per stack.

Both are optional: with Pulumi Cloud as the backend there is no bucket, and with the passphrase
secrets provider there are no keys. Both are protected: losing either loses every stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_gcp as gcp

from bootstrap.roles import KEY_DECRYPTER_ROLE, KEY_USER_ROLE, STATE_READER_ROLE, STATE_WRITER_ROLE
from infra.names import child, type_token

KEY_RING = "pulumi-secrets"
# 90 days: rotation only re-wraps new data keys; older key versions stay usable for decryption.
KEY_ROTATION = f"{90 * 86400}s"
# Pulumi writes a backup of the previous checkpoint on every update (.pulumi/backups/...).
BACKUPS_PREFIX = ".pulumi/backups/"


@dataclass(frozen=True)
class StateBackendArgs:
    project: str
    stacks: tuple[str, ...]
    bucket: str | None  # None: Pulumi Cloud keeps the state
    location: str
    noncurrent_days: int
    kms_location: str | None  # None: passphrase secrets provider
    writers: Mapping[str, pulumi.Input[str]]  # stack -> its deployer's member
    reader: pulumi.Input[str]  # the previewer's member
    key_users: tuple[str, ...]  # people who init stacks and run local updates


class StateBackend(pulumi.ComponentResource):
    url: pulumi.Output[str]  # what `pulumi login` takes; empty for Pulumi Cloud
    secrets_providers: dict[str, pulumi.Output[str]]  # stack -> gcpkms://... for `pulumi stack init`

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "StateBackend"), name, None, opts)
        self.url = pulumi.Output.from_input("")
        self.secrets_providers = {}
        if args.bucket is not None:
            self.url = self._bucket(name, args)
        if args.kms_location is not None:
            self.secrets_providers = self._keys(name, args)
        self.register_outputs({"url": self.url, "secretsProviders": self.secrets_providers})

    def _bucket(self, name: str, args: StateBackendArgs) -> pulumi.Output[str]:
        bucket = gcp.storage.Bucket(
            child(name, "bucket"),
            project=args.project,
            name=args.bucket,
            location=args.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # Every checkpoint overwrite keeps the previous version: a corrupted or wrongly
            # imported state can be rolled back.
            versioning={"enabled": True},
            force_destroy=False,
            lifecycle_rules=[
                {"action": {"type": "Delete"}, "condition": {"days_since_noncurrent_time": args.noncurrent_days}},
                {"action": {"type": "Delete"}, "condition": {"age": args.noncurrent_days, "matches_prefixes": [BACKUPS_PREFIX]}},
            ],
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        child_opts = pulumi.ResourceOptions(parent=self)
        # One bucket for all stacks: each deployer can write it. The stacks' secrets stay apart
        # because each stack has its own key below.
        for stack in args.stacks:
            gcp.storage.BucketIAMMember(
                child(name, f"bucket-{stack}-deployer"),
                bucket=bucket.name, role=STATE_WRITER_ROLE, member=args.writers[stack], opts=child_opts,
            )
        gcp.storage.BucketIAMMember(
            child(name, "bucket-previewer"),
            bucket=bucket.name, role=STATE_READER_ROLE, member=args.reader, opts=child_opts,
        )
        return pulumi.Output.concat("gs://", bucket.name)

    def _keys(self, name: str, args: StateBackendArgs) -> dict[str, pulumi.Output[str]]:
        # Key rings cannot be deleted in Cloud KMS; the ring is protected so Pulumi never tries.
        ring = gcp.kms.KeyRing(
            child(name, "key-ring"),
            project=args.project,
            name=KEY_RING,
            location=args.kms_location,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        providers: dict[str, pulumi.Output[str]] = {}
        child_opts = pulumi.ResourceOptions(parent=self)
        for stack in args.stacks:
            key = gcp.kms.CryptoKey(
                child(name, f"key-{stack}"),
                name=f"stack-secrets-{stack}",
                key_ring=ring.id,
                purpose="ENCRYPT_DECRYPT",
                rotation_period=KEY_ROTATION,
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            # Only this stack's deployer: the dev deployer cannot unwrap prod's data key.
            gcp.kms.CryptoKeyIAMMember(
                child(name, f"key-{stack}-deployer"),
                crypto_key_id=key.id, role=KEY_DECRYPTER_ROLE, member=args.writers[stack], opts=child_opts,
            )
            gcp.kms.CryptoKeyIAMMember(
                child(name, f"key-{stack}-previewer"),
                crypto_key_id=key.id, role=KEY_DECRYPTER_ROLE, member=args.reader, opts=child_opts,
            )
            for member in args.key_users:
                gcp.kms.CryptoKeyIAMMember(
                    child(name, f"key-{stack}-{_member_slug(member)}"),
                    crypto_key_id=key.id, role=KEY_USER_ROLE, member=member, opts=child_opts,
                )
            providers[stack] = key.id.apply(lambda key_id: f"gcpkms://{key_id}")
        return providers


def _member_slug(member: str) -> str:
    """Stable child name for an IAM member: `group:platform@example.com` -> `group-platform-example-com`."""
    return "".join(c if c.isalnum() else "-" for c in member.lower()).strip("-")
