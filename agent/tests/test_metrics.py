"""Session metrics derived from lifecycle lines; reaping of sessions whose job vanished."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from voice_agent import metrics as m
from voice_agent.metrics import SessionLedger, create_metrics
from voice_agent.session import SessionTracker


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ledger(registry: CollectorRegistry) -> SessionLedger:
    return SessionLedger(create_metrics(registry))


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    # every series carries the release; create_metrics() without one says "unversioned"
    value = registry.get_sample_value(name, {"version": "unversioned", **labels})
    assert value is not None, f"{name}{labels} not exported"
    return value


def test_metric_names_and_help_are_exported(registry: CollectorRegistry) -> None:
    create_metrics(registry)
    text = generate_latest(registry).decode()
    for name in (
        "voice_agent_active_sessions",
        "voice_agent_session_duration_seconds",
        "voice_agent_sessions_ended_total",
        "voice_agent_draining",
    ):
        assert f"# HELP {name} " in text


def test_start_and_end_update_gauge_histogram_and_counter(
    ledger: SessionLedger, registry: CollectorRegistry
) -> None:
    ledger.started("s1", "AJ_1")
    ledger.started("s2", "AJ_2")
    ledger.started("s1", "AJ_1")  # duplicate line (e.g. replayed) counts once
    assert _value(registry, "voice_agent_active_sessions") == 2
    ledger.ended("s1", reason="participant_disconnected", duration=42.0)
    ledger.ended("s1", reason="participant_disconnected", duration=42.0)  # idempotent
    assert _value(registry, "voice_agent_active_sessions") == 1
    assert _value(registry, "voice_agent_session_duration_seconds_count") == 1
    assert _value(registry, "voice_agent_session_duration_seconds_sum") == 42.0
    assert _value(registry, "voice_agent_session_duration_seconds_bucket", le="60.0") == 1
    assert _value(registry, "voice_agent_session_duration_seconds_bucket", le="30.0") == 0
    assert (
        _value(registry, "voice_agent_sessions_ended_total", reason="participant_disconnected") == 1
    )


def test_end_without_start_is_ignored(ledger: SessionLedger, registry: CollectorRegistry) -> None:
    ledger.ended("never-started", reason="error", duration=1.0)
    assert _value(registry, "voice_agent_active_sessions") == 0
    assert _value(registry, "voice_agent_session_duration_seconds_count") == 0


def test_reconcile_reaps_only_after_the_job_is_gone_twice(
    ledger: SessionLedger, registry: CollectorRegistry
) -> None:
    """An OOM-killed job process never logs session_ended; the gauge must not stay up forever,
    but a session_ended line still in flight over IPC must win over the reaper."""
    ledger.started("s1", "AJ_1")
    ledger.started("s2", "AJ_2")
    assert ledger.reconcile(["AJ_1", "AJ_2"]) == []
    assert ledger.reconcile(["AJ_1"]) == []  # first miss: maybe just late
    assert ledger.reconcile(["AJ_1", "AJ_2"]) == []  # back: the miss counter resets
    assert ledger.reconcile(["AJ_1"]) == []
    assert ledger.reconcile(["AJ_1"]) == ["s2"]
    assert _value(registry, "voice_agent_active_sessions") == 1
    assert _value(registry, "voice_agent_sessions_ended_total", reason="job_lost") == 1


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("participant_disconnected", "participant_disconnected"),
        ("error", "error"),
        ("job shutdown: room disconnected", "job_shutdown"),
        ("something a plugin made up", "other"),
    ],
)
def test_reason_labels_stay_bounded(
    ledger: SessionLedger, registry: CollectorRegistry, reason: str, label: str
) -> None:
    ledger.started("s1", "AJ_1")
    ledger.ended("s1", reason=m._reason_label(reason), duration=1.0)
    assert _value(registry, "voice_agent_sessions_ended_total", reason=label) == 1


@pytest.fixture
def lifecycle_into_ledger(ledger: SessionLedger) -> Iterator[SessionLedger]:
    root = logging.getLogger()
    root.addHandler(ledger)
    try:
        yield ledger
    finally:
        root.removeHandler(ledger)


def test_session_tracker_lines_drive_the_ledger(
    lifecycle_into_ledger: SessionLedger, registry: CollectorRegistry
) -> None:
    """The same path as production: job-process lifecycle lines reach the worker's handlers."""
    tracker = SessionTracker(session_id="sess-1", job_id="AJ_9")
    tracker.end("error")  # before begin: nothing to end
    tracker.begin(participants=1)
    assert _value(registry, "voice_agent_active_sessions") == 1
    tracker.end("participant_disconnected")
    tracker.end("job shutdown: room disconnected")  # second end is ignored
    assert _value(registry, "voice_agent_active_sessions") == 0
    assert _value(registry, "voice_agent_session_duration_seconds_count") == 1
    assert (
        _value(registry, "voice_agent_sessions_ended_total", reason="participant_disconnected") == 1
    )
