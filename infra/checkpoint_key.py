"""CheckpointKey: the Cloud KMS key that wraps each call's checkpoint data key, and the agent's
right to use it (docs/recovery.md, agent/voice_agent/recovery/envelope.py).

The agent seals every checkpoint with a per-call AES-256-GCM data key and stores that data key
only wrapped by this key. The one grant on it is roles/cloudkms.cryptoKeyEncrypterDecrypter to
the agent's own Workload Identity principal: the database's own service account (which the
Auth Proxy impersonates), a database dump, a backup or a point-in-time restore hold ciphertext
that nobody else can open, and every unwrap is in the key's audit log.

Present whenever crash recovery is (recoveryEnabled), dev included: the conversation is never
stored in the clear by a deployed stack. Destroying the stack schedules the key's versions for
destruction (``DESTROY_SCHEDULED_DURATION``); once destroyed, every copy of every checkpoint
(rows, backups, PITR logs) is unreadable. The key ring itself can never be deleted (Cloud KMS
"Resource lifecycle"): it stays, free, under its random suffix, and a recreated stack makes a
new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.encryption import KEY_USER_ROLE, ROTATION_PERIOD
from infra.names import child, name_part, type_token

KEY_NAME = "checkpoints"
# How long a destroyed key version waits before it is gone (Cloud KMS allows 1 to 120 days,
# default 30: cloud.google.com/kms/docs/key-states "Scheduled for destruction"). A checkpoint
# row lives minutes (AGENT_CHECKPOINT_RETENTION_SECONDS), so there is nothing worth a month of
# undo; one day still lets an operator who destroyed the wrong stack restore the versions.
DESTROY_SCHEDULED_DURATION = f"{1 * 86_400}s"
# Key ring ids are at most 63 characters; "gva-ckpt-<stack>-<4 hex>".
_RING_STACK_CHARS = 63 - len("gva-ckpt--abcd")


@dataclass(frozen=True)
class CheckpointKeyArgs:
    """`agent_principal`: AgentIdentity.principal, the only member of the key's one grant."""

    project: str
    region: str  # beside the database and the agents that use it
    stack: str
    agent_principal: pulumi.Input[str]


class CheckpointKey(pulumi.ComponentResource):
    # projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/checkpoints; resolves only once
    # the agent's grant exists, so pods naming it start with the right to use it.
    key_id: pulumi.Output[str]

    def __init__(self, name: str, args: CheckpointKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "CheckpointKey"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        # Key rings can never be deleted: a destroyed and recreated stack needs a new name.
        suffix = random.RandomId(child(name, "suffix"), byte_length=2, opts=child_opts)
        ring = gcp.kms.KeyRing(
            child(name, "ring"), project=args.project, location=args.region,
            name=suffix.hex.apply(lambda h: f"gva-ckpt-{name_part(args.stack, _RING_STACK_CHARS)}-{h}"),
            opts=child_opts)
        key = gcp.kms.CryptoKey(
            child(name, "key"), key_ring=ring.id, name=KEY_NAME, purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD, destroy_scheduled_duration=DESTROY_SCHEDULED_DURATION,
            opts=child_opts)
        grant = gcp.kms.CryptoKeyIAMMember(
            child(name, "agent"), crypto_key_id=key.id, role=KEY_USER_ROLE, member=args.agent_principal,
            opts=child_opts)
        self.key_id = pulumi.Output.all(key.id, grant.id).apply(lambda ids: ids[0])
        self.register_outputs({"keyId": self.key_id})
