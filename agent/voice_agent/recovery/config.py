"""Crash-recovery settings: one frozen dataclass; its variables are declared in env_declarations.py.

Kept beside the recovery code and free of livekit/asyncpg imports: ``settings.load_settings``
calls ``read_recovery_settings`` so a bad value is reported with every other setting problem,
before the framework is imported (exit 2, one line per problem, no traceback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..env_declarations import KMS_KEY_ALLOWED, VARIABLES, default_of, landed, read_variables

# Each variable's default, range and why: env_declarations.py (group "crash recovery").
_DECLARED = tuple(v for v in VARIABLES if v.group == "crash recovery")


@dataclass(frozen=True)
class RecoverySettings:
    """Checkpoints in PostgreSQL and re-dispatch of calls whose agent died (docs/recovery.md).
    The DSN may hold a user name: never shown. Empty DSN = recovery off."""

    dsn: str = field(default="", repr=False)
    lease_seconds: float = default_of("AGENT_CHECKPOINT_LEASE_SECONDS")
    poll_seconds: float = default_of("AGENT_RECOVERY_POLL_SECONDS")
    claim_seconds: float = default_of("AGENT_RECOVERY_CLAIM_SECONDS")
    retention_seconds: int = default_of("AGENT_CHECKPOINT_RETENTION_SECONDS")
    handle_ttl_seconds: int = default_of("AGENT_GEMINI_HANDLE_TTL_SECONDS")
    db_timeout_seconds: float = default_of("AGENT_CHECKPOINT_DB_TIMEOUT_SECONDS")
    watcher: bool = default_of("AGENT_RECOVERY_WATCHER") == "on"
    kms_key: str = ""
    """projects/*/locations/*/keyRings/*/cryptoKeys/* sealing each checkpoint; "" = plaintext rows."""
    kms_endpoint: str = default_of("AGENT_RECOVERY_KMS_ENDPOINT")

    @property
    def enabled(self) -> bool:
        return bool(self.dsn)

    @property
    def heartbeat_seconds(self) -> float:
        return self.lease_seconds / 3

    def public_fields(self) -> dict[str, object]:
        return {
            "recovery_enabled": self.enabled,
            "recovery_watcher": self.watcher and self.enabled,
            "checkpoint_lease_seconds": self.lease_seconds,
            "recovery_poll_seconds": self.poll_seconds,
            "checkpoint_retention_seconds": self.retention_seconds,
        }



def read_recovery_settings(env: Mapping[str, str], problems: list[str]) -> RecoverySettings:
    """Parse the recovery variables; append one line per bad value to ``problems`` (a bad
    value leaves its default, so the rest can still be checked)."""
    values = read_variables(env, problems, _DECLARED)
    claim, lease = values["AGENT_RECOVERY_CLAIM_SECONDS"], values["AGENT_CHECKPOINT_LEASE_SECONDS"]
    if claim is not None and lease is not None and claim <= lease:
        problems.append(
            f"AGENT_RECOVERY_CLAIM_SECONDS={claim:g} must be greater than "
            f"AGENT_CHECKPOINT_LEASE_SECONDS={lease:g}: a replacement job renews the lease it takes "
            "over, so a claim shorter than a lease could expire before the replacement is seen alive"
        )
    if values["AGENT_CHECKPOINT_DSN"] and not (env.get("AGENT_RECOVERY_KMS_KEY") or "").strip():
        # a stack that forgot the key fails at start instead of storing conversations in the clear
        problems.append(f"AGENT_RECOVERY_KMS_KEY='' is not a Cloud KMS key: {KMS_KEY_ALLOWED}")
    return RecoverySettings(**landed(values, _DECLARED, "recovery"))
