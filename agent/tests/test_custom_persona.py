"""A team's own persona, with a tool of its own, runs a real call without touching the runtime.

Real parts: livekit-server, the agent worker started by the contract command, an rtc caller,
the Gemini plugin + google-genai + google-auth against the Live API stand-in
(tests/fakes/gemini_live.py) and the metadata server. The persona is a package outside the
agent (tests/persona/front_desk), reached through PYTHONPATH and AGENT_PERSONA exactly as a
package copied into the image next to voice_agent would be (docs/your-agent.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import PROJECT
from fakes.asking_gemini import AskingGemini, talk_until_tool_answered
from fakes.metadata_server import MetadataServer
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import contract_argv, registered_worker, worker_env

pytestmark = pytest.mark.integration

PERSONAS = Path(__file__).resolve().parent / "persona"
FRONT_DESK = "front_desk.persona:PERSONA"
ASK = {"name": "opening_hours", "args": {"day": "Thursday"}}


@dataclass
class Call:
    lines: list[dict[str, Any]]
    setups: list[dict[str, Any]]
    declared: set[str]
    tool_responses: list[dict[str, Any]]
    model_heard: list[str]
    heard_reply_after_tool: bool


def place_call(server: LiveKitServer, workdir: Path, room: str, extra_env: dict[str, str]) -> Call:
    metadata = MetadataServer(project=PROJECT).start()
    live = AskingGemini(workdir, ASK).start(token=metadata.token)
    try:
        env = worker_env(server, fake_gemini=False, extra={
            "HOME": str(workdir), "TMPDIR": str(workdir),
            **metadata.env(), **live.env(), "GOOGLE_CLOUD_PROJECT": PROJECT,
            # the team's package next to voice_agent, as `COPY front_desk /app/front_desk` would
            "PYTHONPATH": str(PERSONAS),
            "AGENT_PERSONA": FRONT_DESK,
            **extra_env,
        })
        with registered_worker(contract_argv(), env, log_path=workdir / f"{room}-worker.log") as worker:
            heard = asyncio.run(talk_until_tool_answered(server, room, live))
            lines = list(worker.lines)
        sessions, connections = live.snapshot()
        with live.lock:
            setups = list(live.setups)
        return Call(
            lines=lines, setups=setups,
            declared={t for c in connections for t in c.tools},
            tool_responses=[r for s in sessions for r in s.tool_responses],
            model_heard=[t.text for s in sessions for t in s.history],
            heard_reply_after_tool=heard,
        )
    finally:
        live.stop()
        metadata.stop()


def _values(tree: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON tree (google-genai's setup nests them)."""
    if isinstance(tree, dict):
        return [v for k, value in tree.items() for v in ([value] if k == key else []) + _values(value, key)]
    if isinstance(tree, list):
        return [v for item in tree for v in _values(item, key)]
    return []


def _voices(setups: list[dict[str, Any]]) -> list[str]:
    # google-genai 3.4.0 spells this one in its proto name (voice_name); the proto3 JSON mapping
    # accepts either spelling (https://protobuf.dev/programming-guides/json/), so read both
    return _values(setups, "voiceName") + _values(setups, "voice_name")


@pytest.fixture(scope="module")
def front_desk_call(livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Call]:
    yield place_call(livekit_server, tmp_path_factory.mktemp("persona"), "front-desk", {})


def test_the_teams_persona_is_what_the_model_is_given(front_desk_call: Call) -> None:
    call = front_desk_call
    # its own tool and the platform's end_call; none of the sample's
    assert call.declared == {"opening_hours", "end_call"}, call.declared
    assert _voices(call.setups) == ["Kore"], _voices(call.setups)
    instructions = json.dumps(_values(call.setups, "systemInstruction"))
    assert "front desk of a small clinic" in instructions and "current_time" not in instructions
    assert any("Greet the caller as the clinic's front desk" in text for text in call.model_heard)
    (starting,) = [line for line in call.lines if line.get("event") == "worker_starting"]
    assert (starting["persona"], starting["voice"]) == (FRONT_DESK, "")


def test_the_model_calls_the_teams_tool_and_the_caller_hears_the_answer(front_desk_call: Call) -> None:
    call = front_desk_call
    assert len(call.tool_responses) == 1, call.tool_responses
    spoken = json.dumps(call.tool_responses[0])
    assert "The front desk is open 8:00 to 20:00 on Thursday." in spoken, spoken
    assert call.heard_reply_after_tool


def test_agent_voice_overrides_the_personas_voice(livekit_server: LiveKitServer, tmp_path: Path) -> None:
    call = place_call(livekit_server, tmp_path, "front-desk-charon", {"AGENT_VOICE": "Charon"})
    assert _voices(call.setups) == ["Charon"], _voices(call.setups)
    assert call.tool_responses  # the same persona, tool and all
