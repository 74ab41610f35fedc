"""The SAMPLE persona's own tests (voice_agent/persona.py): its tools, phrases and voice.

A team that replaces the persona changes or drops this file; the platform's tests
(test_persona.py and the rest) do not depend on anything here.
"""

from __future__ import annotations

import asyncio
import re
import typing

import pytest
from livekit.agents import ToolError

from voice_agent.persona import INSTRUCTIONS, SAMPLE, current_time_in
from voice_agent.persona_api import VoiceAssistant
from voice_agent.settings import GEMINI_VOICES, VOICES_FILE


def test_current_time_in_a_real_zone() -> None:
    spoken = current_time_in("Asia/Kolkata")
    assert "(Asia/Kolkata, UTC+0530)" in spoken
    assert re.match(r"^[A-Z][a-z]+day \d{2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} ", spoken)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd"])
def test_unknown_zone_tells_the_model_what_to_ask(zone: str) -> None:
    with pytest.raises(ToolError, match=r"Unknown time zone .*ask the caller for a city"):
        current_time_in(zone)


def test_agent_exposes_its_tools_and_honest_instructions() -> None:
    agent = VoiceAssistant(SAMPLE)
    # EndCallTool (livekit-agents 1.8.9 beta.tools) is a Toolset holding the end_call tool
    tools = [t for item in agent.tools for t in getattr(item, "tools", [item])]
    names = {tool.info.name for tool in tools}
    assert names == {"current_time", "end_call"}
    assert "You are an AI" in INSTRUCTIONS
    assert "cannot look up accounts" in INSTRUCTIONS
    assert SAMPLE.voice == "Puck"


def test_the_current_time_tool_runs() -> None:
    (tool,) = SAMPLE.tools
    assert "(Europe/Paris, UTC+0" in asyncio.run(tool(timezone="Europe/Paris"))


def test_the_voice_list_is_the_installed_plugins() -> None:
    """data/gemini_voices.json is the one home of the list the agent and the stack validate
    against; it must match what livekit-plugins-google declares (realtime/api_proto.py)."""
    import inspect
    import json

    from livekit.plugins.google import realtime
    from livekit.plugins.google.realtime.api_proto import Voice

    assert GEMINI_VOICES == typing.get_args(Voice)
    default = inspect.signature(realtime.RealtimeModel.__init__).parameters["voice"].default
    assert json.loads(VOICES_FILE.read_text())["default"] == default == "Puck"
