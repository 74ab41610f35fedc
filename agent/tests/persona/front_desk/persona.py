"""A front desk that knows its opening hours: another team's persona, with one tool of its own.

This is the shape docs/your-agent.md walks through: a function tool, a Persona that lists it,
a voice of its own. Nothing of the platform's runtime is touched or imported beyond
``voice_agent.persona_api``.
"""

from __future__ import annotations

from livekit.agents import ToolError, function_tool

from voice_agent.persona_api import Persona

HOURS = {
    "monday": "8:00 to 18:00",
    "tuesday": "8:00 to 18:00",
    "wednesday": "8:00 to 18:00",
    "thursday": "8:00 to 20:00",
    "friday": "8:00 to 16:00",
}


@function_tool
async def opening_hours(day: str) -> str:
    """When the front desk is open on a given day.

    Args:
        day: a day of the week in English, such as Monday.
    """
    key = day.strip().lower()
    if key in ("saturday", "sunday"):
        return f"The front desk is closed on {key.title()}."
    if key not in HOURS:
        raise ToolError(f"{day!r} is not a day of the week: ask the caller which day they mean")
    return f"The front desk is open {HOURS[key]} on {key.title()}."


PERSONA = Persona(
    instructions=(
        "You are the front desk of a small clinic, on a phone call. You are an AI and say so if "
        "asked. Answer questions about opening hours with the opening_hours tool; for anything "
        "else, offer to end the call (end_call)."
    ),
    greeting="Greet the caller as the clinic's front desk in one short sentence.",
    tools=(opening_hours,),
    voice="Kore",
    resume="Tell the caller the line dropped for a moment and you are back, in one sentence.",
)
