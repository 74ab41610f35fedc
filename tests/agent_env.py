"""The agent's environment declarations (agent/voice_agent/env_declarations.py), for the stack's
tests. The agent has its own venv; the module is standard library only, so it is loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "agent" / "voice_agent" / "env_declarations.py"


def agent_declarations():
    spec = importlib.util.spec_from_file_location("agent_env_declarations", PATH)
    module = sys.modules.setdefault("agent_env_declarations", importlib.util.module_from_spec(spec))
    if not hasattr(module, "VARIABLES"):
        spec.loader.exec_module(module)
    return module
