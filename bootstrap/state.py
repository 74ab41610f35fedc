"""StateBackend: one self-managed Pulumi state bucket and one secrets key per stage, plus a
bucket for the bootstrap's own state that no CI identity can read.

Separate buckets, not prefixes in one: the DIY backend lists and reads `.pulumi/` paths across
the bucket, and bucket-level IAM is the boundary Cloud Storage enforces without conditions. So
the dev deployer (no reviewers) can neither read nor rewrite prod's checkpoint.

Both are optional: with Pulumi Cloud as the backend there are no buckets, and with the passphrase
secrets provider there are no keys. Both are protected: losing either loses a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_gcp as gcp

from bootstrap.config import BOOTSTRAP_BUCKET_SUFFIX as BOOTSTRAP
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
    buckets: Mapping[str, str] | None  # stack (and "bootstrap") -> bucket name; None: Pulumi Cloud
    location: str
    noncurrent_days: int
    kms_location: str | None  # None: passphrase secrets provider
    writers: Mapping[str, pulumi.Input[str]]  # stack -> its deployer's member
    readers: Mapping[str, Mapping[str, pulumi.Input[str]]]  # stack -> {previewer|planner: member}, read-only
    key_users: tuple[str, ...]  # people who init stacks and run local updates

    @property
    def stacks(self) -> tuple[str, ...]:
        return tuple(self.writers)


class StateBackend(pulumi.ComponentResource):
    urls: dict[str, pulumi.Output[str]]  # stack (and "bootstrap") -> `pulumi login` URL; empty for Pulumi Cloud
    secrets_providers: dict[str, pulumi.Output[str]]  # stack -> gcpkms://... for `pulumi stack init`

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "StateBackend"), name, None, opts)
        self.urls = {stack: pulumi.Output.from_input("") for stack in (*args.stacks, BOOTSTRAP)}
        self.secrets_providers = {}
        for stack, bucket in (args.buckets or {}).items():
            self.urls[stack] = self._bucket(name, stack, bucket, args)
        if args.kms_location is not None:
            self.secrets_providers = self._keys(name, args)
        self.register_outputs({"urls": self.urls, "secretsProviders": self.secrets_providers})

    def _bucket(self, name: str, stack: str, bucket_name: str, args: StateBackendArgs) -> pulumi.Output[str]:
        bucket = gcp.storage.Bucket(
            child(name, f"bucket-{stack}"),
            project=args.project,
            name=bucket_name,
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
        # The bootstrap's own bucket has no CI member at all: only project owners reach it.
        if stack in args.writers:
            gcp.storage.BucketIAMMember(
                child(name, f"bucket-{stack}-deployer"),
                bucket=bucket.name, role=STATE_WRITER_ROLE, member=args.writers[stack], opts=child_opts,
            )
        for role_name, member in _named_readers(args, stack):
            gcp.storage.BucketIAMMember(
                child(name, f"bucket-{stack}-{role_name}"),
                bucket=bucket.name, role=STATE_READER_ROLE, member=member, opts=child_opts,
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
            for role_name, member in _named_readers(args, stack):
                gcp.kms.CryptoKeyIAMMember(
                    child(name, f"key-{stack}-{role_name}"),
                    crypto_key_id=key.id, role=KEY_DECRYPTER_ROLE, member=member, opts=child_opts,
                )
            for member in args.key_users:
                gcp.kms.CryptoKeyIAMMember(
                    child(name, f"key-{stack}-{_member_slug(member)}"),
                    crypto_key_id=key.id, role=KEY_USER_ROLE, member=member, opts=child_opts,
                )
            providers[stack] = key.id.apply(lambda key_id: f"gcpkms://{key_id}")
        return providers


def _named_readers(args: StateBackendArgs, stack: str) -> list[tuple[str, pulumi.Input[str]]]:
    return list(args.readers.get(stack, {}).items())


def _member_slug(member: str) -> str:
    """Stable child name for an IAM member: `group:platform@example.com` -> `group-platform-example-com`."""
    return "".join(c if c.isalnum() else "-" for c in member.lower()).strip("-")
