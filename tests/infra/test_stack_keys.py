"""What a stack file may hold: only keys somebody reads (issue 19, item 1), and LiveKit
credentials only as Pulumi secrets that hold something (issue 17).

Three ways in, as a user meets them: `python -m tooling.plan` on an edited stack file (offline),
the program under mocks with the config and secret-key list set the way the Pulumi engine's
automation server sets them (`set_all_config(config, secret_keys)`), and the same through the
PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS environment the CLI's language host uses.
"""

from __future__ import annotations

import re

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.runtime import config as runtime_config

from domain.config import engine_config, load_stack_config, parse_stack_config
from tooling.plan import run_program
from domain.settings import ConfigError
from domain.stackfiles import SECRET_PLACEHOLDER, load_stack_values
from tests.conftest import copy_project

ROOT = Path(__file__).resolve().parents[2]
P = "gke-voice-agents:"
KEY, SECRET = P + "livekitApiKey", P + "livekitApiSecret"


def plan_cli(tmp_path: Path, extra_lines: str, livekit_url: str | None = None) -> subprocess.CompletedProcess:
    """The offline plan of dev in a copy of the project whose (fixture) Pulumi.dev.yaml has extra
    lines (and, if given, another livekitUrl)."""
    repo = copy_project(tmp_path)
    stack_file = repo / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    if livekit_url is not None:
        text = re.sub(r"(gke-voice-agents:livekitUrl: ).*", rf"\g<1>{livekit_url}", text)
    stack_file.write_text(text + extra_lines)
    return subprocess.run([sys.executable, "-m", "tooling.plan", "--stack", "dev", "--out", str(tmp_path / "out")],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def problems(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return [line[4:] for line in done.stderr.splitlines() if line.startswith("  - ")]


# --- unknown keys ----------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("  gke-voice-agents:agentSise: L\n",
     "gke-voice-agents:agentSise = 'L': is not a setting of this project (Pulumi.yaml lists them all); "
     "did you mean gke-voice-agents:agentSize?"),
    ("  gke-voice-agents:drainTimeoutSecond: \"600\"\n",
     "gke-voice-agents:drainTimeoutSecond = '600': is not a setting of this project (Pulumi.yaml lists them all); "
     "did you mean gke-voice-agents:drainTimeoutSeconds?"),
    ("  gcp:regoin: us-east1\n",
     "gcp:regoin = 'us-east1': is not a setting of the gcp provider (pulumi-gcp) and nothing here reads it; "
     "did you mean gcp:region?"),
    ("  gke-voice-agents:spotPods: \"false\"\n",
     "gke-voice-agents:spotPods = 'false': is no longer a setting: Spot Pods get 25 s to stop whatever the grace period "
     "says, which cuts live calls; agents never run on Spot, so the setting is gone: delete the line"),
])
def test_a_misspelled_or_retired_key_is_one_line_with_a_hint(tmp_path, line, expected):
    assert problems(plan_cli(tmp_path, line)) == [expected]


def test_a_real_gcp_provider_setting_is_accepted(tmp_path):
    """gcp:* keys are checked against the installed provider's own list, not refused wholesale."""
    done = plan_cli(tmp_path, "  gcp:billingProject: gva-fixture-dev\n")
    assert done.returncode == 0, done.stderr


def test_a_key_of_another_namespace_is_not_ours_to_judge():
    raw = {**load_stack_values("dev").config, "kubernetes:context": "x", KEY: "k", SECRET: "s"}
    assert parse_stack_config("dev", raw, (KEY, SECRET)).stack == "dev"


# --- secrets ---------------------------------------------------------------------------------

def test_a_plain_livekit_key_is_refused_and_never_printed(tmp_path):
    done = plan_cli(tmp_path, "  gke-voice-agents:livekitApiKey: APIsomekey123\n")
    assert problems(done) == [
        "gke-voice-agents:livekitApiKey = (secret, not shown): is stored in plain text, so the stack file (and git) hold "
        "it unencrypted; run `pulumi config set --secret livekitApiKey <value>`, which replaces the plain entry"]
    assert "APIsomekey123" not in done.stderr + done.stdout


@pytest.mark.parametrize("value", ['""', '"   "'])
def test_an_empty_secret_is_refused(value):
    raw = {**load_stack_values("dev").config, KEY: "k", SECRET: json.loads(value)}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", raw, (KEY, SECRET))
    assert [str(p) for p in caught.value.problems] == [
        "gke-voice-agents:livekitApiSecret = (secret, not shown): is empty: workers could never register with "
        "LiveKit; run `pulumi config set --secret livekitApiSecret <value>`"]


def test_encrypted_values_and_unset_secrets_plan_with_placeholders_and_say_so(tmp_path):
    # the README's example LiveKit URL, as a user who has not edited it yet has it
    done = plan_cli(tmp_path, "  gke-voice-agents:livekitApiKey:\n    secure: v1:AAAAbm90LXJlYWwtY2lwaGVydGV4dA==\n",
                    livekit_url="wss://my-project.livekit.cloud")
    assert done.returncode == 0, done.stderr
    assert "placeholders in this plan; set real values before `pulumi up`:" in done.stdout
    assert "  gke-voice-agents:livekitApiKey (secret placeholder: not set or encrypted)" in done.stdout
    assert "  gke-voice-agents:livekitApiSecret (secret placeholder: not set or encrypted)" in done.stdout
    assert "  gke-voice-agents:livekitUrl = wss://my-project.livekit.cloud (the example's value)" in done.stdout


# --- under the engine, as the CLI runs the program ---------------------------------------------

def _engine_values(**changes: str | None) -> dict[str, str]:
    """dev's values with real secrets, as a deployed stack's engine would hand them over."""
    values = {**load_stack_values("dev").config, KEY: "APIkey", SECRET: "s3cr3t"}
    for key, value in changes.items():
        if value is None:
            values.pop(key)
        else:
            values[key] = value
    return values


def test_under_mocks_secret_keys_decide_what_is_a_secret():
    """run_program sets config and the secret-key list with set_all_config, as the engine does."""
    overrides = {KEY: "APIkey", SECRET: "s3cr3t"}
    run_program("dev", overrides)  # placeholders are secret keys offline: the key list carries them
    runtime_config.set_all_config(_engine_values(), [SECRET])  # the key left out of the list
    with pytest.raises(ConfigError, match=r"livekitApiKey = \(secret, not shown\): is stored in plain text"):
        load_stack_config()
    runtime_config.set_all_config(_engine_values(), [KEY, SECRET])
    assert load_stack_config().stack == "dev"


def test_an_unset_secret_fails_under_the_engine_where_no_placeholder_exists():
    runtime_config.set_all_config(_engine_values(**{SECRET: None}), [KEY])
    with pytest.raises(ConfigError, match=r"^invalid stack configuration \(1 problem\(s\)\):\n  - gke-voice-agents:"
                                          r"livekitApiSecret = \(not set\): is not set; run `pulumi config set --secret "
                                          r"livekitApiSecret <value>`$"):
        load_stack_config()


def test_the_cli_environment_path_is_read_too(monkeypatch):
    """The CLI's language host passes PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS; the SDK's
    pulumi.Config falls back on them, and so must the check of which keys are secret."""
    runtime_config.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(_engine_values()))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([KEY]))
    values, secret = engine_config()
    assert values[KEY] == "APIkey" and secret == {KEY}
    with pytest.raises(ConfigError, match=r"livekitApiSecret = \(secret, not shown\): is stored in plain text"):
        load_stack_config()
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([KEY, SECRET]))
    assert load_stack_config().project == "gva-fixture-dev"


def test_offline_placeholder_is_what_the_plan_uses_for_unset_secrets():
    values = load_stack_values("dev")
    assert values.config[KEY] == values.config[SECRET] == SECRET_PLACEHOLDER
    assert set(values.placeholders) == {KEY, SECRET} <= set(values.secret_keys)
    assert os.environ.get("PULUMI_CONFIG") is None


@pytest.mark.parametrize("key, value", [
    ("gke-voice-agents:livekitUrl", "wss://my-project.livekit.cloud"),
    ("gke-voice-agents:livekitUrl", "wss://my-project-dev.livekit.cloud"),
    ("gke-voice-agents:livekitUrl", "wss://my-project-prod.livekit.cloud"),
])
def test_every_placeholder_the_committed_files_ship_is_named_as_one(key, value):
    """The LiveKit URL placeholders of the docs and examples (written out: a list read from the
    code would shrink with it); a real value next to them is not flagged. (The project-id
    placeholders are the user's stack files' own, which no test names.)"""
    from domain.stackfiles import StackValues, example_values

    assert example_values(StackValues("dev", {key: value}, ())) == [key]
    assert example_values(StackValues("dev", {key: value + "x"}, ())) == []
