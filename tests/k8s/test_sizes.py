"""The T-shirt sizes: valid on Autopilot as declared, in both bursting modes, and big enough
for the calls each one admits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.capacity import memory_needed_mi, sessions_per_pod
from domain.sizes import (
    BURST_CPU_LIMIT_FACTOR,
    CPU_STEP_M,
    MAX_CPU_M,
    MAX_MEM_MI,
    SIZES,
    AutopilotRejects,
    Resources,
    autopilot_normalise,
    autopilot_problems,
)

MODES = pytest.mark.parametrize("bursting", [False, True], ids=["no-bursting", "bursting"])
EVERY_SIZE = pytest.mark.parametrize("name", sorted(SIZES))


@EVERY_SIZE
@MODES
def test_autopilot_runs_every_size_exactly_as_declared(name, bursting):
    """Guards against a size that Autopilot silently raises (and bills) or rejects."""
    declared = SIZES[name].resources(bursting)
    assert autopilot_normalise(declared, bursting) == declared
    assert autopilot_problems(declared.cpu_request_m, declared.memory_request_mi, bursting) == []


@EVERY_SIZE
def test_limits_follow_the_bursting_mode(name):
    size = SIZES[name]
    flat, burst = size.resources(False), size.resources(True)
    assert (flat.cpu_limit_m, flat.memory_limit_mi) == (size.cpu_m, size.memory_mi)
    assert burst.cpu_limit_m == round(size.cpu_m * BURST_CPU_LIMIT_FACTOR) > size.cpu_m
    # Memory over the request is an OOM kill waiting to happen, bursting or not.
    assert burst.memory_limit_mi == size.memory_mi


@EVERY_SIZE
def test_memory_covers_every_call_the_pod_can_admit(name):
    """The most calls a pod takes (threshold x limit capped at the request by config) must fit
    its memory at the planned per-call figure, or the pod is OOM-killed with calls on it."""
    size = SIZES[name]
    most = sessions_per_pod(Resources(size.cpu_m, size.memory_mi, size.cpu_m, size.memory_mi), 1.0)
    assert most >= 1
    assert memory_needed_mi(most) <= size.memory_mi


@pytest.mark.parametrize("name, flat, burst", [("S", 3, 4), ("M", 7, 10), ("L", 15, 21)])
def test_sessions_per_pod_at_the_default_threshold(name, flat, burst):
    """The table in domain/sizes.py and docs/workload.md."""
    size = SIZES[name]
    assert sessions_per_pod(size.resources(False), 0.7) == flat
    assert sessions_per_pod(size.resources(True), 0.7) == burst


def test_burst_factor_keeps_admission_within_the_request_at_the_default_threshold():
    assert 0.7 * BURST_CPU_LIMIT_FACTOR <= 1.0


@pytest.mark.parametrize("declared, bursting, applied", [
    # rounded up to 250m, limits forced to requests
    (Resources(300, 1024, 600, 2048), False, Resources(500, 1024, 500, 1024)),
    # raised to the minimums
    (Resources(100, 256, 100, 256), False, Resources(250, 512, 250, 512)),
    (Resources(10, 20, 10, 20), True, Resources(50, 52, 50, 52)),
    # ratio below 1 GiB per vCPU: memory raised
    (Resources(2000, 1024, 2000, 1024), False, Resources(2000, 2048, 2000, 2048)),
    # ratio above 6.5 GiB per vCPU: CPU raised (and rounded)
    (Resources(1000, 8192, 1000, 8192), False, Resources(1250, 8192, 1250, 8192)),
    # bursting keeps limits, no rounding
    (Resources(300, 1024, 600, 1024), True, Resources(300, 1024, 600, 1024)),
])
def test_normalise_applies_autopilot_rules(declared, bursting, applied):
    assert autopilot_normalise(declared, bursting) == applied


def test_normalise_refuses_what_autopilot_rejects():
    with pytest.raises(AutopilotRejects, match=r"requests 32000m / 65536Mi exceed the Autopilot maximum 30000m / 112640Mi"):
        autopilot_normalise(Resources(32000, 65536, 32000, 65536), bursting=False)


def test_autopilot_problems_name_each_silent_change():
    assert "rounds it up to 500m" in " ".join(autopilot_problems(300, 1024, bursting=False))
    assert "below the Autopilot minimum 250m" in " ".join(autopilot_problems(100, 1024, bursting=False))
    assert "below the Autopilot minimum 512Mi" in " ".join(autopilot_problems(1000, 256, bursting=False))
    assert autopilot_problems(100, 512, bursting=True) == []
    assert "ratio 8.00" in " ".join(autopilot_problems(1000, 8192, bursting=False))
    assert "exceed the Autopilot maximum" in " ".join(autopilot_problems(32000, 65536, bursting=False))


@pytest.mark.parametrize("cpu_m, memory_mi, rejected", [
    (MAX_CPU_M, MAX_MEM_MI, False),  # both at the maximum: accepted
    (MAX_CPU_M - CPU_STEP_M, MAX_MEM_MI - 1, False),  # just below
    (MAX_CPU_M + CPU_STEP_M, MAX_MEM_MI, True),  # CPU one step above
    (MAX_CPU_M, MAX_MEM_MI + 1, True),  # memory 1 Mi above
])
def test_the_autopilot_maximum_itself_is_accepted(cpu_m, memory_mi, rejected):
    """The maximum is the largest request Autopilot accepts, not the first it rejects."""
    found = " ".join(autopilot_problems(cpu_m, memory_mi, bursting=False))
    assert ("exceed the Autopilot maximum" in found) is rejected, found


def test_the_documented_size_table_matches_the_code():
    """docs/workload.md states the sizes and calls per pod; they must not drift from the code."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "workload.md").read_text()
    rows = re.findall(r"^\| (\w) \| (\d+)m / (\d+) GiB \| (\d+)m / \d+ GiB \| (\d+)m / \d+ GiB \| (\d+) \(bursting: (\d+)\) \|$",
                      doc, re.MULTILINE)
    assert {r[0] for r in rows} == set(SIZES)
    for name, cpu, gib, flat_limit, burst_limit, flat_calls, burst_calls in rows:
        size = SIZES[name]
        assert (size.cpu_m, size.memory_mi) == (int(cpu), int(gib) * 1024), name
        assert (size.resources(False).cpu_limit_m, size.resources(True).cpu_limit_m) == (int(flat_limit), int(burst_limit)), name
        assert (sessions_per_pod(size.resources(False), 0.7), sessions_per_pod(size.resources(True), 0.7)) == (
            int(flat_calls), int(burst_calls)), name


@pytest.mark.parametrize(("memory_mi", "outside"), [
    (1023, True), (1024, False), (1025, False),     # 1 GiB per vCPU, Autopilot's lowest ratio
    (6655, False), (6656, False), (6657, True),     # 6.5 GiB per vCPU, its highest
])
def test_the_memory_to_cpu_ratio_at_its_bounds(memory_mi, outside):
    said = " ".join(autopilot_problems(1000, memory_mi, bursting=False))
    assert ("memory:CPU ratio" in said) is outside, said
