"""A call lives its whole life: Gemini's clocks, the agent's own limits, model failures, privacy.

Real: livekit-server, the worker (contract command), its job processes, the AgentSession,
livekit-plugins-google 1.8.9, google-genai 3.4.0 and google-auth, an rtc caller that talks in
turns. Imitated at the network boundary only: the Vertex AI Live API (tests/fakes/gemini_live.py)
and the metadata server's token endpoint (tests/fakes/metadata_server.py). Gemini's clocks are
time-scaled (``Behaviour.scale`` emulated seconds per real second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from call_scenarios import (
    GOODBYE_HZ,
    GREETING_HZ,
    REPLY_HZ,
    WARNING_HZ,
    Behaviour,
    apology_heard,
    events,
    rotation_facts,
    run_scenario,
)
from fakes import google_stand_ins
from helpers import participant
from helpers.livekit_server import LiveKitServer, start_livekit_server
from helpers.talking_caller import join_talking_caller
from helpers.worker_process import WorkerProcess, contract_argv, registered_worker, worker_env

pytestmark = pytest.mark.integration

# 10 min connection -> 3 s, 15 min uncompressed limit -> 4.5 s
SCALE = 200.0
LONG_SILENCE = {"AGENT_SILENCE_TIMEOUT_SECONDS": "600"}


def test_call_crosses_connection_rotations_and_the_uncompressed_limit(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """Guards against calls dying at Gemini's 10-minute connection or 15-minute session clock:
    the emulated call lasts 40 minutes (12 s at scale 200), so it crosses at least three GoAway
    rotations and the uncompressed limit; each new connection resumes the same Gemini session
    with what it remembered, and the caller keeps getting answers after every rotation."""
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "rotations",
        behaviour=Behaviour(scale=SCALE),
        env={**LONG_SILENCE, "AGENT_LOG_LEVEL": "DEBUG"},
        hang_up_after=12.0,
    )
    facts = rotation_facts(outcome.live)
    assert facts["sessions"] == 1, facts  # one Gemini session for the whole call
    assert facts["connections"] >= 4 and facts["resumed"] == facts["connections"] - 1, facts
    assert facts["compression_sent"] and facts["terminated"] == [], facts
    # the conversation is intact across rotations: each connection starts with at least what
    # the previous one had, and the model answered on every connection but possibly the last
    history = facts["history_at_open"]
    assert history == sorted(history) and history[-1] > history[1], facts
    assert all(turns > 0 for turns in facts["turns_per_connection"][:-1]), facts
    emulated_minutes = outcome.live.emulated(12.0) / 60
    assert emulated_minutes > 15
    assert outcome.heard(GREETING_HZ) > 0 and outcome.heard(REPLY_HZ) > 0
    assert outcome.ended is not None and outcome.ended["reason"] == "participant_disconnected"
    # privacy at DEBUG without AGENT_LOG_CONVERSATION_TEXT: no conversation field, no reply text
    assert not [line for line in outcome.worker_lines if any(".pii." in k for k in line)]
    assert not [raw for raw in outcome.raw_lines if "I remember" in raw]
    assert any(line.get("conversation_text_removed") for line in outcome.worker_lines)


def test_without_compression_the_stand_in_ends_the_session_at_the_limit(tmp_path: Path) -> None:
    """The stand-in's limit is real (else the test above could not fail): a raw google-genai
    session without contextWindowCompression is closed with 1007 once 15 emulated minutes
    have passed, while GoAway rotations alone do not save it."""
    import asyncio

    from fakes import google_stand_ins
    from google import genai
    from google.genai import errors, types

    async def _session(env: dict[str, str]) -> tuple[int, str]:
        import os

        os.environ.update(env)
        client = genai.Client(vertexai=True, project="voice-agent-test", location="us-central1")
        async with client.aio.live.connect(
            model="gemini-live-2.5-flash-native-audio",
            config=types.LiveConnectConfig(response_modalities=["AUDIO"]),
        ) as session:
            try:
                while True:
                    async for _message in session.receive():
                        pass
            except errors.APIError as exc:
                return exc.code, str(exc)
        return 0, ""

    with google_stand_ins(tmp_path, Behaviour(scale=SCALE, connection_lifetime_s=3600)) as (
        live,
        env,
    ):
        saved = dict(__import__("os").environ)
        try:
            code, _ = asyncio.run(_session(env))
        finally:
            __import__("os").environ.clear()
            __import__("os").environ.update(saved)
        sessions, _connections = live.snapshot()
    assert code == 1007
    assert [s.terminated for s in sessions] == ["uncompressed_limit"]


def test_end_call_tool_plays_the_goodbye_then_deletes_the_room(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """Guards against a silent open line: the model really calls end_call (declared by
    EndCallTool), its goodbye reaches the caller, and only then is the room deleted.
    Also: with AGENT_LOG_CONVERSATION_TEXT=true, text appears at DEBUG and never at INFO+."""
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "end-call",
        behaviour=Behaviour(scale=1.0, end_call_after_turns=2),
        env={**LONG_SILENCE, "AGENT_LOG_LEVEL": "DEBUG", "AGENT_LOG_CONVERSATION_TEXT": "true"},
    )
    sessions, _ = outcome.live.snapshot()
    assert sessions[0].tool_calls == ["end_call"] and len(sessions[0].tool_responses) == 1
    assert outcome.heard(GOODBYE_HZ) > 5
    assert outcome.goodbye_before_room_closed()
    assert outcome.room_deleted()
    assert outcome.ended is not None and outcome.ended["reason"] == "end_call"
    text_lines = [line for line in outcome.worker_lines if any(".pii." in k for k in line)]
    assert text_lines and {line["severity"] for line in text_lines} == {"DEBUG"}


def test_max_call_duration_warns_says_goodbye_and_deletes_the_room(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """maxSessionMinutes enforced by the agent: warning turn before the limit, goodbye heard,
    room deleted, reason max_duration."""
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "max-duration",
        behaviour=Behaviour(scale=1.0),
        env={**LONG_SILENCE, "AGENT_MAX_CALL_SECONDS": "10", "AGENT_CALL_WARNING_SECONDS": "4"},
    )
    warning = events(outcome, "call_limit_warning")
    assert len(warning) == 1 and warning[0]["seconds_left"] == 4
    assert outcome.heard(WARNING_HZ) > 5
    assert outcome.last_heard(WARNING_HZ) < outcome.last_heard(GOODBYE_HZ)  # type: ignore[operator]
    assert outcome.goodbye_before_room_closed() and outcome.room_deleted()
    assert outcome.ended is not None and outcome.ended["reason"] == "max_duration"
    assert 10 <= outcome.ended["duration_seconds"] < 10 + 15


def test_silence_timeout_ends_an_abandoned_call(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "silence",
        behaviour=Behaviour(scale=1.0),
        env={"AGENT_SILENCE_TIMEOUT_SECONDS": "5"},
        talking=False,
    )
    assert outcome.goodbye_before_room_closed() and outcome.room_deleted()
    assert outcome.ended is not None and outcome.ended["reason"] == "silence_timeout"


@pytest.mark.parametrize("failure", ["permission_denied", "not_found", "resource_exhausted"])
def test_model_failure_retries_then_apologises_and_deletes_the_room(
    livekit_server: LiveKitServer, tmp_path: Path, failure: str
) -> None:
    """Connect-time errors (403/404/429) on every attempt: 1 + AGENT_GEMINI_CONNECT_RETRIES
    attempts, then the apology clip (no model needed), the room deleted, model_unavailable."""
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        f"fail-{failure.replace('_', '-')}",
        behaviour=Behaviour(fail_locations={"us-central1": failure}),
        env={**LONG_SILENCE, "AGENT_GEMINI_CONNECT_RETRIES": "1"},
    )
    _, connections = outcome.live.snapshot()
    assert [c.close[1] for c in connections if c.close] == [failure, failure]
    assert apology_heard(outcome) > 5
    assert outcome.room_deleted()
    assert outcome.ended is not None and outcome.ended["reason"] == "model_unavailable"
    assert outcome.ended["model_switches"] == 2


def test_fallback_location_serves_the_call_when_the_primary_has_no_model(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    outcome = run_scenario(
        livekit_server,
        tmp_path,
        "fallback",
        behaviour=Behaviour(fail_locations={"us-central1": "not_found"}),
        env={
            **LONG_SILENCE,
            "AGENT_GEMINI_CONNECT_RETRIES": "0",
            "AGENT_GEMINI_FALLBACK_LOCATION": "europe-west4",
        },
        hang_up_after=5.0,
    )
    _, connections = outcome.live.snapshot()
    assert [c.location for c in connections][:2] == ["us-central1", "europe-west4"]
    assert connections[1].ready_at is not None
    # the greeting was asked of the failed primary and is lost (the adapter re-issues a reply
    # only if the agent was speaking); the caller's next turn is answered by the fallback
    assert outcome.heard(REPLY_HZ) > 0
    assert outcome.ended is not None and outcome.ended["reason"] == "participant_disconnected"
    assert outcome.ended["model_switches"] == 1
    assert json.dumps(outcome.ended)  # serialisable end line


def test_a_room_the_server_did_not_delete_is_logged_as_not_deleted(tmp_path: Path) -> None:
    """Guards against ``room_deleted`` in the log while the room (and a SIP caller on the line)
    lives on: livekit-agents 1.8.9's JobContext.delete_room swallows every error. Real failure:
    the call ends by silence, and this test's own livekit-server is killed (SIGKILL, a crash:
    on SIGTERM it drains and keeps answering the API) while the goodbye plays, so the agent's
    DeleteRoom meets a closed port. The line must say room_delete_failed, with
    the call's end reason and the error, and no room_deleted may appear."""
    server = start_livekit_server(tmp_path / "livekit")  # its own: this test stops it
    try:
        # an 8 s goodbye: the server is gone well before the goodbye ends and the room is
        # deleted (the premise is checked below, not assumed)
        behaviour = Behaviour(scale=1.0, reply_seconds=8.0)
        with google_stand_ins(tmp_path, behaviour) as (_live, google_env):
            env = worker_env(server, fake_gemini=False, extra={
                "HOME": str(tmp_path), "TMPDIR": str(tmp_path), **google_env,
                "AGENT_SILENCE_TIMEOUT_SECONDS": "5",  # the least allowed
            })
            with registered_worker(contract_argv(), env, log_path=tmp_path / "worker.log") as worker:
                before_kill = asyncio.run(_kill_server_when_the_call_ends(server, worker))
                outcome = worker.wait_for(
                    lambda line: line.get("event") in ("room_deleted", "room_delete_failed"),
                    60, "the room deletion's outcome")
                ends = worker.events("session_ended")
    finally:
        server.stop()
    assert not [l for l in before_kill if l.get("event") in ("room_deleted", "room_delete_failed")], \
        "premise broken: the room was deleted before the server was killed"
    assert outcome["event"] == "room_delete_failed", outcome
    assert outcome["reason"] == "silence_timeout" and outcome["severity"] == "WARNING"
    assert outcome["error"], outcome
    assert not worker.events("room_deleted")
    assert [line["reason"] for line in ends] == ["silence_timeout"]


async def _kill_server_when_the_call_ends(server: LiveKitServer, worker: WorkerProcess) -> list[dict]:
    """A silent caller; once the agent says the call is ending, kill the server. Returns the
    worker's lines as they were just before the kill."""
    room = "delete-fails"
    await participant.create_room(server, room)
    caller = await join_talking_caller(server, room, "caller-delete-fails", talking=False)
    try:
        await asyncio.wait_for(caller.agent_joined.wait(), 30)
        await asyncio.to_thread(worker.wait_for_event, "call_ending", 60.0)
        before = list(worker.lines)
        server.process.kill()
        await asyncio.to_thread(server.process.wait)
        return before
    finally:
        # the server is gone: leaving cannot be acknowledged, only attempted
        with contextlib.suppress(Exception):
            await asyncio.wait_for(caller.leave(), 5)
