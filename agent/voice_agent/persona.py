"""The sample persona: short, honest about being an AI, and able to do two real things.

The platform's runtime loads it through AGENT_PERSONA (default ``voice_agent.persona:SAMPLE``,
persona_api.py); a team brings its own persona in its own package and leaves this one alone
(docs/your-agent.md). ``end_call`` is the platform's tool (added to every persona); the
instructions only tell the model when to use it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import ToolError, function_tool

from .persona_api import Persona

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


@function_tool
async def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time.

    Args:
        timezone: IANA time zone name such as Europe/Paris or America/New_York.
    """
    return current_time_in(timezone)


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


SAMPLE = Persona(
    instructions=INSTRUCTIONS,
    greeting=GREETING,
    tools=(current_time,),
    # the plugin's own default (livekit-plugins-google 1.8.9 RealtimeModel(voice="Puck")), named
    # here so the sample's voice is a reviewed choice
    voice="Puck",
)
