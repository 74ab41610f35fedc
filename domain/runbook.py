"""Seed 001's runbook as PromQL: the one home of every expression the dashboard, the alert
policies and the rollout check use. Standard library only, so both virtual environments import
it (the infra side for infra/monitoring.py, the agent side for the tests that run every
expression against a real Prometheus scraping real agent processes).

The series come from the agent's metrics server (agent/voice_agent/metrics.py, readiness.py),
scraped by Managed Prometheus through the workload's PodMonitoring: our own carry the release
as ``version`` (AGENT_VERSION, the pod's app.kubernetes.io/version); the framework's
``lk_agents_worker_load`` does not, so it is joined to ours on the scrape target
(``instance``, ``job``), the labels every scrape of one pod shares.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rates and increases look back this far on the dashboard and in alerts: a few scrape intervals
# of the PodMonitoring's 30 s, so one missed scrape does not blank a panel.
WINDOW = "5m"
TARGET = "instance, job"
# Close reasons that mean the caller was cut off rather than hung up (metrics.END_REASONS).
BAD_END_REASONS = ("job_lost", "error")
# p95 time to first audio above this pages (stack setting latencyAlertP95Seconds). 2 s is an
# edge of the histogram's buckets (agent/voice_agent/metrics.py TIME_TO_FIRST_AUDIO_BUCKETS), so
# histogram_quantile is exact there; past ~2 s callers start talking over the silence.
DEFAULT_LATENCY_ALERT_P95_SECONDS = 2.0
LATENCY_ALERT_P95_RANGE = (0.5, 8.0)  # the histogram's resolved range (its bucket edges)
# The rollout check fails a new release whose p95 is this much worse than the old one's AND
# above the alert threshold: a slower release that still answers in time is not a regression
# worth rolling back.
LATENCY_REGRESSION_FACTOR = 1.2


def _matcher(**labels: str) -> str:
    if not labels:
        return ""
    parts = []
    for name, value in labels.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{name}="{escaped}"')
    return "{" + ", ".join(parts) + "}"


# --- what the dashboard shows -----------------------------------------------------------------


def active_sessions_by_version() -> str:
    return "sum by (version) (voice_agent_active_sessions)"


def new_sessions_by_version(window: str = WINDOW) -> str:
    return f"sum by (version) (increase(voice_agent_sessions_started_total[{window}]))"


def worker_load_vs_threshold() -> str:
    """Per pod: load / its own AGENT_LOAD_THRESHOLD; 1 or more = reports itself full."""
    return (f"max by (version, instance) (lk_agents_worker_load / on ({TARGET}) group_left (version) "
            "voice_agent_load_threshold)")


def full_pods_by_version() -> str:
    return (f"count by (version) (lk_agents_worker_load / on ({TARGET}) group_left (version) "
            "voice_agent_load_threshold >= 1)")


def registered_workers_by_version() -> str:
    return "sum by (version) (voice_agent_registered)"


def draining_workers_by_version() -> str:
    return "sum by (version) (voice_agent_draining)"


def drain_events(event: str, window: str = WINDOW) -> str:
    """started, finished or timed_out (agent/voice_agent/worker.py drain())."""
    return f"sum by (version) (increase(voice_agent_drain_events_total{_matcher(event=event)}[{window}]))"


def sessions_cut_by_reason(window: str = WINDOW) -> str:
    reasons = "|".join(BAD_END_REASONS)
    return (f'sum by (version, reason) (increase(voice_agent_sessions_ended_total{{reason=~"{reasons}"}}'
            f"[{window}]))")


def time_to_first_audio_by_version(quantile: float, window: str = WINDOW) -> str:
    """p50 / p95 of the time to the first audio of a reply, per release."""
    return (f"histogram_quantile({quantile:g}, sum by (version, le) "
            f"(rate(voice_agent_time_to_first_audio_seconds_bucket[{window}])))")


def model_tokens_by_version(window: str = WINDOW) -> str:
    return f"sum by (version, direction, modality) (increase(voice_agent_model_tokens_total[{window}]))"


# --- what pages someone -----------------------------------------------------------------------


def no_worker_registered() -> str:
    """No pod can take a call: none registered with LiveKit (or none scraped at all)."""
    return "(sum(voice_agent_registered) or vector(0)) < 1"


def every_pod_full() -> str:
    """Every registered pod reports itself full: new rooms wait (or, on self-hosted LiveKit, get
    no agent at all: it dispatches a room once)."""
    return (f"count(lk_agents_worker_load / on ({TARGET}) group_left voice_agent_load_threshold >= 1) "
            ">= sum(voice_agent_registered)")


def drain_timed_out(window: str = WINDOW) -> str:
    return f"sum(increase(voice_agent_drain_events_total{{event=\"timed_out\"}}[{window}])) > 0"


def sessions_cut(window: str = WINDOW) -> str:
    reasons = "|".join(BAD_END_REASONS)
    return f'sum(increase(voice_agent_sessions_ended_total{{reason=~"{reasons}"}}[{window}])) > 0'


def slow_answers(threshold_seconds: float = DEFAULT_LATENCY_ALERT_P95_SECONDS, window: str = WINDOW) -> str:
    """A release whose p95 time to first audio is above the threshold (strictly)."""
    return f"{time_to_first_audio_by_version(0.95, window)} > {threshold_seconds:g}"


# --- the rollout check (seed 001's three questions) -------------------------------------------


def new_sessions_on(version: str, window: str) -> str:
    return f"sum(increase(voice_agent_sessions_started_total{_matcher(version=version)}[{window}])) or vector(0)"


def accepting_instances_of(version: str) -> str:
    """Instances of ``version`` that are registered and not draining: they can still be offered
    calls. After a complete rollout there is none of the old release."""
    return (f"count(voice_agent_registered{_matcher(version=version)} == 1 "
            f"unless on ({TARGET}) voice_agent_draining == 1) or vector(0)")


def sessions_started_while_draining(version: str, window: str) -> str:
    """Sessions that instances of ``version`` started while they drained for the whole window."""
    m = _matcher(version=version)
    return (f"sum(increase(voice_agent_sessions_started_total{m}[{window}]) "
            f"and on ({TARGET}) (min_over_time(voice_agent_draining{m}[{window}]) == 1)) or vector(0)")


def active_sessions_of(version: str) -> str:
    return f"sum(voice_agent_active_sessions{_matcher(version=version)}) or vector(0)"


def drain_timeouts_of(version: str, window: str) -> str:
    m = _matcher(version=version, event="timed_out")
    return f"sum(increase(voice_agent_drain_events_total{m}[{window}])) or vector(0)"


def p95_time_to_first_audio_of(version: str, window: str) -> str:
    """No "or vector(0)": no answer at all (no reply in the window) is not a fast answer."""
    return (f"histogram_quantile(0.95, sum by (le) "
            f"(rate(voice_agent_time_to_first_audio_seconds_bucket{_matcher(version=version)}[{window}])))")


@dataclass(frozen=True)
class Panel:
    title: str
    query: str
    unit: str = ""


@dataclass(frozen=True)
class Alert:
    key: str
    title: str
    query: str
    # how long the condition must hold before the policy fires
    duration: str
    severity: str
    doc: str


def dashboard_panels() -> list[Panel]:
    return [
        Panel("Active sessions by version", active_sessions_by_version()),
        Panel(f"New sessions by version ({WINDOW})", new_sessions_by_version()),
        Panel("Worker load / load threshold (1 = full)", worker_load_vs_threshold()),
        Panel("Full pods by version", full_pods_by_version()),
        Panel("Registered workers by version", registered_workers_by_version()),
        Panel("Draining workers by version", draining_workers_by_version()),
        Panel(f"Drains started ({WINDOW})", drain_events("started")),
        Panel(f"Drains finished ({WINDOW})", drain_events("finished")),
        Panel(f"Drains timed out ({WINDOW})", drain_events("timed_out")),
        Panel(f"Sessions lost or ended in error ({WINDOW})", sessions_cut_by_reason()),
        Panel(f"Time to first audio p50 by version ({WINDOW})", time_to_first_audio_by_version(0.5), "s"),
        Panel(f"Time to first audio p95 by version ({WINDOW})", time_to_first_audio_by_version(0.95), "s"),
        Panel(f"Model tokens by version, direction, modality ({WINDOW})", model_tokens_by_version()),
    ]


def alert_rules(latency_p95_seconds: float = DEFAULT_LATENCY_ALERT_P95_SECONDS) -> list[Alert]:
    return [
        Alert("no-worker-registered", "No voice agent registered with LiveKit", no_worker_registered(), "120s",
              "CRITICAL", "No pod can take a call. Check the LiveKit secret and URL, the pods' /ready answer "
              "and the model_unreachable / 'failed to connect to livekit' log lines."),
        Alert("every-pod-full", "Every voice agent pod reports itself full", every_pod_full(), "300s",
              "WARNING", "New rooms wait for capacity (self-hosted LiveKit never re-offers them). Check the "
              "HPA, spare capacity and the load threshold against the server's agents.target_load."),
        Alert("drain-timed-out", "A drain timed out with calls running", drain_timed_out(), "0s",
              "WARNING", "A pod's drain ended with calls still up: those calls were cut. Calls longer than "
              "AGENT_DRAIN_TIMEOUT_SECONDS, or a node upgrade / autoscaler cap, are the usual causes."),
        Alert("sessions-cut", "Voice sessions lost or ended in error", sessions_cut(), "0s",
              "WARNING", "A job process vanished (OOM kill?) or the model failed. Look for session_lost and "
              "session_ended reason=error lines by version."),
        Alert("slow-answers", f"Voice agent p95 time to first audio above {latency_p95_seconds:g} s",
              slow_answers(latency_p95_seconds), "300s", "WARNING",
              "Callers wait too long for the agent to start speaking. Compare versions on the latency panel "
              "(a new release?), then the model: Gemini region, model_availability_changed lines, quota."),
    ]
