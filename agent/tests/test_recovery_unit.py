"""Recovery settings, payload and dispatch metadata: pure logic, boundaries included."""

from __future__ import annotations

import asyncio

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


KMS_KEY = "projects/gva-fixture-dev/locations/europe-west1/keyRings/voice-agent/cryptoKeys/checkpoints"


def test_a_dsn_turns_it_on_and_is_never_shown():
    settings, problems = parse(AGENT_CHECKPOINT_DSN="postgresql://agent@127.0.0.1:5432/voice",
                               AGENT_RECOVERY_KMS_KEY=KMS_KEY)
    assert not problems and settings.enabled and "agent@" not in repr(settings)
    assert settings.kms_key == KMS_KEY


def test_recovery_without_a_kms_key_is_refused_naming_the_variable(valid_env):
    """Checkpoints hold the conversation: a stack that forgot the key must not store plaintext."""
    with pytest.raises(SettingsError, match=r"AGENT_RECOVERY_KMS_KEY='' is not a Cloud KMS key: allowed projects/PROJECT"):
        load_settings({**valid_env, "AGENT_CHECKPOINT_DSN": "postgresql://agent@127.0.0.1:5432/voice"})


def test_plaintext_is_an_explicit_choice():
    settings, problems = parse(AGENT_CHECKPOINT_DSN="postgresql://agent@127.0.0.1:5432/voice",
                               AGENT_RECOVERY_KMS_KEY="none")
    assert not problems and settings.enabled and settings.kms_key == ""


@pytest.mark.parametrize(("key_id", "ok"), [("k" * 62, True), ("k" * 63, True), ("k" * 64, False),
                                            ("", False), ("bad/slash", False)])
def test_kms_key_id_bounds(key_id, ok, valid_env):
    """Cloud KMS key ids are 1 to 63 characters of [a-zA-Z0-9_-]."""
    env = {**valid_env, "AGENT_CHECKPOINT_DSN": "postgresql://a@h/x",
           "AGENT_RECOVERY_KMS_KEY": KMS_KEY.rsplit("/", 1)[0] + "/" + key_id}
    if ok:
        assert load_settings(env).recovery.kms_key == env["AGENT_RECOVERY_KMS_KEY"]
    else:
        with pytest.raises(SettingsError, match="AGENT_RECOVERY_KMS_KEY=.* is not a Cloud KMS key"):
            load_settings(env)


def test_a_kms_key_without_recovery_is_still_checked(valid_env):
    with pytest.raises(SettingsError, match="AGENT_RECOVERY_KMS_KEY='my-key' is not a Cloud KMS key"):
        load_settings({**valid_env, "AGENT_RECOVERY_KMS_KEY": "my-key"})


@pytest.mark.parametrize(("value", "ok"), [("http://127.0.0.1:8443", True), ("https://kms.example", True),
                                           ("ftp://x", False), ("http://x/path", False)])
def test_kms_endpoint_override(value, ok, valid_env):
    env = {**valid_env, "AGENT_RECOVERY_KMS_ENDPOINT": value}
    if ok:
        assert load_settings(env).recovery.kms_endpoint == value
    else:
        with pytest.raises(SettingsError, match="AGENT_RECOVERY_KMS_ENDPOINT=.* is not an endpoint: allowed http"):
            load_settings(env)


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


# Measured by agent/bench/recovery.py's per-trial phases (docs/recovery.md, Measured): from
# the lease's end to the replacement's first audio (poll wait aside) about 0.9 s on a prewarmed
# pod. Issue 25's target: the caller hears the replacement within 3 s of a SIGKILL (p50).
AFTER_LEASE_SECONDS = 0.9
RECOVERY_TARGET_SECONDS = 3.0


def test_the_default_lease_and_poll_leave_room_for_the_resume_within_the_target():
    from voice_agent.env_declarations import default_of

    lease = default_of("AGENT_CHECKPOINT_LEASE_SECONDS")
    poll = default_of("AGENT_RECOVERY_POLL_SECONDS")
    # a SIGKILL at any moment between two renewals (every lease/3) leaves on average the lease
    # less half a renewal period to run out; the watcher's next look comes half a poll later
    assert lease - lease / 6 + poll / 2 + AFTER_LEASE_SECONDS <= RECOVERY_TARGET_SECONDS
    # the shorter lease keeps three renewals per lease (two may be lost) and the tests' own
    # lease, at which every eviction and fault scenario runs, is not longer than it
    settings, problems = parse()
    assert not problems and settings.heartbeat_seconds == pytest.approx(lease / 3)
    from recovery_pods import TEST_RECOVERY_ENV

    assert float(TEST_RECOVERY_ENV["AGENT_CHECKPOINT_LEASE_SECONDS"]) <= lease


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


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("7199", True), ("7200", True), ("7201", False), ("-1", False)])
def test_a_handle_is_never_trusted_longer_than_gemini_keeps_it(value, ok):
    """The Gemini API documents handles as valid 2 hours after the session ended: a longer
    setting (86400 was allowed) would offer handles Gemini refuses."""
    settings, problems = parse(AGENT_GEMINI_HANDLE_TTL_SECONDS=value)
    assert (not problems) is ok
    if ok:
        assert settings.handle_ttl_seconds == int(value)
    else:
        assert problems[0].startswith(f"AGENT_GEMINI_HANDLE_TTL_SECONDS={value} is out of range") and "0..7200" in problems[0]


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


def test_a_handle_reaches_the_first_gemini_instance_through_the_public_constructor(valid_env):
    """livekit-plugins-google 1.8.9 RealtimeModel(session_resumption=SessionResumptionConfig(
    handle=...)) is the public way in; a handle names one session of one model in one place, so
    the retries and the fallback get none (they replay the conversation)."""
    from livekit.plugins import google

    from voice_agent import model

    settings = load_settings({**valid_env, "AGENT_GEMINI_CONNECT_RETRIES": "1"})
    realtime = model.build_realtime_model(settings, resume_handle="h-1")
    instances = getattr(realtime, "_models", None) or [realtime]
    assert len(instances) == 2 and all(isinstance(m, google.realtime.RealtimeModel) for m in instances)
    assert [m._opts.session_resumption.handle for m in instances] == ["h-1", None]
    fresh = model.build_realtime_model(settings)
    assert [m._opts.session_resumption.handle for m in fresh._models] == [None, None]


def test_the_plugin_still_keeps_what_a_handle_covers():
    """What a handle covers is read from the plugin's _resumption_chat_ctx (no public accessor in
    livekit-plugins-google 1.8.9); this fails when an upgrade drops it, and then no handle is
    ever offered (the conversation is replayed), which is safe but slower."""
    import inspect

    from livekit.plugins.google.realtime import realtime_api

    source = inspect.getsource(realtime_api.RealtimeSession)
    assert "self._resumption_chat_ctx = llm.ChatContext(" in source
    assert "def session_resumption_handle(self)" in source


def test_the_checkpoint_reads_the_handle_through_the_fallback_adapter(valid_env):
    """With the default AGENT_GEMINI_CONNECT_RETRIES (2) model.py hands the agent livekit-agents
    1.8.9 RealtimeModelFallbackAdapter, whose session exposes no session_resumption_handle: read
    on that session, every checkpoint stored gemini_handle None (issue 25). The handle must be
    read on the plugin session behind it (here the one a resumed job holds from the public
    constructor; tests/test_recovery_faults.py covers handles Gemini issues mid-call)."""
    import asyncio
    import types

    from livekit.plugins.google.realtime import realtime_api

    from voice_agent import model
    from voice_agent.recovery.config import RecoverySettings
    from voice_agent.recovery.resume import gemini_session

    async def read():
        realtime = model.build_realtime_model(load_settings(valid_env), resume_handle="h-1")
        assert len(realtime._models) == 3  # 1 + the default two retries
        session = realtime.session()
        try:
            recovery = CallRecovery(RecoverySettings(dsn="postgresql://x@127.0.0.1/x"),
                                    writer=None, room="r", job_id="j")  # type: ignore[arg-type]
            agent = types.SimpleNamespace(realtime_llm_session=session)
            return gemini_session(session), recovery._gemini_handle(agent)
        finally:
            await session.aclose()

    child, (handle, read_at, covered) = asyncio.run(read())
    assert isinstance(child, realtime_api.RealtimeSession)
    assert handle == "h-1" and read_at is not None
    assert covered is None  # Gemini has not issued a handle in this session yet: never offered


def _resumed(handle_at_age: float, covered: list[str] | None, items=("m1", "m2")):
    import time

    recovery = CallRecovery(load_settings_for_handles(), writer=None, room="r", job_id="j")  # type: ignore[arg-type]
    recovery.resumed = Checkpoint(
        chat_ctx={"items": [{"id": i, "type": "message", "role": "user", "content": ["x"]} for i in items]},
        gemini_handle="h", gemini_handle_at=time.time() - handle_at_age, gemini_handle_items=covered)
    return recovery


def load_settings_for_handles():
    from voice_agent.recovery.config import RecoverySettings

    return RecoverySettings(dsn="postgresql://x@127.0.0.1/x", handle_ttl_seconds=100)


@pytest.mark.parametrize(("age", "covered", "offered"), [
    (1.0, ["m1", "m2"], True),
    (1.0, ["m0", "m1", "m2"], True),
    (1.0, ["m1"], False),  # m2 came after the handle: Gemini would not know it, replay instead
    (1.0, None, False),  # a version-1 row: nothing says what the handle covers
    (150.0, ["m1", "m2"], False),  # too old
])
def test_a_handle_is_offered_only_when_it_holds_the_whole_stored_conversation(age, covered, offered):
    assert (_resumed(age, covered).model_handle() == "h") is offered


# ---------------------------------------------------------------- when a row is kept
@pytest.mark.parametrize(("reason", "caller_present", "kept"), [
    ("participant_disconnected", True, False),
    ("user_initiated", True, False),
    ("task_completed", True, False),
    ("error", True, False),  # the model failed: call_life.py apologised and ended the call
    ("job_shutdown", True, True),  # e.g. a drain cut short: the caller is still there
    ("job_shutdown", False, False),  # CONNECTION_TIMEOUT: the caller dropped off, the room closed
    (None, True, True),  # no close seen (the job is ending under the session)
    (None, False, False),
])
def test_a_row_is_kept_only_for_a_caller_left_behind(reason, caller_present, kept):
    from voice_agent.recovery.resume import keep_after

    assert keep_after(reason, caller_present) is kept


def test_callers_are_what_the_framework_counts():
    """livekit-agents 1.8.9 job.py DEFAULT_PARTICIPANT_KINDS: standard, SIP, connector. An egress
    recording the room, an ingress or another agent is nobody to come back for."""
    from livekit.protocol import models

    from voice_agent.recovery.watcher import caller_participants

    info = models.ParticipantInfo
    people = [info(identity=kind, kind=getattr(info, kind))
              for kind in ("STANDARD", "INGRESS", "EGRESS", "SIP", "AGENT", "CONNECTOR", "BRIDGE")]
    assert [p.identity for p in caller_participants(people)] == ["STANDARD", "SIP", "CONNECTOR"]


# ---------------------------------------------------------------- the same call, or another
def _orphan(**fields):
    from voice_agent.recovery import store

    base = {"room": "r", "agent_identity": "agent-1", "agent_name": "", "room_sid": "RM_a",
            "callers": (store.caller_hash("RM_a", "caller-1"),), "created_at": 1000.0}
    return store.Orphan(**{**base, **fields})


def _room(sid="RM_a", created_ms=999_000):
    from livekit.protocol import models

    return models.Room(sid=sid, name="r", creation_time=created_ms // 1000, creation_time_ms=created_ms)


def _callers(*identities):
    from livekit.protocol import models

    return [models.ParticipantInfo(identity=i, kind=models.ParticipantInfo.STANDARD) for i in identities]


@pytest.mark.parametrize(("orphan", "room", "callers", "same"), [
    (_orphan(), _room(), _callers("caller-1"), True),
    (_orphan(), _room(sid="RM_b"), _callers("caller-1"), False),  # the name reused by a new room
    (_orphan(), _room(), _callers("caller-2"), False),  # same room, another caller
    (_orphan(), _room(), _callers("caller-2", "caller-1"), True),
    (_orphan(callers=()), _room(), _callers("anyone"), True),  # died before a caller was seen
    # a previous release's row (no SID): the room must be older than the row
    (_orphan(room_sid="", callers=()), _room(created_ms=999_999), _callers("x"), True),
    (_orphan(room_sid="", callers=()), _room(created_ms=1_000_000), _callers("x"), True),
    (_orphan(room_sid="", callers=()), _room(created_ms=1_000_001), _callers("x"), False),
])
def test_a_watcher_resumes_only_the_same_call(orphan, room, callers, same):
    from voice_agent.recovery.watcher import RecoveryWatcher

    assert RecoveryWatcher._same_call(orphan, room, callers) is same


# ---------------------------------------------------------------- what a snapshot becomes
def test_a_snapshot_that_is_not_json_is_refused_clearly():
    from voice_agent.recovery.payload import UnstorableCheckpoint, encode

    with pytest.raises(UnstorableCheckpoint, match="TypeError: Object of type object is not JSON serializable"):
        encode(Checkpoint(chat_ctx={"items": [{"x": object()}]}))
    with pytest.raises(UnstorableCheckpoint, match="ValueError: Out of range float values"):
        encode(Checkpoint(chat_ctx={"items": []}, gemini_handle_at=float("nan")))


def test_encoding_with_the_item_cache_equals_the_frameworks_dict():
    """Only new items are encoded after the first snapshot; the result is what
    ChatContext.to_dict gives (metrics left out: a resume does not need them)."""
    import json

    from livekit.agents import llm

    from voice_agent.recovery.payload import ItemCache, encode

    ctx = llm.ChatContext.empty()
    cache = ItemCache()
    for turn in range(3):
        ctx.add_message(role="user", content=f"question {turn}")
        ctx.add_message(role="assistant", content=f"answer {turn}")
        text = encode(Checkpoint(chat_ctx=ctx.copy(), gemini_handle='{"items":"@"}', turns=turn), cache)
        decoded = json.loads(text)
        assert decoded["chat_ctx"] == ctx.to_dict(exclude_timestamp=False, exclude_metrics=True)
        assert decoded["gemini_handle"] == '{"items":"@"}' and decoded["turns"] == turn
    assert len(llm.ChatContext.from_dict(decoded["chat_ctx"]).items) == 6


@pytest.mark.parametrize(("value", "ok"), [("127999", True), ("128000", True), ("128001", False), ("131072", False)])
def test_the_compression_trigger_stays_within_the_model_cards_input_tokens(valid_env, value, ok):
    """gemini-live-2.5-flash-native-audio: at most 128,000 input tokens (Vertex AI model card);
    131072 (128 * 1024) used to be allowed."""
    env = {**valid_env, "AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS": value}
    if ok:
        assert load_settings(env).compression_trigger_tokens == int(value)
    else:
        with pytest.raises(SettingsError, match=rf"AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS={value} .*128000"):
            load_settings(env)


def test_a_checkpoint_holds_what_a_resume_needs_and_nothing_more():
    """Minimal data (issue 25): userdata and the agent's class name are never restored, so they
    are not stored; the stored keys are exactly what resume.py reads."""
    import dataclasses
    import json

    from voice_agent.recovery.payload import STORED_FIELDS, encode

    @dataclasses.dataclass
    class Order:
        phone: str = "+15550100"

    checkpoint = Checkpoint(chat_ctx={"items": []}, agent="VoiceAssistant", userdata=Order(),
                            gemini_handle="h", gemini_handle_at=1.0, gemini_handle_items=[], turns=2)
    for payload in (checkpoint.to_payload(), json.loads(encode(checkpoint))):
        assert set(payload) == {*STORED_FIELDS, "v"}
        assert "+15550100" not in json.dumps(payload) and "VoiceAssistant" not in json.dumps(payload)
    restored = read_payload(PAYLOAD_VERSION, json.loads(encode(checkpoint)))
    assert (restored.turns, restored.gemini_handle, restored.userdata, restored.agent) == (2, "h", None, "")


class _Job:
    """RunningJobInfo's shape as the hook reads it (livekit-agents 1.8.9: info.job.id,
    info.job.room.name)."""

    def __init__(self, room: str, job_id: str) -> None:
        from types import SimpleNamespace

        self.job = SimpleNamespace(id=job_id, room=SimpleNamespace(name=room))


class _Executor:
    """A JobExecutor as ipc/job_proc_executor.py 1.8.9 exposes it: ``running_job`` (None for
    an idle prewarmed process) and ``exitcode`` (None until the OS process was joined)."""

    def __init__(self, running_job, exitcode) -> None:
        self.running_job = running_job
        self.exitcode = exitcode


class _ThreadExecutor:
    """ipc/job_thread_executor.py 1.8.9: a job in a thread of the worker has no exit code."""

    def __init__(self, running_job) -> None:
        self.running_job = running_job


class _Watcher:
    def __init__(self) -> None:
        self.exited: list[tuple[str, str]] = []

    async def job_exited(self, room: str, job_id: str) -> bool:
        self.exited.append((room, job_id))
        return True


@pytest.mark.parametrize(("executor", "ended"), [
    (_Executor(_Job("r", "job-1"), None), False),  # not joined: the process may be alive
    (_Executor(_Job("r", "job-1"), 0), True),      # exited (a normal end keeps no row: no-op)
    (_Executor(_Job("r", "job-1"), -9), True),     # SIGKILLed
    (_Executor(_Job("r", "job-1"), 1), True),
    (_Executor(None, -9), False),                  # an idle prewarmed process: no call
    (_ThreadExecutor(_Job("r", "job-1")), False),  # no exit code at all: never taken for dead
])
def test_only_a_job_process_known_to_have_exited_has_its_lease_ended(executor, ended, valid_env):
    from voice_agent.recovery.wiring import RecoveryRuntime

    settings = load_settings({**valid_env, "AGENT_CHECKPOINT_DSN": "postgresql://db/x",
                              "AGENT_RECOVERY_KMS_KEY": "none"})
    runtime = RecoveryRuntime(settings)
    watcher = _Watcher()
    runtime._watcher = watcher

    async def closed() -> None:
        runtime.on_process_closed(executor)
        await asyncio.sleep(0)
        await asyncio.gather(*runtime._exits)

    asyncio.run(closed())
    assert watcher.exited == ([("r", "job-1")] if ended else [])


def test_the_framework_still_names_the_event_the_hook_listens_to():
    """livekit-agents 1.8.9's ProcPool emits process_closed after joining a job process."""
    import typing

    from livekit.agents.ipc import proc_pool

    assert "process_closed" in typing.get_args(proc_pool.EventTypes)
