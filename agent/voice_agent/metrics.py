"""Our Prometheus metrics, served next to the framework's lk_agents_* on AGENT_METRICS_PORT.

Every metric lives in the worker process's default registry, which livekit-agents serves on
its Prometheus port. Sessions, however, run in job processes. Rather than Prometheus
multiprocess mode (one set of mmap files per job process, growing with every job until the
pod restarts), the session metrics are derived from the session lifecycle lines: the
framework forwards each job process's log records to the worker process over its IPC
channel, where ``SessionLedger`` (a logging handler) counts them. Logs and metrics can then
never disagree. A job process that dies without saying goodbye (OOM kill) is reaped by
``SessionLedger.reconcile`` once the framework no longer lists its job as active.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Bucket edges mark the clocks that matter for this workload: 10 min (cluster-autoscaler
# scale-down honours at most 10 min of grace on Autopilot), 1 h (livekit-agents 1.8.9 default
# drain_timeout and the node-upgrade grace cap).
SESSION_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# A session whose job vanished is reaped only after it was missing on this many consecutive
# reconcile passes, so a session_ended line still in flight over IPC wins the race.
MISSING_PASSES_BEFORE_REAP = 2
# Time to first audio of a reply. A reply inside ~1 s reads as a natural turn on the phone;
# past ~2 s callers start repeating themselves, so the edges are dense below 2 s and the top
# edges catch a model that stalls (the latency alert's threshold sits on one of these edges:
# domain/runbook.py reads this histogram, so keep its default threshold a bucket edge).
TIME_TO_FIRST_AUDIO_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0)
TOKEN_DIRECTIONS = ("input", "output")
TOKEN_MODALITIES = ("audio", "text", "image")
# call_usage.py: a caller's turn, or a reply the agent asked for (greeting, warnings)
TTFA_TRIGGERS = ("caller", "requested")


# Every series of ours carries the release (AGENT_VERSION), so "by version" is one PromQL
# aggregation during a rollout, when two releases serve side by side (seed 001's runbook).
VERSION_LABEL = "version"


@dataclass(frozen=True)
class AgentMetrics:
    active_sessions: Gauge
    session_duration: Histogram
    sessions_ended: Counter
    draining: Gauge
    sessions_started: Counter
    registered: Gauge
    load_threshold: Gauge
    drain_events: Counter
    time_to_first_audio: Histogram
    model_tokens: Counter
    responses_interrupted: Counter
    version: str = "unversioned"


def create_metrics(registry: CollectorRegistry = REGISTRY, *, version: str = "unversioned") -> AgentMetrics:
    """Register our metrics once per process (tests pass their own registry)."""
    label = [VERSION_LABEL]
    return AgentMetrics(
        active_sessions=Gauge(
            "voice_agent_active_sessions",
            "Voice sessions running on this worker (started and not yet ended).",
            label,
            registry=registry,
        ).labels(version),
        session_duration=Histogram(
            "voice_agent_session_duration_seconds",
            "Duration of ended voice sessions, from session start to session close.",
            label,
            buckets=SESSION_DURATION_BUCKETS,
            registry=registry,
        ).labels(version),
        sessions_ended=Counter(
            "voice_agent_sessions_ended",
            "Ended voice sessions by close reason.",
            [VERSION_LABEL, "reason"],
            registry=registry,
        ),
        draining=Gauge(
            "voice_agent_draining",
            "1 while the worker drains after SIGTERM (takes no new jobs), else 0.",
            label,
            registry=registry,
        ).labels(version),
        sessions_started=Counter(
            "voice_agent_sessions_started",
            "Voice sessions started on this worker (new sessions by version during a rollout).",
            label,
            registry=registry,
        ).labels(version),
        registered=Gauge(
            "voice_agent_registered",
            "1 while the worker is registered with LiveKit (can be offered jobs), else 0.",
            label,
            registry=registry,
        ).labels(version),
        load_threshold=Gauge(
            "voice_agent_load_threshold",
            "AGENT_LOAD_THRESHOLD: the lk_agents_worker_load at which this worker reports full.",
            label,
            registry=registry,
        ).labels(version),
        drain_events=Counter(
            "voice_agent_drain_events",
            "Drain milestones: started (SIGTERM), finished (no session left), timed_out.",
            [VERSION_LABEL, "event"],
            registry=registry,
        ),
        time_to_first_audio=Histogram(
            "voice_agent_time_to_first_audio_seconds",
            "Time from the caller's end of speech (trigger=caller) or the agent's request "
            "(trigger=requested) to the reply's first audio frame.",
            [VERSION_LABEL, "trigger"],
            buckets=TIME_TO_FIRST_AUDIO_BUCKETS,
            registry=registry,
        ),
        model_tokens=Counter(
            "voice_agent_model_tokens",
            "Model tokens by direction (input/output) and modality (audio/text/image), as the "
            "Live API's usageMetadata reports them per response.",
            [VERSION_LABEL, "direction", "modality"],
            registry=registry,
        ),
        responses_interrupted=Counter(
            "voice_agent_responses_interrupted",
            "Model responses the caller cut off before they finished playing.",
            label,
            registry=registry,
        ).labels(version),
        version=version,
    )


_default_metrics: AgentMetrics | None = None
_default_lock = threading.Lock()


DRAIN_EVENTS = ("started", "finished", "timed_out")


def _initialise_children(metrics: AgentMetrics) -> None:
    """Export every labelled series at 0 from the start: increase() needs a sample before the
    first event, or a first drain (a counter born at 1) reads as no drain at all."""
    for event in DRAIN_EVENTS:
        metrics.drain_events.labels(metrics.version, event)
    for reason in (*END_REASONS, "other"):
        metrics.sessions_ended.labels(metrics.version, reason)
    for direction in TOKEN_DIRECTIONS:
        for modality in TOKEN_MODALITIES:
            metrics.model_tokens.labels(metrics.version, direction, modality)
    # a histogram born at its first observation has nothing to rate() against: the first slow
    # answer would read as no answer at all
    for trigger in TTFA_TRIGGERS:
        metrics.time_to_first_audio.labels(metrics.version, trigger)


def default_metrics(version: str = "unversioned") -> AgentMetrics:
    global _default_metrics
    with _default_lock:
        if _default_metrics is None:
            _default_metrics = create_metrics(version=version)
            _initialise_children(_default_metrics)
        return _default_metrics


@dataclass
class _OpenSession:
    job_id: str
    started_at: float
    missing_passes: int = 0


class SessionLedger(logging.Handler):
    """Turns session_started / session_ended lifecycle records into the session metrics."""

    def __init__(self, metrics: AgentMetrics) -> None:
        super().__init__()
        self._metrics = metrics
        self._open: dict[str, _OpenSession] = {}
        self._ledger_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        session_id = getattr(record, "session_id", None)
        if not session_id:
            return
        if event == "session_started":
            self.started(str(session_id), str(getattr(record, "job_id", "")))
        elif event == "model_usage":
            self.model_usage(record)
        elif event == "turn_answered":
            self.turn_answered(record)
        elif event == "response_interrupted":
            self._metrics.responses_interrupted.inc()
        elif event == "session_ended":
            self.ended(
                str(session_id),
                reason=_reason_label(getattr(record, "reason", "unknown")),
                duration=float(getattr(record, "duration_seconds", 0.0)),
            )

    def started(self, session_id: str, job_id: str) -> None:
        with self._ledger_lock:
            if session_id in self._open:
                return
            self._open[session_id] = _OpenSession(job_id=job_id, started_at=time.monotonic())
            self._metrics.active_sessions.inc()
            self._metrics.sessions_started.inc()

    def ended(self, session_id: str, *, reason: str, duration: float) -> None:
        with self._ledger_lock:
            if self._open.pop(session_id, None) is None:
                return
            self._record_end(reason, duration)

    def model_usage(self, record: logging.LogRecord) -> None:
        for direction in TOKEN_DIRECTIONS:
            for modality in TOKEN_MODALITIES:
                count = getattr(record, f"{direction}_{modality}_tokens", 0)
                if isinstance(count, int) and count > 0:
                    self._metrics.model_tokens.labels(self._metrics.version, direction, modality).inc(count)

    def turn_answered(self, record: logging.LogRecord) -> None:
        seconds = getattr(record, "time_to_first_audio_seconds", None)
        trigger = getattr(record, "trigger", None)
        if not isinstance(seconds, int | float) or trigger not in TTFA_TRIGGERS:
            return
        self._metrics.time_to_first_audio.labels(self._metrics.version, trigger).observe(max(float(seconds), 0.0))

    def reconcile(self, active_job_ids: Iterable[str]) -> list[str]:
        """Reap sessions whose job the framework no longer runs; returns reaped session ids."""
        active = set(active_job_ids)
        reaped: list[str] = []
        now = time.monotonic()
        with self._ledger_lock:
            for session_id, open_session in list(self._open.items()):
                if open_session.job_id in active:
                    open_session.missing_passes = 0
                    continue
                open_session.missing_passes += 1
                if open_session.missing_passes >= MISSING_PASSES_BEFORE_REAP:
                    del self._open[session_id]
                    self._record_end("job_lost", now - open_session.started_at)
                    reaped.append(session_id)
        return reaped

    @property
    def open_sessions(self) -> int:
        with self._ledger_lock:
            return len(self._open)

    def _record_end(self, reason: str, duration: float) -> None:
        self._metrics.active_sessions.dec()
        self._metrics.session_duration.observe(max(duration, 0.0))
        self._metrics.sessions_ended.labels(self._metrics.version, reason).inc()


# Close reasons of livekit-agents 1.8.9 (voice.events.CloseReason) plus ours; anything else is
# "other", so a free-text reason can never explode the label's cardinality.
END_REASONS = frozenset(
    {
        "error",
        "job_shutdown",
        "participant_disconnected",
        "user_initiated",
        "task_completed",
        "job_lost",
        # call_life.py: the agent ended the call
        "end_call",
        "max_duration",
        "silence_timeout",
        "model_unavailable",
    }
)


def _reason_label(reason: object) -> str:
    text = str(reason)
    if text.startswith("job shutdown"):
        return "job_shutdown"
    return text if text in END_REASONS else "other"
