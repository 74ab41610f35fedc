"""A stack that shares its LiveKit project with another stage is refused unless it says so
(domain/stages.py): planned through the real program, with fixture stacks of our own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tooling.plan import evaluate
from domain.settings import ConfigError
from domain.stages import same_livekit, sharing_problems

ROOT = Path(__file__).resolve().parents[2]
URL = "gke-voice-agents:livekitUrl"
ACK = "gke-voice-agents:livekitSharedWithStages"


def _project(tmp_path: Path, stacks: dict[str, dict[str, str]]) -> Path:
    """A project directory with our program and one stack file per stage, each the committed
    dev stack with the given settings on top."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    base = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    for stack, settings in stacks.items():
        config = {**base["config"], **settings}
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_the_committed_stages_use_their_own_livekit_projects():
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"][URL]
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"][URL]
    assert not same_livekit(dev, prod)
    assert sharing_problems("prod", prod, (), ROOT) == [] and sharing_problems("dev", dev, (), ROOT) == []


def test_a_stage_sharing_another_stages_livekit_is_refused_before_any_resource(tmp_path):
    root = _project(tmp_path, {"qa": {URL: "wss://shared.livekit.cloud"}, "live": {URL: "wss://shared.livekit.cloud"}})
    with pytest.raises(ConfigError, match=r"livekitUrl = 'wss://shared\.livekit\.cloud': is also the LiveKit server of "
                                          r"stack qa \(Pulumi\.qa\.yaml\).*livekitSharedWithStages qa"):
        evaluate("live", root=root)


def test_sharing_that_is_acknowledged_plans(tmp_path):
    root = _project(tmp_path, {"qa": {URL: "wss://shared.livekit.cloud"},
                               "live": {URL: "wss://shared.livekit.cloud", ACK: "qa"}})
    plan = evaluate("live", root=root)
    assert plan.resources, "the acknowledged stack plans"


def test_separate_livekit_projects_plan_without_acknowledgement(tmp_path):
    root = _project(tmp_path, {"qa": {URL: "wss://qa.livekit.cloud"}, "live": {URL: "wss://live.livekit.cloud"}})
    assert evaluate("live", root=root).resources


@pytest.mark.parametrize(("a", "b", "same"), [
    ("wss://x.livekit.cloud", "wss://x.livekit.cloud", True),
    ("wss://X.livekit.cloud/", "ws://x.livekit.cloud", True),     # scheme, case and path do not make another project
    ("wss://x.livekit.cloud:7880", "wss://x.livekit.cloud", False),  # another port is another server
    ("wss://x.livekit.cloud", "wss://x2.livekit.cloud", False),
])
def test_what_counts_as_one_livekit_project(a, b, same):
    assert same_livekit(a, b) is same


def test_an_acknowledgement_naming_no_stage_is_an_error(tmp_path):
    root = _project(tmp_path, {"live": {URL: "wss://live.livekit.cloud", ACK: "qa"}})
    with pytest.raises(ConfigError, match=r"livekitSharedWithStages = 'qa': names 'qa', which is not another stack"):
        evaluate("live", root=root)


def test_an_acknowledgement_that_is_not_a_stack_name_is_a_config_error(tmp_path):
    root = _project(tmp_path, {"live": {URL: "wss://live.livekit.cloud", ACK: "qa,Bad Name"}})
    with pytest.raises(ConfigError, match=r"livekitSharedWithStages = 'qa,Bad Name': must be empty or comma-separated stack names"):
        evaluate("live", root=root)
