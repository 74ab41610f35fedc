"""Crash-recovery settings: one frozen dataclass, every field naming its environment variable.

Kept beside the recovery code and free of livekit/asyncpg imports: ``settings.load_settings``
calls ``read_recovery_settings`` so a bad value is reported with every other setting problem,
before the framework is imported (exit 2, one line per problem, no traceback).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Recovery is off unless a database is configured: an agent without PostgreSQL runs as before.
DSN_ENV = "AGENT_CHECKPOINT_DSN"
# The lease a job renews while it is alive. Detection of a dead job takes up to one lease plus
# one watcher poll, so the lease is the main term of "seconds, not the call" (target: the caller
# hears the replacement within 5 s; re-dispatch, job start and first audio take about 0.7 s
# more, measured by agent/bench/recovery.py). A renewal every lease/3 survives two lost
# renewals before a live call looks dead; one UPDATE per call per second is cheap for Cloud SQL.
DEFAULT_LEASE_SECONDS = 3.0
LEASE_RANGE = (1.5, 120.0)
DEFAULT_POLL_SECONDS = 0.5
POLL_RANGE = (0.2, 60.0)
# How long a claim (one watcher's right to re-dispatch a room) lasts before another may retry:
# long enough for a dispatch to reach a prewarmed job process and the job to take the room over.
DEFAULT_CLAIM_SECONDS = 20.0
CLAIM_RANGE = (2.0, 600.0)
# How long the row of a call whose agent died (and that nobody resumed) is kept; a live job
# touches its row every heartbeat, so only dead calls age. A caller waits seconds for a
# replacement, and a call gets at most store.MAX_RECOVERIES_PER_CALL (5) re-dispatches of at
# most AGENT_RECOVERY_CLAIM_SECONDS (20 s) each: 15 minutes covers that several times over and
# keeps a conversation no longer than it can still be resumed.
DEFAULT_RETENTION_SECONDS = 15 * 60
RETENTION_RANGE = (60, 30 * 24 * 3600)
# Gemini's session resumption handle: the Gemini API documents handles as valid for 2 hours
# after the session ended (ai.google.dev, Live API session management); older ones are not
# offered, and the stored conversation is replayed instead.
DEFAULT_HANDLE_TTL_SECONDS = 2 * 3600
HANDLE_TTL_RANGE = (0, 24 * 3600)
# One statement (connect included) may take this long before the write is given up for now.
DEFAULT_DB_TIMEOUT_SECONDS = 2.0
DB_TIMEOUT_RANGE = (0.1, 30.0)
WATCHER_CHOICES = ("on", "off")
# The Cloud KMS key that wraps each call's checkpoint data key (recovery/envelope.py). Required
# whenever recovery is on: a stack that forgot it fails at start instead of storing plaintext.
# PLAINTEXT is the one explicit way out, for a laptop or a test without Google credentials; the
# stack never renders it (k8s/ passes the key its infra created).
KMS_KEY_ENV = "AGENT_RECOVERY_KMS_KEY"
PLAINTEXT = "none"
# projects/*/locations/*/keyRings/*/cryptoKeys/* (Cloud KMS resource names: key ring and key ids
# are 1-63 of [a-zA-Z0-9_-], docs cloud.google.com/kms/docs/resource-hierarchy)
KMS_KEY_PATTERN = re.compile(
    r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z0-9-]{1,63}"
    r"/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}")
# TEST ONLY: where the Cloud KMS REST API is (the tests' stand-in on loopback).
KMS_ENDPOINT_ENV = "AGENT_RECOVERY_KMS_ENDPOINT"
DEFAULT_KMS_ENDPOINT = "https://cloudkms.googleapis.com"


@dataclass(frozen=True)
class RecoverySettings:
    """Checkpoints in PostgreSQL and re-dispatch of calls whose agent died (docs/recovery.md)."""

    dsn: str = field(default="", repr=False)
    """AGENT_CHECKPOINT_DSN: postgresql:// URL of the checkpoint database; empty = recovery off.
    In GKE it points at the Cloud SQL Auth Proxy sidecar on 127.0.0.1 (may hold a user name;
    never logged)."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """AGENT_CHECKPOINT_LEASE_SECONDS: a job not heard from for this long is presumed dead."""
    poll_seconds: float = DEFAULT_POLL_SECONDS
    """AGENT_RECOVERY_POLL_SECONDS: how often each worker's watcher looks for dead calls."""
    claim_seconds: float = DEFAULT_CLAIM_SECONDS
    """AGENT_RECOVERY_CLAIM_SECONDS: a re-dispatch not taken over within this may be retried."""
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    """AGENT_CHECKPOINT_RETENTION_SECONDS: the row of a call whose agent died is deleted after
    this (the sweep runs in every worker, watcher on or off)."""
    handle_ttl_seconds: int = DEFAULT_HANDLE_TTL_SECONDS
    """AGENT_GEMINI_HANDLE_TTL_SECONDS: a Gemini resumption handle older than this is not used."""
    db_timeout_seconds: float = DEFAULT_DB_TIMEOUT_SECONDS
    """AGENT_CHECKPOINT_DB_TIMEOUT_SECONDS: per connect / statement; slower = no checkpoint now."""
    watcher: bool = True
    """AGENT_RECOVERY_WATCHER: on (self-hosted LiveKit) or off (LiveKit Cloud restarts jobs)."""
    kms_key: str = ""
    """AGENT_RECOVERY_KMS_KEY: projects/*/locations/*/keyRings/*/cryptoKeys/* wrapping each call's
    checkpoint key; required with recovery on ("none" = plaintext rows, local use only)."""
    kms_endpoint: str = DEFAULT_KMS_ENDPOINT
    """AGENT_RECOVERY_KMS_ENDPOINT: the Cloud KMS REST endpoint (tests point it at a stand-in)."""

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
    """Parse the recovery variables; append one line per bad value to ``problems``."""
    reader = _Reader(env, problems)
    dsn = (env.get(DSN_ENV) or "").strip()
    if dsn and not dsn.startswith(("postgresql://", "postgres://")):
        problems.append(
            f"{DSN_ENV} (value hidden) is not a PostgreSQL URL: use "
            "postgresql://USER@HOST:PORT/DATABASE (in GKE the Cloud SQL Auth Proxy on 127.0.0.1), "
            "or leave it empty to turn crash recovery off"
        )
        dsn = ""
    lease = reader.number("AGENT_CHECKPOINT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, LEASE_RANGE,
                          "seconds without a renewal after which a call's agent is presumed dead")
    claim = reader.number("AGENT_RECOVERY_CLAIM_SECONDS", DEFAULT_CLAIM_SECONDS, CLAIM_RANGE,
                          "seconds a re-dispatch may take before another worker retries it")
    values = RecoverySettings(
        dsn=dsn,
        lease_seconds=lease,
        poll_seconds=reader.number("AGENT_RECOVERY_POLL_SECONDS", DEFAULT_POLL_SECONDS, POLL_RANGE,
                                   "seconds between two looks for dead calls"),
        claim_seconds=claim,
        retention_seconds=int(reader.number(
            "AGENT_CHECKPOINT_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS, RETENTION_RANGE,
            "seconds an abandoned call's checkpoint is kept", integer=True)),
        handle_ttl_seconds=int(reader.number(
            "AGENT_GEMINI_HANDLE_TTL_SECONDS", DEFAULT_HANDLE_TTL_SECONDS, HANDLE_TTL_RANGE,
            "seconds a Gemini resumption handle is trusted; 0 = always replay the conversation",
            integer=True)),
        db_timeout_seconds=reader.number(
            "AGENT_CHECKPOINT_DB_TIMEOUT_SECONDS", DEFAULT_DB_TIMEOUT_SECONDS, DB_TIMEOUT_RANGE,
            "seconds one database connect or statement may take"),
        watcher=reader.choice("AGENT_RECOVERY_WATCHER", "on", WATCHER_CHOICES) == "on",
        kms_key=_kms_key(env, dsn, problems),
        kms_endpoint=_kms_endpoint(env, problems),
    )
    if claim <= lease:
        problems.append(
            f"AGENT_RECOVERY_CLAIM_SECONDS={claim:g} must be greater than "
            f"AGENT_CHECKPOINT_LEASE_SECONDS={lease:g}: a replacement job renews the lease it takes "
            "over, so a claim shorter than a lease could expire before the replacement is seen alive"
        )
    return values


def _kms_key(env: Mapping[str, str], dsn: str, problems: list[str]) -> str:
    raw = (env.get(KMS_KEY_ENV) or "").strip()
    if raw == PLAINTEXT:
        return ""
    if KMS_KEY_PATTERN.fullmatch(raw):
        return raw
    if raw or dsn:
        problems.append(
            f"{KMS_KEY_ENV}={raw!r} is not a Cloud KMS key: allowed "
            "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY (required with "
            f"{DSN_ENV} set: checkpoints hold the conversation), or {PLAINTEXT!r} for plaintext "
            "rows outside GCP")
    return ""


def _kms_endpoint(env: Mapping[str, str], problems: list[str]) -> str:
    raw = (env.get(KMS_ENDPOINT_ENV) or "").strip().rstrip("/")
    if not raw:
        return DEFAULT_KMS_ENDPOINT
    if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+", raw):
        problems.append(f"{KMS_ENDPOINT_ENV}={raw!r} is not an endpoint: allowed http(s)://HOST[:PORT]")
        return DEFAULT_KMS_ENDPOINT
    return raw


class _Reader:
    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self._env, self._problems = env, problems

    def number(self, name: str, default: float, bounds: tuple[float, float], what: str,
               *, integer: bool = False) -> float:
        raw = (self._env.get(name) or "").strip()
        if not raw:
            return default
        low, high = bounds
        kind = "an integer" if integer else "a number"
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            self._problems.append(f"{name}={raw!r} is not {kind}: allowed {low:g}..{high:g} ({what})")
            return default
        if not math.isfinite(value) or not low <= value <= high:
            self._problems.append(f"{name}={raw} is out of range: allowed {low:g}..{high:g} ({what})")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = (self._env.get(name) or "").strip().lower()
        if not raw:
            return default
        if raw not in allowed:
            self._problems.append(
                f"{name}={raw!r} is invalid: allowed {', '.join(allowed)} "
                "(off on LiveKit Cloud, which restarts jobs itself)"
            )
            return default
        return raw
