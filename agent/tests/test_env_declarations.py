"""One declaration per environment variable (voice_agent/env_declarations.py): the committed
docs/agent-settings.md is what the declarations write, every declaration lands on one field of
the settings, every bound holds at its edge, and the module stays loadable without livekit.

Guards against a variable declared in one place and forgotten in another (issue 30: settings.py
read and checked each of its variables by hand, and docs/agent.md repeated them in a table).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from voice_agent import env_declarations as decl
from voice_agent.admission import AdmissionSettings
from voice_agent.env_declarations import BY_NAME, REQUIRED, VARIABLES, read, settings_doc
from voice_agent.recovery.config import RecoverySettings
from voice_agent.settings import AgentSettings, SettingsError, load_settings

AGENT_DIR = Path(__file__).resolve().parents[1]
# Fields that no single variable fills: a section, or a value a cross-variable rule builds.
NOT_LANDED = {"recovery", "admission", "tool_servers"}


def test_the_committed_doc_is_what_the_declarations_write():
    assert decl.SETTINGS_DOC.read_text() == settings_doc(), "run: cd agent && python -m voice_agent.env_declarations"


def test_the_check_command_fails_on_a_stale_doc(tmp_path, monkeypatch):
    """`python -m voice_agent.env_declarations --check` is what CI can run; it must see drift."""
    done = subprocess.run([sys.executable, "-m", "voice_agent.env_declarations", "--check"], cwd=AGENT_DIR,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    stale = tmp_path / "docs" / "agent-settings.md"
    stale.parent.mkdir()
    stale.write_text(settings_doc().replace("| `AGENT_MAX_CALLS` |", "| `AGENT_MAX_CALS` |"))
    monkeypatch.setattr(decl, "ROOT", tmp_path)
    monkeypatch.setattr(decl, "SETTINGS_DOC", stale)
    assert decl.main(["--check"]) == 1
    assert stale.read_text().count("AGENT_MAX_CALS") == 1, "--check must not write"
    assert decl.main([]) == 0 and stale.read_text() == settings_doc()


def test_the_doc_has_one_row_per_variable():
    rows = [line.split("|")[1].strip().split(" or ")[0].strip("`") for line in settings_doc().splitlines()
            if line.startswith("| `")]
    assert rows == [v.name for v in VARIABLES]
    assert len(set(rows)) == len(rows)


@pytest.mark.parametrize(("section", "cls"), [("", AgentSettings), ("recovery", RecoverySettings),
                                              ("admission", AdmissionSettings)])
def test_every_field_is_filled_by_exactly_one_declaration(section, cls):
    prefix = f"{section}." if section else ""
    landing = [v.to[len(prefix):] for v in VARIABLES if v.to and v.to.startswith(prefix) and "." not in v.to[len(prefix):]]
    assert len(landing) == len(set(landing))
    assert set(landing) == {f.name for f in fields(cls)} - NOT_LANDED


@pytest.mark.parametrize("v", [v for v in VARIABLES if v.default is not REQUIRED and v.kind != "credential"],
                         ids=lambda v: v.name)
def test_every_default_passes_its_own_declaration(v):
    shown = str(v.default).lower() if isinstance(v.default, bool) else str(v.default)
    if shown:  # empty means "unset": the default itself, nothing to read
        assert read(v, shown) == (v.default, None)


def test_dataclass_defaults_are_the_declared_ones(valid_env):
    """The dataclasses' own defaults (used by tests and code that build settings by hand)
    equal what loading an environment without the variable gives."""
    loaded = load_settings(valid_env)
    assert loaded.recovery == RecoverySettings() and loaded.admission == AdmissionSettings()
    assert RecoverySettings().watcher is True and BY_NAME["AGENT_RECOVERY_WATCHER"].default == "on"


_BOUNDED = [v for v in VARIABLES if v.kind in ("integer", "number")]


@pytest.mark.parametrize("v", _BOUNDED, ids=lambda v: v.name)
def test_every_bound_holds_at_its_edge(v):
    step = 1 if v.kind == "integer" else 0.01
    low_ok = not v.low_open
    assert (read(v, str(v.low))[1] is None) is low_ok
    assert read(v, str(v.low + step))[1] is None
    assert read(v, str(v.high))[1] is None
    for bad in (v.low - step, v.high + step):
        value, problem = read(v, str(bad))
        assert value is None and problem.startswith(f"{v.name}=") and "is out of range: allowed" in problem


@pytest.mark.parametrize("v", _BOUNDED, ids=lambda v: v.name)
def test_every_bounded_variable_is_refused_through_the_loader_by_name(valid_env, v):
    with pytest.raises(SettingsError, match=rf"{v.name}=\S+ is out of range: allowed "):
        load_settings({**valid_env, v.name: str(v.high + 1)})


def test_declared_defaults_mirror_the_installed_framework():
    """The defaults tests/test_settings.py checks are the declarations' own (one home)."""
    from livekit.agents import worker

    assert BY_NAME["AGENT_DRAIN_TIMEOUT_SECONDS"].default == worker.DRAIN_TIMEOUT
    assert BY_NAME["AGENT_LOAD_THRESHOLD"].default == worker._default_load_threshold.prod_default
    assert BY_NAME["AGENT_HEALTH_PORT"].default == worker.AgentServer._default_port.prod_default


def test_the_module_needs_neither_livekit_nor_its_package():
    """python -m voice_agent validates settings before importing the framework, and the stack's
    tests (another venv) load the file by path."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('decl', {str(decl.__file__)!r})\n"
            "m = sys.modules['decl'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "assert len(m.VARIABLES) > 40\n"
            "assert not [n for n in sys.modules if n.startswith(('livekit', 'voice_agent'))], sorted(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_secret_value_is_never_in_its_message():
    for v in (v for v in VARIABLES if v.secret and v.kind != "credential"):
        _, problem = read(v, "mysql://root:hunter2@db/x")
        assert problem is None or "hunter2" not in problem, v.name


_BAD = {"integer": "x", "number": "x", "boolean": "maybe", "choice": "maybe"}
# values the single-value rules (check=...) refuse; a pattern refuses any value with a space
_BAD_BY_NAME = {"LIVEKIT_URL": "livekit.example.com", "GOOGLE_GENAI_USE_VERTEXAI": "maybe",
                "GOOGLE_API_KEY": "AIza-key", "AGENT_VOICE": "Pluck", "AGENT_CHECKPOINT_DSN": "mysql://db/x",
                "AGENT_TOOL_SERVERS": "places"}


@pytest.mark.parametrize("v", [v for v in VARIABLES if v.at_start and v.kind != "credential"], ids=lambda v: v.name)
def test_every_variable_refuses_a_bad_value_by_name_alone(valid_env, v):
    """One bad variable gives exactly one line, and it starts with the variable's name."""
    bad = _BAD_BY_NAME.get(v.name) or _BAD.get(v.kind, "bad value!")
    with pytest.raises(SettingsError, match=rf"invalid agent configuration:\n  - {v.name}[= ]") as raised:
        load_settings({**valid_env, v.name: bad})
    assert len(raised.value.problems) == 1, raised.value.problems
    assert v.secret == (bad not in raised.value.problems[0])
