"""Recovery metrics, kept by the worker process (served with the others on AGENT_METRICS_PORT).

Checkpoints are written in job processes; like the session metrics (metrics.py), their counters
come from the lifecycle lines the framework forwards from each job process to the worker, so a
log line and its metric never disagree. The watcher runs in the worker process and counts
directly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter

RECOVERY_RESULTS = ("dispatched", "abandoned", "lost_race", "skipped_agent_present",
                    "skipped_agent_alive", "failed")


@dataclass(frozen=True)
class RecoveryMetrics:
    checkpoint_unavailable: Counter
    checkpoint_fenced: Counter
    checkpoint_dropped: Counter
    recoveries: Counter
    resumed: Counter


def create_recovery_metrics(registry: CollectorRegistry = REGISTRY) -> RecoveryMetrics:
    return RecoveryMetrics(
        checkpoint_unavailable=Counter(
            "voice_agent_checkpoint_unavailable",
            "Times a call lost its checkpoint because the database was slow or down "
            "(one per call and outage; the call itself goes on).",
            registry=registry,
        ),
        checkpoint_fenced=Counter(
            "voice_agent_checkpoint_fenced",
            "Jobs that found another job owning their room's checkpoint and stopped writing it.",
            registry=registry,
        ),
        checkpoint_dropped=Counter(
            "voice_agent_checkpoints_dropped",
            "Snapshots that could not be stored and were dropped (the call and its lease went "
            "on; the next snapshot replaced it), by reason: not_json, refused, timeout, kms_unreachable, "
            "kms_denied (recovery/envelope.py).",
            ["reason"],
            registry=registry,
        ),
        recoveries=Counter(
            "voice_agent_recoveries",
            "What this worker's watcher did with a call whose agent stopped renewing its lease.",
            ["result"],
            registry=registry,
        ),
        resumed=Counter(
            "voice_agent_sessions_resumed",
            "Calls this worker resumed from a checkpoint.",
            registry=registry,
        ),
    )


_default: RecoveryMetrics | None = None
_lock = threading.Lock()


def default_recovery_metrics() -> RecoveryMetrics:
    global _default
    with _lock:
        if _default is None:
            _default = create_recovery_metrics()
        return _default


class RecoveryLogCounter(logging.Handler):
    """Counts the job processes' recovery lifecycle lines into RecoveryMetrics."""

    def __init__(self, metrics: RecoveryMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event == "checkpoint_unavailable":
            self._metrics.checkpoint_unavailable.inc()
        elif event == "checkpoint_fenced":
            self._metrics.checkpoint_fenced.inc()
        elif event == "checkpoint_dropped":
            self._metrics.checkpoint_dropped.labels(reason=str(getattr(record, "reason", "other"))).inc()
        elif event == "session_resumed":
            self._metrics.resumed.inc()
