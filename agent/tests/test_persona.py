"""The persona is honest and its tools do real work."""

from __future__ import annotations

import re

import pytest
from livekit.agents import ToolError

from voice_agent.persona import INSTRUCTIONS, VoiceAssistant, current_time_in


def test_current_time_in_a_real_zone() -> None:
    spoken = current_time_in("Asia/Kolkata")
    assert "(Asia/Kolkata, UTC+0530)" in spoken
    assert re.match(r"^[A-Z][a-z]+day \d{2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} ", spoken)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd"])
def test_unknown_zone_tells_the_model_what_to_ask(zone: str) -> None:
    with pytest.raises(ToolError, match=r"Unknown time zone .*ask the caller for a city"):
        current_time_in(zone)


def test_agent_exposes_its_tools_and_honest_instructions() -> None:
    agent = VoiceAssistant()
    # EndCallTool (livekit-agents 1.8.9 beta.tools) is a Toolset holding the end_call tool
    tools = [t for item in agent.tools for t in getattr(item, "tools", [item])]
    names = {tool.info.name for tool in tools}
    assert names == {"current_time", "end_call"}
    assert "You are an AI" in INSTRUCTIONS
    assert "cannot look up accounts" in INSTRUCTIONS
