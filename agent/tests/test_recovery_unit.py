"""Recovery settings, payload and dispatch metadata: pure logic, boundaries included."""

from __future__ import annotations

import pytest

from voice_agent.recovery.config import read_recovery_settings
from voice_agent.recovery.payload import (
    PAYLOAD_VERSION, Checkpoint, UnreadableCheckpoint, read_payload,
)
from voice_agent.recovery.resume import CallRecovery, claim_token_from, recovery_metadata
from voice_agent.settings import SettingsError, load_settings


def parse(**env: str):
    problems: list[str] = []
    return read_recovery_settings(env, problems), problems


def test_recovery_is_off_without_a_database():
    settings, problems = parse()
    assert not problems and not settings.enabled


def test_a_dsn_turns_it_on_and_is_never_shown():
    settings, problems = parse(AGENT_CHECKPOINT_DSN="postgresql://agent@127.0.0.1:5432/voice")
    assert not problems and settings.enabled and "agent@" not in repr(settings)


def test_a_non_postgres_dsn_is_refused_without_echoing_it():
    _, problems = parse(AGENT_CHECKPOINT_DSN="mysql://root:hunter2@db/x")
    assert len(problems) == 1 and "AGENT_CHECKPOINT_DSN" in problems[0] and "hunter2" not in problems[0]


@pytest.mark.parametrize(("value", "ok"), [("1.49", False), ("1.5", True), ("19.99", True), ("120", True), ("120.01", False), ("x", False)])
def test_lease_bounds(value, ok):
    _, problems = parse(AGENT_CHECKPOINT_LEASE_SECONDS=value, AGENT_RECOVERY_CLAIM_SECONDS="600")
    assert (not problems) is ok
    if not ok:
        assert problems[0].startswith(f"AGENT_CHECKPOINT_LEASE_SECONDS={value!r}"[:31]) and "1.5..120" in problems[0]


@pytest.mark.parametrize(("claim", "ok"), [("5.99", False), ("6", False), ("6.01", True)])
def test_claim_must_outlast_the_lease(claim, ok):
    _, problems = parse(AGENT_CHECKPOINT_LEASE_SECONDS="6", AGENT_RECOVERY_CLAIM_SECONDS=claim)
    assert (not problems) is ok


@pytest.mark.parametrize(("value", "ok"), [("59", False), ("60", True), ("2592000", True), ("2592001", False), ("1.5", False)])
def test_retention_bounds(value, ok):
    _, problems = parse(AGENT_CHECKPOINT_RETENTION_SECONDS=value)
    assert (not problems) is ok


def test_watcher_switch():
    assert parse(AGENT_RECOVERY_WATCHER="off")[0].watcher is False
    _, problems = parse(AGENT_RECOVERY_WATCHER="maybe")
    assert "AGENT_RECOVERY_WATCHER='maybe'" in problems[0] and "on, off" in problems[0]


def test_a_bad_recovery_setting_is_reported_with_the_others(valid_env):
    with pytest.raises(SettingsError, match=r"AGENT_RECOVERY_POLL_SECONDS=0 is out of range: allowed 0.2..60"):
        load_settings({**valid_env, "AGENT_RECOVERY_POLL_SECONDS": "0"})


@pytest.mark.parametrize(("age", "fresh"), [(99.0, True), (100.0, False), (101.0, False), (-1.0, False)])
def test_gemini_handle_is_offered_only_while_young(age, fresh):
    checkpoint = Checkpoint(chat_ctx={"items": []}, gemini_handle="h", gemini_handle_at=1000.0)
    assert (checkpoint.handle_if_fresh(100, now=1000.0 + age) == "h") is fresh


def test_a_zero_handle_ttl_always_replays_the_conversation():
    checkpoint = Checkpoint(chat_ctx={"items": []}, gemini_handle="h", gemini_handle_at=1000.0)
    assert checkpoint.handle_if_fresh(0, now=1000.0) is None


def test_payload_round_trip_and_version():
    payload = Checkpoint(chat_ctx={"items": []}, agent="VoiceAssistant", turns=3).to_payload()
    assert payload["v"] == PAYLOAD_VERSION
    assert read_payload(PAYLOAD_VERSION, payload).turns == 3


def test_unusable_payloads_are_refused_clearly():
    with pytest.raises(UnreadableCheckpoint, match="version 0 is older than 1"):
        read_payload(0, {"chat_ctx": {"items": []}})
    with pytest.raises(UnreadableCheckpoint, match="no chat_ctx.items list"):
        read_payload(1, {"turns": 1})


def test_dispatch_metadata_round_trip_and_foreign_metadata():
    assert claim_token_from(recovery_metadata("tok")) == "tok"
    for foreign in (None, "", "plain text", '{"customer": 42}', '["a"]', '{"voice_agent_recovery": {"claim": 5}}'):
        assert claim_token_from(foreign) is None


def test_a_fresh_handle_reaches_the_gemini_model_before_its_session(valid_env):
    """livekit-plugins-google 1.8.9 reads RealtimeModel._opts.session_resumption when a session
    is created; offer_handle writes it there (no public setter). Pinned to the installed plugin."""
    import time

    from livekit.plugins import google

    from voice_agent import model

    settings = load_settings(valid_env)
    realtime = model.build_realtime_model(settings)
    primary = (getattr(realtime, "_models", None) or [realtime])[0]
    assert isinstance(primary, google.realtime.RealtimeModel)
    recovery = CallRecovery(settings.recovery, writer=None, room="r", job_id="j")  # type: ignore[arg-type]
    recovery.resumed = Checkpoint(chat_ctx={"items": []}, gemini_handle="h-1", gemini_handle_at=time.time())
    assert recovery.offer_handle(realtime) is True
    assert primary._opts.session_resumption.handle == "h-1"
    recovery.resumed = Checkpoint(chat_ctx={"items": []}, gemini_handle="h-2", gemini_handle_at=time.time() - 3 * 3600)
    fresh_model = model.build_realtime_model(settings)
    assert recovery.offer_handle(fresh_model) is False
