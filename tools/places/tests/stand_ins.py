"""The outside parties, shared with the agent's tests: agent/tests/fakes holds every fake of an
outside party (STYLE.md). Loaded by file path: that package's __init__ imports the Gemini fake,
whose websockets dependency this venv does not have (nor need)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parents[3] / "agent" / "tests" / "fakes"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"stand_ins_{name}", FAKES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


places_api = _load("places_api")
cluster_issuer = _load("cluster_issuer")
metadata_server = _load("metadata_server")
kubernetes_api = _load("kubernetes_api")
