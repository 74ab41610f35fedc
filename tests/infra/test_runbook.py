"""domain/runbook.py and tooling/rollout_check.py without a Prometheus: standard library only (the
agent venv imports them), label values escaped, and bad input refused in one line each. The
expressions themselves run against a real Prometheus in agent/tests/test_runbook.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from domain import runbook
from tooling import rollout_check
from tests.k8s.rendered import container_of, plan_with

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_runbook_and_check_import_only_the_standard_library():
    # -S: no site-packages at all, so any third-party import fails
    code = "import domain.runbook, tooling.rollout_check; print('ok')"
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_label_values_are_escaped():
    assert runbook.active_sessions_of('v"1\\') == 'sum(voice_agent_active_sessions{version="v\\"1\\\\"}) or vector(0)'


def test_every_check_expression_reads_nothing_as_zero():
    for expr in (runbook.new_sessions_on("a", "5m"), runbook.accepting_instances_of("a"),
                 runbook.sessions_started_while_draining("a", "5m"), runbook.active_sessions_of("a"),
                 runbook.drain_timeouts_of("a", "5m")):
        assert expr.endswith(" or vector(0)"), expr


def test_the_version_label_is_the_one_the_pods_carry():
    """The runbook groups by `version`, the agent's metric label; the pod's label and the agent's
    AGENT_VERSION carry the same value (tests/k8s/test_workload.py)."""
    container = container_of(plan_with("dev"))
    assert any(e["name"] == "AGENT_VERSION" for e in container["env"])
    assert "by (version)" in runbook.active_sessions_by_version()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tooling.rollout_check", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--old-version", "v1", "--new-version", "v1"], "both 'v1': nothing to compare"),
    (["--old-version", "v1", "--new-version", "v 2"], "--new-version='v 2' is not a release"),
    (["--old-version", "v1", "--new-version", "v2", "--window", "10"], "--window='10' is not a duration"),
    (["--old-version", "v1", "--new-version", "v2", "--window", "0m"], "--window='0m' is not a duration"),
    (["--old-version", "v1", "--new-version", "v2", "--token-env", "ROLLOUT_CHECK_UNSET_TOKEN"],
     "--token-env=ROLLOUT_CHECK_UNSET_TOKEN: that environment variable is empty"),
])
def test_bad_arguments_are_one_line_each(args, message):
    done = _run("--prometheus", "http://127.0.0.1:9", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_prometheus_is_one_line():
    done = _run("--prometheus", "http://127.0.0.1:9", "--old-version", "v1", "--new-version", "v2")
    assert done.returncode == 2 and "cannot query Prometheus" in done.stderr and "Traceback" not in done.stderr


def test_verdicts_follow_the_numbers(monkeypatch):
    """Each check at its boundary: 0 new sessions fails, 1 passes; 1 accepting instance fails."""
    answers = {}

    def fake(base_url, expr, token=None, timeout=10.0):
        return answers[expr]

    monkeypatch.setattr(rollout_check, "query_scalar", fake)
    # no replies in the window: the latency check passes (its boundaries: test_latency_check_*)
    monkeypatch.setattr(rollout_check, "query_optional", lambda *args, **kwargs: None)
    names = ("new", "accepting", "draining_new", "active", "timeouts")
    exprs = (runbook.new_sessions_on("v2", "5m"), runbook.accepting_instances_of("v1"),
             runbook.sessions_started_while_draining("v1", "5m"), runbook.active_sessions_of("v1"),
             runbook.drain_timeouts_of("v1", "5m"))

    def verdicts(**values):
        answers.update({e: values.get(n, 0.0) for n, e in zip(names, exprs)})
        return [c.passed for c in rollout_check.run_checks("http://x", "v1", "v2", "5m")]

    assert verdicts(new=1) == [True, True, True, True]
    assert verdicts(new=0) == [False, True, True, True]
    assert verdicts(new=1, accepting=1) == [True, False, True, True]
    assert verdicts(new=1, draining_new=1) == [True, False, True, True]
    assert verdicts(new=1, active=1) == [True, True, False, True]
    assert verdicts(new=1, timeouts=1) == [True, True, False, True]


def test_latency_check_at_its_boundaries():
    """Fails only when the new p95 is both above the threshold and more than the factor slower."""
    f = runbook.LATENCY_REGRESSION_FACTOR
    check = rollout_check.latency_check
    assert check("a", "b", 2.0, 2.0 * f, 2.0).passed            # exactly the factor: not slower
    assert not check("a", "b", 2.0, 2.0 * f + 0.001, 2.0).passed  # just above both
    assert check("a", "b", 1.0, 2.0, 2.0).passed                # 2x slower but at the threshold
    assert not check("a", "b", 1.0, 2.001, 2.0).passed          # just above the threshold
    assert check("a", "b", None, 5.0, 2.0).passed and "no replies" in check("a", "b", None, 5.0, 2.0).detail


@pytest.mark.parametrize("value", ["0.49", "8.5"])
def test_latency_threshold_outside_the_settings_range_is_refused(value):
    done = _run("--prometheus", "http://127.0.0.1:1", "--old-version", "v1", "--new-version", "v2",
                "--latency-p95-seconds", value)
    assert done.returncode == 2 and "--latency-p95-seconds=" in done.stderr and "[0.5, 8]" in done.stderr
