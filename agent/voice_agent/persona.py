"""The voice persona: short, honest about being an AI, and able to do two real things."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import Agent, RunContext, ToolError, function_tool, llm
from livekit.agents.beta.tools import EndCallTool

logger = logging.getLogger("voice_agent.persona")

INSTRUCTIONS = """\
You are a voice assistant on a phone-style call. You are an AI, and you say so if asked.
Speak in short, plain sentences; this is audio, so no lists, markdown or emoji.
You can tell the caller the current date and time in any time zone (use the current_time
tool; never guess the time), and you can end the call when the caller is done (use end_call).
You cannot look up accounts, orders or personal data and you cannot transfer calls: say so
plainly instead of pretending. If you did not understand, ask the caller to repeat.
When place search tools are offered (find_places, places_nearby), use them to find places for
the caller; if they are missing or a tool says it is unavailable, tell the caller in one
sentence that place search is unavailable right now and carry on."""

GREETING = "Greet the caller in one short sentence and ask how you can help."


class VoiceAssistant(Agent):
    """The agent a caller talks to."""

    def __init__(
        self,
        *,
        on_end_call: Callable[[], None] | None = None,
        remote_tools: Sequence[llm.Toolset] = (),
    ) -> None:
        # remote_tools: MCP tool servers (tools_mcp.py), each with its own identity
        super().__init__(
            instructions=INSTRUCTIONS, tools=[end_call_tool(on_end_call), *remote_tools]
        )

    @function_tool
    async def current_time(self, context: RunContext, timezone: str = "UTC") -> str:
        """Get the current date and time.

        Args:
            timezone: IANA time zone name such as Europe/Paris or America/New_York.
        """
        return current_time_in(timezone)


def end_call_tool(on_end_call: Callable[[], None] | None) -> EndCallTool:
    """livekit-agents 1.8.9 ``beta.tools.EndCallTool``: the tool's output asks the model for a
    goodbye; once that reply has played out (it waits up to 5 s for it to start) the session
    shuts down, the room is deleted (every caller, SIP included, is disconnected) and the job
    ends. Our hook only records why the call ended."""

    async def _called(_event: object) -> None:
        logger.info("the model ended the call", extra={"event": "end_call_requested"})
        if on_end_call is not None:
            on_end_call()

    return EndCallTool(
        delete_room=True,
        end_instructions="Say a short goodbye to the caller.",
        on_tool_called=_called,
    )


def current_time_in(timezone: str) -> str:
    """The current time in an IANA zone, spelled for speech; ToolError tells the model why not."""
    try:
        zone = ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(
            f"Unknown time zone {timezone!r}: ask the caller for a city or an IANA name "
            "such as Europe/London"
        ) from exc
    now = datetime.now(zone)
    return now.strftime(f"%A %d %B %Y, %H:%M ({zone.key}, UTC%z)")
