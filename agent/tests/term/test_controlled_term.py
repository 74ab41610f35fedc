"""Seed 001's controlled TERM test, automated (see scenarios.py for what is real and what is
scaled). Each test asserts what a caller would notice."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from term import scenarios
from term.kubelet import REPO_ROOT, ContainerSpec, load_deployment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for PID 1 semantics"),
]

SCALED_DRAIN_S = scenarios.SCALED_DRAIN_S


@pytest.fixture(scope="module")
def deployment_path(tmp_path_factory) -> Path:
    return scenarios.rendered_deployment_path(tmp_path_factory.mktemp("plan"))


@pytest.fixture(scope="module")
def deployment(deployment_path) -> dict:
    return load_deployment(deployment_path)


@pytest.fixture
def spec(livekit_server, deployment_path) -> ContainerSpec:
    return scenarios.pod_spec(livekit_server, deployment_path)


def test_the_pod_runs_what_the_deployment_says(spec, deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert list(spec.argv) == container["command"] + container["args"] == ["python", "-m", "voice_agent", "start"]
    assert spec.grace_seconds == deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert spec.pre_stop is None


def test_the_pod_gets_the_livekit_credentials_where_the_deployment_reads_them(spec, deployment, livekit_server):
    """Files from the Secret Manager mount (the default) or env from the Kubernetes Secret
    (livekitCredentials=kubernetesSecret), never both: the agent would refuse to start."""
    rendered = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    if "LIVEKIT_API_KEY_FILE" in rendered:
        files = {path: value for volume in spec.secret_volumes for path, value in volume.files.items()}
        assert files == {"api-key": livekit_server.api_key, "api-secret": livekit_server.api_secret}
        assert not {"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} & set(spec.env)
    else:
        assert (spec.env["LIVEKIT_API_KEY"], spec.env["LIVEKIT_API_SECRET"]) == (
            livekit_server.api_key, livekit_server.api_secret)


def test_rolling_replacement_keeps_every_call(livekit_server, tmp_path, spec):
    spec = spec.with_timing(drain_timeout=SCALED_DRAIN_S)
    outcome = asyncio.run(scenarios.rolling_replacement(livekit_server, tmp_path, spec))
    print(outcome.summary())
    assert [c.pod for c in outcome.calls] == ["a", "a", "b", "b"], "calls after SIGTERM must land on the new pod"
    assert outcome.facts["old calls still served after SIGTERM"] == 2
    assert outcome.lost == 0
    assert outcome.facts["sigkilled"] is False and outcome.facts["exit code"] == 0
    # A leaves by itself because its last call ended: its drain finished, it did not time out,
    # and it exited inside the grace period. How many seconds after the hang-up is the machine's
    # business (20 s seen at load average 78, when the agent saw the caller leave 10 s late); the
    # number is bench/term_bench.py's to report.
    old = outcome.pods["a"].worker
    assert old.events("drain_finished") and not old.events("drain_timed_out"), old.tail()
    assert outcome.facts["SIGTERM -> exit"] < spec.grace_seconds


def test_call_longer_than_the_drain_is_closed_before_sigkill(livekit_server, tmp_path, spec):
    spec = spec.with_timing(drain_timeout=8)
    outcome = asyncio.run(scenarios.drain_timeout(livekit_server, tmp_path, spec))
    print(outcome.summary())
    assert outcome.facts["drain timed out logged"] and outcome.facts["session ended logged"]
    assert outcome.facts["sigkilled"] is False
    assert 8 <= outcome.facts["SIGTERM -> exit"] < spec.grace_seconds


def test_shell_wrapper_without_exec_never_drains(livekit_server, tmp_path, spec):
    trapped = scenarios.wrapped(spec, grace_s=12)
    outcome = asyncio.run(scenarios.wrapper_trap(livekit_server, tmp_path, trapped))
    print(outcome.summary())
    assert outcome.facts["drain started logged"] is False
    assert outcome.facts["calls accepted after SIGTERM"] == 1
    assert outcome.facts["sigkilled"] is True
    assert outcome.lost == 2


def test_policy_flags_the_wrapper(tmp_path, deployment):
    doc = yaml.safe_load(yaml.safe_dump(deployment))
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["/bin/sh", "-c", "python -m voice_agent start; echo exited"]
    container["args"] = []
    path = tmp_path / "wrapped.yaml"
    path.write_text(yaml.safe_dump(doc))
    infra_python = REPO_ROOT / ".venv" / "bin" / "python"
    done = subprocess.run([str(infra_python), "-m", "policy.manifests", "--bursting", str(path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "[mandatory] agent-exec-form-start" in done.stdout and "never drains" in done.stdout


def test_seed_000_timing_cuts_calls_and_ours_does_not(livekit_server, tmp_path, spec):
    seed = asyncio.run(scenarios.seed_timing(livekit_server, tmp_path, scenarios.seed_000_spec(spec), call_s=20))
    print(seed.summary())
    assert seed.facts["calls placed during preStop landing on the dying pod"] == 1
    assert seed.facts["sigkilled"] is True
    assert seed.lost == 2

    ours = asyncio.run(scenarios.our_timing(livekit_server, tmp_path, spec.with_timing(drain_timeout=SCALED_DRAIN_S), call_s=10))
    print(ours.summary())
    assert ours.facts["calls placed during termination landing on the dying pod"] == 0
    assert ours.facts["sigkilled"] is False
    assert ours.lost == 0
