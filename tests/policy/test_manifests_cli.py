"""`python -m policy.manifests` runs the workload rules over plain YAML, as rendered."""

from __future__ import annotations

import yaml

from infra.plan import write_manifests
from policy.manifests import main
from tests.conftest import _committed_plan


def test_rendered_manifests_pass_and_a_shell_wrapper_fails(tmp_path, capsys):
    paths = write_manifests(_committed_plan("dev").resources, tmp_path)
    assert main(["--bursting", *map(str, paths)]) == 0
    deployment = next(p for p in paths if "-deployment-" in p.name)
    doc = yaml.safe_load(deployment.read_text())
    doc["spec"]["template"]["spec"]["containers"][0].update(
        command=["/bin/sh", "-c", "python -m voice_agent start; echo exited"], args=[])
    deployment.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert main(["--bursting", *map(str, paths)]) == 1
    out = capsys.readouterr().out
    assert "[mandatory] agent-exec-form-start voice-agent: the agent runs under `/bin/sh -c" in out
