"""The Cloud SQL Auth Proxy sidecar (k8s/cloudsql_proxy.py): requests that keep every agent
pod valid on Autopilot, the flags the proxy needs, and the DSN the agent gets.

Guards against a sidecar whose requests make Autopilot round the *pod* up (and bill it) or refuse
it, and against a DSN that leaves loopback."""

from __future__ import annotations

import pytest

from k8s import cloudsql_proxy
from domain.sizes import SIZES, autopilot_problems
from tests.k8s.rendered import plan_with, pod_of


@pytest.mark.parametrize("bursting", [False, True])
def test_the_sidecar_takes_one_autopilot_step_at_the_lowest_ratio(bursting):
    """Autopilot's minimums apply to the pod (the agent covers them); the sidecar adds one CPU
    step (250m without bursting, 50m with) and 1 GiB per vCPU of it, at least 64 MiB."""
    from domain.sizes import MIN_GIB_PER_VCPU

    cpu, mem = cloudsql_proxy.requests(bursting)
    assert (cpu, mem) == ((50, 64) if bursting else (250, 256))
    assert mem / 1024 >= cpu / 1000 * MIN_GIB_PER_VCPU


@pytest.mark.parametrize("bursting", [False, True])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_pod_with_the_sidecar_stays_valid_on_autopilot(size, bursting):
    """Sidecar requests count toward the pod: agent + proxy must need no rounding either."""
    agent = SIZES[size].resources(bursting)
    cpu, mem = cloudsql_proxy.requests(bursting)
    assert autopilot_problems(agent.cpu_request_m + cpu, agent.memory_request_mi + mem, bursting) == []


def test_a_smaller_sidecar_would_make_autopilot_round_the_pod_up():
    """Control: without bursting, 100m on top of an M pod is not a 250m step."""
    agent = SIZES["M"].resources(False)
    assert any("not a multiple of 250m" in p for p in autopilot_problems(agent.cpu_request_m + 100, agent.memory_request_mi, False))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_rendered_sidecar_is_native_hardened_and_probed(stack):
    [sidecar] = pod_of(plan_with(stack))["spec"]["initContainers"]
    assert sidecar["image"] == cloudsql_proxy.IMAGE and sidecar["restartPolicy"] == "Always"
    args = sidecar["args"]
    assert args[:2] == ["--private-ip", "--auto-iam-authn"]
    assert f"--impersonate-service-account=gva-{stack}-db@gva-fixture-{stack}.iam.gserviceaccount.com" in args
    assert {"--address=127.0.0.1", "--port=5432", "--structured-logs", "--health-check", "--http-port=9801"} <= set(args)
    assert args[-1].startswith(f"gva-fixture-{stack}:us-central1:checkpoints-instance")
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/startup", "port": cloudsql_proxy.HEALTH_PORT_NAME}
    assert sidecar["startupProbe"]["periodSeconds"] * sidecar["startupProbe"]["failureThreshold"] == 60
    context = sidecar["securityContext"]
    assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
    assert context["capabilities"] == {"drop": ["ALL"]} and context["runAsNonRoot"]
    cpu, mem = cloudsql_proxy.requests(stack == "dev")  # dev bursts
    assert sidecar["resources"]["requests"] == sidecar["resources"]["limits"] == {
        "cpu": f"{cpu}m", "memory": f"{mem}Mi", "ephemeral-storage": "64Mi"}


def test_the_dsn_is_the_sidecar_on_loopback_with_the_iam_user_escaped():
    """The rendered value (test_workload.py checks it per stack) parses back to the IAM user."""
    from urllib.parse import unquote, urlsplit

    env = {e["name"]: e.get("value") for e in pod_of(plan_with("prod"))["spec"]["containers"][0]["env"]}
    parts = urlsplit(env["AGENT_CHECKPOINT_DSN"])
    assert (parts.hostname, parts.port, parts.path, parts.password) == ("127.0.0.1", 5432, "/voice_agent", None)
    assert unquote(parts.username) == "gva-prod-db@gva-fixture-prod.iam"


def test_the_egress_rule_opens_only_the_connector_port_to_the_range():
    assert cloudsql_proxy.egress_rule("10.60.0.0/20") == {
        "to": [{"ipBlock": {"cidr": "10.60.0.0/20"}}], "ports": [{"protocol": "TCP", "port": 3307}]}
