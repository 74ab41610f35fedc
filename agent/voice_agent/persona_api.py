"""The seam between the platform's runtime and a persona (docs/your-agent.md).

The runtime (worker lifecycle, readiness, metrics, logs, checkpoints, recovery, model
resilience, call life) is the same for every team. A persona is what a caller meets: its
instructions, the opening line, the line after a crash recovery, its function tools and its
voice. The runtime loads one persona per worker from ``AGENT_PERSONA=module:attribute``
(default: the sample, ``voice_agent.persona:SAMPLE``); a team adds its own package to the image
and points the setting at it, without touching any runtime module.

Tools the runtime adds to every persona, so a persona must not define them:
- ``end_call`` (livekit-agents 1.8.9 ``beta.tools.EndCallTool``), wired to call life
  (call_life.py: the goodbye, the room deleted, the ``end_call`` end reason);
- the remote MCP tools of AGENT_TOOL_SERVERS (tools_mcp.py), each server with its own identity.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, llm
from livekit.agents.beta.tools import EndCallTool

from .settings import DEFAULT_PERSONA, GEMINI_VOICES

logger = logging.getLogger("voice_agent.persona")

# Names of the tools the runtime adds itself (see the module docstring).
PLATFORM_TOOL_NAMES = frozenset({"end_call"})


class PersonaError(ValueError):
    """AGENT_PERSONA names nothing usable; the message names the setting, the value and the fix."""


@dataclass(frozen=True)
class Persona:
    """What a caller meets. Instances are built once per process, at import of their module."""

    instructions: str
    """The system instructions Gemini gets for the whole call."""
    greeting: str
    """Instructions for the opening line, e.g. "Greet the caller in one short sentence"."""
    tools: Sequence[Any] = ()
    """Function tools (``livekit.agents.function_tool``) and toolsets (``llm.Toolset``)."""
    voice: str = ""
    """A Gemini Live prebuilt voice (data/gemini_voices.json); empty = the plugin's default.
    AGENT_VOICE, when set, overrides it for the whole deployment."""
    resume: str = ""
    """Instructions for the first line after a crash recovery; empty = the platform's own
    "I'm back" line (recovery/resume.py RESUME_INSTRUCTIONS)."""

    def __post_init__(self) -> None:
        problems = persona_problems(self)
        if problems:
            raise PersonaError("; ".join(problems))

    def tool_names(self) -> list[str]:
        return [name for tool in self.tools for name in _names(tool)]


def persona_problems(persona: Persona) -> list[str]:
    """Everything wrong with a persona, one sentence each (empty when it is usable)."""
    problems = []
    if not persona.instructions.strip():
        problems.append("instructions are empty: Gemini needs to know who it is")
    if not persona.greeting.strip():
        problems.append("greeting is empty: the caller would hear nothing until they speak")
    if persona.voice and persona.voice not in GEMINI_VOICES:
        problems.append(
            f"voice {persona.voice!r} is not a Gemini Live voice: allowed "
            f"{', '.join(GEMINI_VOICES)} (agent/voice_agent/data/gemini_voices.json)"
        )
    for tool in persona.tools:
        if not isinstance(tool, (llm.Tool, llm.Toolset)):
            problems.append(
                f"tool {tool!r} is a {type(tool).__name__}, not a function tool: decorate it "
                "with livekit.agents.function_tool"
            )
    names = persona.tool_names() if not problems else []
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"tool {name!r} is defined twice: each tool name must be unique")
    for name in sorted(PLATFORM_TOOL_NAMES.intersection(names)):
        problems.append(f"tool {name!r} is the platform's own (added to every persona): rename yours")
    return problems


def load_persona(spec: str = DEFAULT_PERSONA) -> Persona:
    """Import ``module:attribute`` and return the Persona it names, or raise PersonaError."""
    module_name, _, attribute = spec.partition(":")
    where = f"AGENT_PERSONA={spec!r}"
    try:
        module = importlib.import_module(module_name)
    except PersonaError as exc:
        raise PersonaError(f"{where}: the persona in {module_name} is invalid: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise PersonaError(
                f"{where}: no module named {exc.name!r} in the image: add your package to "
                "the image next to voice_agent (docs/your-agent.md) or fix the name"
            ) from None
        raise PersonaError(
            f"{where}: importing {module_name} needs {exc.name!r}, which is not installed: add it "
            "to agent/requirements.txt"
        ) from None
    except Exception as exc:  # the team's module failed at import: say which and why, no traceback
        raise PersonaError(f"{where}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attribute):
        raise PersonaError(f"{where}: module {module_name} has no attribute {attribute!r}")
    persona = getattr(module, attribute)
    if not isinstance(persona, Persona):
        raise PersonaError(
            f"{where}: {module_name}.{attribute} is a {type(persona).__name__}, not a "
            "voice_agent.persona_api.Persona"
        )
    return persona


def voice_for(persona: Persona, configured: str) -> str:
    """AGENT_VOICE wins; else the persona's voice; else "" (the plugin's default)."""
    return configured or persona.voice


def opening(persona: Persona, recovery: Any) -> str:
    """What the agent says first: the greeting, or after a recovery the persona's resume line
    (the platform's own when the persona has none)."""
    if persona.resume and getattr(recovery, "resumed", None) is not None:
        return persona.resume
    return recovery.opening(persona.greeting)


class VoiceAssistant(Agent):
    """The agent a caller talks to: a persona plus the platform's tools. The class name is
    what checkpoints record as the agent (recovery/payload.py), whatever the persona."""

    def __init__(
        self,
        persona: Persona,
        *,
        on_end_call: Callable[[], None] | None = None,
        remote_tools: Sequence[llm.Toolset] = (),
    ) -> None:
        # remote_tools: MCP tool servers (tools_mcp.py), each with its own identity
        super().__init__(
            instructions=persona.instructions,
            tools=[end_call_tool(on_end_call), *persona.tools, *remote_tools],
        )


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


def _names(tool: Any) -> list[str]:
    """A tool's name, or every name a toolset holds (EndCallTool is one)."""
    if isinstance(tool, llm.Toolset):
        return [name for inner in tool.tools for name in _names(inner)]
    info = getattr(tool, "info", None)
    return [info.name] if info is not None else []
