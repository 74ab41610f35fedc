"""`python -m policy.manifests` runs the agent rules over plain YAML, as a user would hand it over:
rendered manifests, someone else's Deployments next to ours, broken files (issue 19, item 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tooling.plan import write_manifests
from policy.manifests import EXIT_INPUT, EXIT_OK, EXIT_POLICY, main
from tests.conftest import _fixture_plan

ROOT = Path(__file__).resolve().parents[2]
REDIS = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "redis"},
    "spec": {"selector": {"matchLabels": {"app": "redis"}}, "template": {
        "metadata": {"labels": {"app": "redis"}},
        "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}},
}


@pytest.fixture
def rendered(tmp_path) -> list[Path]:
    return write_manifests(_fixture_plan("dev").resources, tmp_path)


def test_rendered_manifests_pass_and_a_shell_wrapper_fails(rendered, capsys):
    assert main(["--bursting", *map(str, rendered)]) == EXIT_OK
    # every object the dev plan renders, one per file
    n = len(rendered)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"checked {n} object(s) in {n} file(s), agent workload(s): "
                                                               "voice-agent; 0 violation(s), 0 mandatory")
    deployment = next(p for p in rendered if "-deployment-" in p.name)
    doc = yaml.safe_load(deployment.read_text())
    doc["spec"]["template"]["spec"]["containers"][0].update(
        command=["/bin/sh", "-c", "python -m voice_agent start; echo exited"], args=[])
    deployment.write_text(yaml.safe_dump(doc))
    assert main(["--bursting", *map(str, rendered)]) == EXIT_POLICY
    out = capsys.readouterr().out
    assert f"{deployment}: [mandatory] agent-exec-form-start voice-agent: the agent runs under `/bin/sh -c" in out
    assert out.splitlines()[-1].endswith("1 violation(s), 1 mandatory")


def test_a_deployment_that_is_not_an_agent_is_left_alone(rendered, tmp_path, capsys):
    """A redis next to the agent once drew four mandatory failures; it is not a LiveKit worker."""
    other = tmp_path / "redis.yaml"
    other.write_text(yaml.safe_dump(REDIS))
    assert main(["--bursting", str(other), *map(str, rendered)]) == EXIT_OK
    out = capsys.readouterr().out
    n = len(rendered) + 1  # ours and the redis
    assert "redis" not in out.replace(f"{n} object(s)", "")
    assert f"checked {n} object(s) in {n} file(s), agent workload(s): voice-agent;" in out


def test_no_agent_workload_is_an_input_problem_not_a_pass(tmp_path, capsys):
    other = tmp_path / "redis.yaml"
    other.write_text(yaml.safe_dump(REDIS))
    assert main([str(other)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "no agent workload among 1 object(s): the agent rules check Deployments whose pod template is labelled " \
           "gke-voice-agents/role=agent" in err


@pytest.mark.parametrize("name, content, message", [
    ("missing.yaml", None, "{path}: no such file"),
    ("broken.yaml", "kind: [unclosed\n", "{path}: not valid YAML ("),
    ("values.yaml", "replicas: 3\nimage: x\n", "no Kubernetes object in 1 file(s): nothing to check"),
])
def test_bad_input_is_one_line_naming_the_file_and_no_traceback(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "policy.manifests", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_INPUT, done.stderr
    assert "Traceback" not in done.stderr
    assert message.format(path=path) in done.stderr
    if name == "values.yaml":
        assert f"skipped {path} document 1: not a Kubernetes object" in done.stderr


def test_runs_without_the_pulumi_sdk(rendered):
    """Checking plain YAML needs PyYAML only: importing `pulumi` is made to fail outright."""
    blocker = "import sys; sys.modules['pulumi'] = None; import runpy; runpy.run_module('policy.manifests', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", blocker, "--bursting", *map(str, rendered)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_OK, done.stderr
    assert "0 violation(s)" in done.stdout
    control = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pulumi'] = None; import tooling.plan"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert control.returncode != 0 and "ModuleNotFoundError" in control.stderr  # the blocker does block
