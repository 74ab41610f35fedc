"""The platform's side of the persona seam (persona_api.py), proven with a tiny test persona.

Nothing here names the sample persona's tools or phrases: those are the sample's own tests
(test_sample_persona.py), so a team that changes the persona breaks only those.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from livekit.agents import function_tool

from voice_agent import model, persona_api
from voice_agent.persona_api import Persona, PersonaError, VoiceAssistant, load_persona
from voice_agent.recovery.payload import Checkpoint
from voice_agent.recovery.resume import RESUME_INSTRUCTIONS, CallRecovery, NoRecovery
from voice_agent.settings import DEFAULT_PERSONA, GEMINI_VOICES, SettingsError, load_settings

AGENT_DIR = Path(__file__).resolve().parents[1]


@function_tool
async def echo(text: str) -> str:
    """Repeat what was said.

    Args:
        text: the words to repeat.
    """
    return text


@function_tool(name="echo")
async def echo_again(text: str) -> str:
    """Repeat what was said, again."""
    return text


@function_tool(name="end_call")
async def my_end_call() -> str:
    """A team's own end_call."""
    return "bye"


TINY = Persona(instructions="Test persona.", greeting="Say hi.", tools=(echo,))


def _tool_names(agent: VoiceAssistant) -> list[str]:
    # EndCallTool (livekit-agents 1.8.9 beta.tools) is a Toolset holding the end_call tool
    return sorted(t.info.name for item in agent.tools for t in getattr(item, "tools", [item]))


def test_the_agent_is_the_personas_instructions_and_tools_plus_the_platforms_end_call() -> None:
    agent = VoiceAssistant(TINY)
    assert agent.instructions == "Test persona."
    assert _tool_names(agent) == ["echo", "end_call"]


def test_a_persona_without_tools_still_gets_end_call() -> None:
    agent = VoiceAssistant(Persona(instructions="x", greeting="y"))
    assert _tool_names(agent) == ["end_call"]


# ---- validation of a persona: one sentence per problem, raised when its module is imported ---
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instructions": "  "}, r"instructions are empty"),
        ({"greeting": ""}, r"greeting is empty"),
        ({"voice": "Pukc"}, r"voice 'Pukc' is not a Gemini Live voice: allowed Achernar, .*Puck"),
        ({"tools": (print,)}, r"is a builtin_function_or_method, not a function tool"),
        ({"tools": (echo, echo_again)}, r"tool 'echo' is defined twice"),
        ({"tools": (my_end_call,)}, r"tool 'end_call' is the platform's own"),
    ],
)
def test_an_unusable_persona_says_why(kwargs: dict, message: str) -> None:
    with pytest.raises(PersonaError, match=message):
        Persona(**{"instructions": "x", "greeting": "y", **kwargs})


@pytest.mark.parametrize("voice", ["", *GEMINI_VOICES])
def test_every_listed_voice_and_no_voice_are_accepted(voice: str) -> None:
    assert Persona(instructions="x", greeting="y", voice=voice).voice == voice


# ---- loading AGENT_PERSONA ---------------------------------------------------------------------
@pytest.fixture
def team_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path where a test writes a team's persona module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    sys.modules.pop(name, None)


def test_the_default_setting_names_a_persona_that_loads() -> None:
    assert isinstance(load_persona(DEFAULT_PERSONA), Persona)


def test_a_teams_persona_loads_by_module_path(team_package: Path) -> None:
    _write(team_package, "team_ok", """
        from voice_agent.persona_api import Persona
        P = Persona(instructions="Team.", greeting="Hello.", voice="Kore")
    """)
    persona = load_persona("team_ok:P")
    assert (persona.instructions, persona.voice) == ("Team.", "Kore")


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "no_such_team:P", r"AGENT_PERSONA='no_such_team:P': no module named 'no_such_team' in the image"),
        ("X = 1\n", "team_attr:P", r"module team_attr has no attribute 'P'"),
        ("P = 'text'\n", "team_type:P", r"team_type\.P is a str, not a voice_agent\.persona_api\.Persona"),
        ("import not_installed_dep\n", "team_dep:P", r"importing team_dep needs 'not_installed_dep', which is not installed"),
        ("raise RuntimeError('boom')\n", "team_boom:P", r"importing team_boom failed: RuntimeError: boom"),
        ("from voice_agent.persona_api import Persona\nP = Persona(instructions='', greeting='y')\n",
         "team_bad:P", r"the persona in team_bad is invalid: instructions are empty"),
    ],
)
def test_a_persona_that_cannot_load_is_one_clear_error(
    team_package: Path, source: str | None, spec: str, message: str
) -> None:
    if source is not None:
        _write(team_package, spec.split(":")[0], source)
    with pytest.raises(PersonaError, match=message):
        load_persona(spec)


def test_a_missing_persona_stops_the_worker_with_one_line_and_exit_2(valid_env: dict[str, str]) -> None:
    """The worker imports AGENT_PERSONA before it connects anywhere: a typo is a bad setting,
    not a traceback in every job process."""
    env = {"PATH": "/usr/bin:/bin", **valid_env, "AGENT_PERSONA": "my_agent.persona:PERSONA"}
    result = subprocess.run(
        [sys.executable, "-m", "voice_agent", "start"], cwd=AGENT_DIR, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "AGENT_PERSONA='my_agent.persona:PERSONA': no module named 'my_agent'" in result.stderr
    assert valid_env["LIVEKIT_API_SECRET"] not in result.stderr + result.stdout


# ---- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AGENT_PERSONA", "my_agent.persona", r"AGENT_PERSONA='my_agent\.persona' is invalid: expected module:attribute"),
        ("AGENT_PERSONA", "my-agent:P", r"AGENT_PERSONA='my-agent:P' is invalid"),
        ("AGENT_VOICE", "Pukc", r"AGENT_VOICE='Pukc' is not a Gemini Live voice \(did you mean Puck\?\): allowed empty"),
        ("AGENT_VOICE", "puck", r"AGENT_VOICE='puck' is not a Gemini Live voice \(did you mean Puck\?\)"),
        ("AGENT_VOICE", "Alloy", r"AGENT_VOICE='Alloy' is not a Gemini Live voice: allowed empty"),
    ],
)
def test_bad_persona_settings_name_the_variable(valid_env: dict[str, str], variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({**valid_env, variable: value})


def test_persona_settings_defaults_and_values(valid_env: dict[str, str]) -> None:
    default = load_settings(valid_env)
    assert (default.persona, default.voice) == ("voice_agent.persona:SAMPLE", "")
    chosen = load_settings({**valid_env, "AGENT_PERSONA": "front_desk.persona:PERSONA", "AGENT_VOICE": "Charon"})
    assert (chosen.persona, chosen.voice) == ("front_desk.persona:PERSONA", "Charon")
    assert chosen.public_fields()["voice"] == "Charon"


# ---- voice and opening line: the runtime's choices ------------------------------------------------
@pytest.mark.parametrize(
    ("configured", "persona_voice", "expected"),
    [("Charon", "Kore", "Charon"), ("", "Kore", "Kore"), ("", "", model.VOICE)],
)
def test_agent_voice_overrides_the_personas_which_overrides_the_plugins(
    valid_env: dict[str, str], configured: str, persona_voice: str, expected: str
) -> None:
    from dataclasses import replace

    persona = Persona(instructions="x", greeting="y", voice=persona_voice)
    settings = load_settings({**valid_env, "AGENT_VOICE": configured, "AGENT_GEMINI_CONNECT_RETRIES": "0"})
    built = model.build_realtime_model(replace(settings, voice=persona_api.voice_for(persona, settings.voice)))
    assert built._opts.voice == expected  # the plugin's resolved options (1.8.9), sent in setup


def _resumed() -> CallRecovery:
    recovery = CallRecovery.__new__(CallRecovery)  # only the state opening() reads
    recovery.resumed = Checkpoint(chat_ctx={"items": []})
    return recovery


def test_the_opening_is_the_greeting_or_after_a_recovery_the_resume_line() -> None:
    with_resume = Persona(instructions="x", greeting="Say hi.", resume="Say you are back.")
    assert persona_api.opening(with_resume, NoRecovery()) == "Say hi."
    assert persona_api.opening(with_resume, _resumed()) == "Say you are back."
    # a persona without its own line gets the platform's
    assert persona_api.opening(TINY, _resumed()) == RESUME_INSTRUCTIONS
    assert persona_api.opening(TINY, NoRecovery()) == "Say hi."
