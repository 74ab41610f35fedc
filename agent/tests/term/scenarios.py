"""The controlled TERM test (seed 001's staging runbook), automated against real processes.

A real `livekit-server --dev` on loopback, the real agent worker started with the command,
args, env, grace and preStop of the Deployment the offline plan renders, the kubelet's
termination sequence (kubelet.py), and synthetic callers that publish audio. Only two things
are not production: Gemini is replaced at its one seam (fake_gemini/sitecustomize.py on
PYTHONPATH; the command is untouched), and endpoints differ: LiveKit URL and credentials point
at the local server (credentials where the Deployment reads them: files of the Secrets Store
CSI mount, or env from the Kubernetes Secret), the health/metrics ports are free loopback ports
(two pods share this host's network), the load threshold is 1.0 and the silence timeout an hour
(see endpoint_overrides).
Times are scaled down where noted; each scenario says how.

Tests (test_controlled_term.py) assert on the Outcome; bench/term_bench.py prints it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.livekit_server import TEST_LOAD_THRESHOLD, LiveKitServer, free_port, wait_for_spare_capacity
from helpers.participant import Caller, dispatch_agent, join_as_caller
from helpers.worker_process import FAKE_GEMINI_DIR, PLAIN_CALL_IDS, wait_until_serving

from term.kubelet import (
    REPO_ROOT,
    ContainerSpec,
    Pod,
    Termination,
    container_spec,
    load_deployment,
    secret_files,
    secret_provider_classes,
)

# Registered, a job process warm and spare capacity reported (Cluster.ready): at load average
# 35 on this 2-core machine the forkserver alone took 40 s after a 12 s registration.
REGISTER_TIMEOUT = 180.0
# Generous: on a busy 2-core CI machine a worker may need a fresh job process (prewarm
# included) before it can take a second call.
DISPATCH_TIMEOUT = 90.0


def rendered_deployment_path(workdir: Path, stack: str = "dev") -> Path:
    """The agent Deployment's file as the offline plan renders it (out/<stack> from
    scripts/test.sh, or a fresh plan through the infra venv); the manifests beside it hold what
    it refers to (the SecretProviderClass of its credentials)."""
    manifests = sorted((REPO_ROOT / "out" / stack / "manifests").glob("*-deployment-*.yaml"))
    if not manifests:
        infra_python = REPO_ROOT / ".venv" / "bin" / "python"
        if not infra_python.exists():
            raise FileNotFoundError("no rendered Deployment and no infra venv: run `bash scripts/setup-infra.sh`")
        out = workdir / f"plan-{stack}"
        subprocess.run([str(infra_python), "-m", "tooling.plan", "--stack", stack, "--out", str(out)],
                       cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        manifests = sorted((out / "manifests").glob("*-deployment-*.yaml"))
    return manifests[0]


def pod_spec(server: LiveKitServer, deployment_path: Path) -> ContainerSpec:
    """The rendered Deployment's container pointed at the local server, its credentials where
    the Deployment reads them."""
    deployment, manifests = load_deployment(deployment_path), deployment_path.parent
    return container_spec(
        deployment,
        # the scenarios find a call's lines by its room name (tests/helpers/worker_process.py)
        {**endpoint_overrides(server), **livekit_secret_env(server, deployment), **PLAIN_CALL_IDS},
        manifests_dir=manifests,
        secret_manager=livekit_secret_manager(server, deployment, manifests),
    )


def _livekit_values(server: LiveKitServer) -> dict[str, str]:
    """The local server's credentials under the names both stores use: the keys of the
    `livekit` Kubernetes Secret and the file paths of the `livekit` SecretProviderClass."""
    return {"url": server.ws_url, "api-key": server.api_key, "api-secret": server.api_secret}


def livekit_secret_env(server: LiveKitServer, deployment: dict) -> dict[str, str]:
    """The env the Deployment reads from the `livekit` Kubernetes Secret (secretKeyRef, the
    kubernetesSecret mode), with the local server's values; nothing when it reads files, so the
    agent never sees a credential in both forms (it would refuse to start)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    values = _livekit_values(server)
    env = {}
    for entry in container.get("env", []):
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
        if ref.get("name") == "livekit" and ref.get("key") in values:
            env[entry["name"]] = values[ref["key"]]
    return env


def livekit_secret_manager(server: LiveKitServer, deployment: dict, manifests_dir: Path) -> dict[str, str]:
    """An imitated Secret Manager (resourceName -> payload) for the Deployment's Secrets Store
    CSI volumes: whichever secret the rendered SecretProviderClass lists at path api-key holds
    the local server's key, at api-secret its secret. The secret names are the stack's
    (projects/<project>/secrets/<name>/versions/latest); the paths are the contract the _FILE
    env points at, so the mapping keys on them. Other paths are left out (the mount fails)."""
    values = _livekit_values(server)
    return {
        resource: values[path]
        for spc in secret_provider_classes(deployment, manifests_dir).values()
        for path, resource in secret_files(spc).items()
        if path in ("api-key", "api-secret")
    }


def endpoint_overrides(server: LiveKitServer) -> dict[str, str]:
    """Endpoints and test-only settings over the rendered env. Credentials are not here: they
    go where the Deployment reads them (livekit_secret_env, livekit_secret_manager)."""
    return {
        "LIVEKIT_URL": server.ws_url,
        "AGENT_HEALTH_PORT": str(free_port()),
        "AGENT_METRICS_PORT": str(free_port()),
        "AGENT_HTTP_HOST": "127.0.0.1",
        # Each pod runs in a cgroup of its own with the Deployment's CPU limit (helpers/pod_cgroup.py),
        # so its load is its own CPU as in the cluster. The threshold is the test LiveKit
        # server's agents.target_load (helpers/livekit_server.TEST_LOAD_THRESHOLD): the two
        # must agree, and this harness studies termination, not admission at 0.7 (tested in
        # tests/k8s and tests/policy).
        "AGENT_LOAD_THRESHOLD": str(TEST_LOAD_THRESHOLD),
        # The synthetic callers never speak, and a scenario may wait minutes for the next pod to
        # serve on a busy machine: the rendered 120 s silence timeout would end the old calls
        # first (correctly: it is tested in test_call_life.py); termination is studied here.
        "AGENT_SILENCE_TIMEOUT_SECONDS": "3600",
        # No Prometheus scrapes these pods: the Deployment's linger after the drain (one scrape
        # interval, for the last counters) would only add 35 s to every exit measured here.
        "AGENT_METRICS_LINGER_SECONDS": "0",
        # The Deployment points the checkpoints at its Cloud SQL Auth Proxy sidecar on loopback;
        # no sidecar runs here, and crash recovery has its own scenarios (test_recovery_*.py).
        "AGENT_CHECKPOINT_DSN": "",
        # Likewise the Places tool server's in-cluster URL: it resolves nowhere here, and the
        # tools have their own call tests (test_tools_places.py).
        "AGENT_TOOL_SERVERS": "",
    }


def host_env() -> dict[str, str]:
    """What the image provides implicitly: `python` on PATH is the agent's interpreter."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        # test-only seam: Gemini is replaced, nothing else (see fake_gemini/sitecustomize.py)
        "PYTHONPATH": str(FAKE_GEMINI_DIR),
    }


@dataclass
class Call:
    room: str
    caller: Caller
    placed_at: float
    pod: str = ""
    answered_at: float | None = None
    hung_up_at: float | None = None

    def lost(self, pods: dict[str, Pod]) -> bool:
        """Cut: the pod serving it was gone before the caller hung up."""
        t = pods[self.pod].termination if self.pod else None
        if t is None or t.exited_at is None:
            return False
        return self.hung_up_at is None or t.exited_at < self.hung_up_at


@dataclass
class Outcome:
    scenario: str
    calls: list[Call] = field(default_factory=list)
    pods: dict[str, Pod] = field(default_factory=dict)
    routing_switch_s: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return sum(call.lost(self.pods) for call in self.calls)

    def on(self, pod: str) -> list[Call]:
        return [c for c in self.calls if c.pod == pod]

    def summary(self) -> str:
        parts = [f"{self.scenario}: {len(self.calls)} calls, {self.lost} lost"]
        if self.routing_switch_s is not None:
            parts.append(f"SIGTERM -> new calls routed elsewhere {self.routing_switch_s:.2f} s")
        parts += [f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}" for k, v in self.facts.items()]
        return "; ".join(parts)


class Cluster:
    """Pods and calls of one scenario against one LiveKit server."""

    def __init__(self, server: LiveKitServer, workdir: Path, scenario: str):
        self.server, self.workdir = server, workdir
        self.outcome = Outcome(scenario)
        self._count = 0

    def start_pod(self, name: str, spec: ContainerSpec) -> Pod:
        # Each pod has its own network namespace in Kubernetes; here they share the host's.
        ports = {"AGENT_HEALTH_PORT": str(free_port()), "AGENT_METRICS_PORT": str(free_port())}
        spec = dataclasses.replace(spec, env={**spec.env, **ports})
        pod = Pod(spec, env=host_env(), log_path=self.workdir / f"{self.outcome.scenario}-{name}.log",
                  volumes_dir=self.workdir / f"{self.outcome.scenario}-{name}-volumes")
        self.outcome.pods[name] = pod
        return pod

    async def ready(self, *names: str) -> None:
        """Registered, a job process warm and spare capacity reported
        (helpers/worker_process.wait_until_serving says why registered alone is not enough)."""
        for name in names:
            await asyncio.to_thread(wait_until_serving, self.outcome.pods[name].worker, REGISTER_TIMEOUT)

    async def place_call(self) -> Call:
        self._count += 1
        room = f"{self.outcome.scenario}-call-{self._count}"
        caller = await join_as_caller(self.server, room, f"caller-{self._count}")
        # The stacks dispatch explicitly (agentName): the room asks for the agent by the name the
        # rendered Deployment gives its workers, as a production caller's token or backend does.
        agent_name = next((p.spec.env.get("AGENT_NAME", "") for p in self.outcome.pods.values()), "")
        if agent_name:
            await dispatch_agent(self.server, room, agent_name)
        call = Call(room, caller, time.monotonic())
        self.outcome.calls.append(call)
        return call

    async def answered(self, call: Call, timeout: float = DISPATCH_TIMEOUT) -> str:
        """Which pod took the call (its job_accepted line names the room)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, pod in self.outcome.pods.items():
                if any(line.get("room") == call.room for line in pod.worker.events("job_accepted")):
                    call.pod, call.answered_at = name, time.monotonic()
                    await asyncio.wait_for(call.caller.agent_joined.wait(), max(1.0, deadline - time.monotonic()))
                    return name
            await asyncio.sleep(0.05)
        raise AssertionError(f"no pod accepted {call.room} within {timeout}s")

    async def pod_with_a_call(self, name: str, spec: ContainerSpec) -> tuple[Pod, Call]:
        """A registered pod serving one call, with room for more: where every termination
        scenario starts. (Taking the call made it boot a replacement idle process, during which
        its own load reads full and a new room would be offered to no pod.)"""
        pod = self.start_pod(name, spec)
        await self.ready(name)
        call = await self.place_call()
        await self.answered(call)
        await asyncio.to_thread(wait_for_spare_capacity, pod.worker.metrics_url, REGISTER_TIMEOUT)
        return pod, call

    async def hang_up(self, call: Call) -> None:
        call.hung_up_at = time.monotonic()
        await call.caller.leave()

    async def agent_in_room(self, call: Call) -> bool:
        from helpers.participant import list_participant_kinds

        kinds = await list_participant_kinds(self.server, call.room)
        return any(kind == 4 for kind in kinds.values())  # ParticipantInfo.Kind.AGENT

    async def close(self) -> None:
        for call in self.outcome.calls:
            if call.hung_up_at is None:
                await self.hang_up(call)
        for pod in self.outcome.pods.values():
            pod.kill()


async def wait_done(pod: Pod, timeout: float) -> None:
    assert pod.termination is not None
    await asyncio.to_thread(pod.termination.done.wait, timeout)


async def after_sigterm(cluster: Cluster, a: Pod, termination: Termination, old: list[Call], hold_s: float) -> None:
    """The rolling replacement's second half, whoever sent pod a its SIGTERM (this file's harness
    or the Deployment controller, controlled.py): two new calls once a logs its drain, a's `old`
    calls held `hold_s` and then hung up, a waited out; the timings and exit go into the outcome."""
    await asyncio.to_thread(a.worker.wait_for_event, "drain_started", 15.0)
    new = []
    for _ in range(2):
        new.append(await cluster.place_call())
        await cluster.answered(new[-1])
    # Calls are placed as soon as A logs the drain; the switch is when B has taken one.
    first_elsewhere = min((c.answered_at for c in new if c.pod == "b"), default=None)
    cluster.outcome.routing_switch_s = (first_elsewhere - termination.sigterm_at) if first_elsewhere else None
    await asyncio.sleep(hold_s)
    cluster.outcome.facts["old calls still served after SIGTERM"] = sum([await cluster.agent_in_room(c) for c in old])
    for call in old:
        await cluster.hang_up(call)
    last_end = max(c.hung_up_at for c in old)
    await wait_done(a, a.spec.grace_seconds + 5)
    cluster.outcome.facts["last call end -> pod exit"] = termination.exited_at - last_end
    cluster.outcome.facts["SIGTERM -> exit"] = termination.exited_at - termination.sigterm_at
    cluster.outcome.facts["grace"] = a.spec.grace_seconds
    cluster.outcome.facts["sigkilled"] = termination.sigkilled
    cluster.outcome.facts["exit code"] = termination.returncode


# ---------------------------------------------------------------------------------------------
# Scenario 1: rolling replacement.
async def rolling_replacement(server: LiveKitServer, workdir: Path, spec: ContainerSpec, hold_s: float = 4.0) -> Outcome:
    """Worker A holds two calls; B starts; A is terminated. New calls must land on B, A's calls
    must run to their natural end, and A must exit by itself once they have."""
    cluster = Cluster(server, workdir, "rolling")
    try:
        a = cluster.start_pod("a", spec)
        await cluster.ready("a")
        old = [await cluster.place_call() for _ in range(2)]
        for call in old:
            await cluster.answered(call)
        cluster.start_pod("b", spec)
        await cluster.ready("b")
        termination = a.terminate()
        await after_sigterm(cluster, a, termination, old, hold_s)
        return cluster.outcome
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------------------------
# Scenario 2: a call longer than the drain timeout.
async def drain_timeout(server: LiveKitServer, workdir: Path, spec: ContainerSpec) -> Outcome:
    """The framework closes the call when drain_timeout runs out, before SIGKILL, and the process
    exits within the grace period."""
    cluster = Cluster(server, workdir, "drain-timeout")
    try:
        a, call = await cluster.pod_with_a_call("a", spec)
        termination = a.terminate()
        await wait_done(a, spec.grace_seconds + 5)
        # The caller never hung up: the call outlived the drain.
        cluster.outcome.facts["SIGTERM -> exit"] = termination.exited_at - termination.sigterm_at
        cluster.outcome.facts["drain timeout"] = spec.drain_timeout_seconds
        cluster.outcome.facts["grace"] = spec.grace_seconds
        cluster.outcome.facts["sigkilled"] = termination.sigkilled
        cluster.outcome.facts["drain timed out logged"] = bool(a.worker.events("drain_timed_out"))
        cluster.outcome.facts["session ended logged"] = bool(a.worker.events("session_ended"))
        return cluster.outcome
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------------------------
# Scenario 3: the wrapper trap.
def wrapped(spec: ContainerSpec, grace_s: float) -> ContainerSpec:
    """The same container behind `sh -c` without exec (the script does cleanup afterwards, so
    no shell can exec the worker implicitly)."""
    script = " ".join(spec.argv) + '; status=$?; echo "worker exited with $status"; exit $status'
    return dataclasses.replace(spec, argv=("/bin/sh", "-c", script), grace_seconds=grace_s)


async def wrapper_trap(server: LiveKitServer, workdir: Path, spec: ContainerSpec) -> Outcome:
    """SIGTERM reaches the shell (PID 1, no handler: ignored); the worker never drains, keeps
    taking calls, and everything dies at SIGKILL."""
    cluster = Cluster(server, workdir, "wrapper")
    try:
        a, before = await cluster.pod_with_a_call("a", spec)
        termination = a.terminate()
        await asyncio.sleep(1.0)
        after = await cluster.place_call()
        await cluster.answered(after)
        await wait_done(a, spec.grace_seconds + 5)
        cluster.outcome.facts["drain started logged"] = bool(a.worker.events("drain_started"))
        cluster.outcome.facts["calls accepted after SIGTERM"] = len([c for c in cluster.outcome.calls if c.pod == "a" and c.placed_at > termination.sigterm_at])
        cluster.outcome.facts["sigkilled"] = termination.sigkilled
        return cluster.outcome
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------------------------
# Scenario 4: seed 000's timing (preStop sleep 120, grace 150) against ours.
async def seed_timing(server: LiveKitServer, workdir: Path, spec: ContainerSpec, call_s: float) -> Outcome:
    """One pod with a call in progress is terminated; another call arrives while the preStop
    runs. With seed 000's timing both land on the dying pod and are cut at SIGKILL."""
    cluster = Cluster(server, workdir, "seed-000")
    try:
        a, first = await cluster.pod_with_a_call("a", spec)
        termination = a.terminate()
        await asyncio.sleep(1.0)
        during = await cluster.place_call()  # placed during the preStop sleep
        await cluster.answered(during)
        # The first call goes on for call_s from the start of the termination, not from its own
        # start: how long answering it took (seconds on a busy machine) must not decide whether
        # it is still running at SIGKILL.
        await asyncio.sleep(max(0.0, termination.started + call_s - time.monotonic()))
        if a.running():
            await cluster.hang_up(first)
        await asyncio.sleep(max(0.0, during.placed_at + call_s - time.monotonic()))
        if a.running():
            await cluster.hang_up(during)
        await wait_done(a, spec.grace_seconds + 5)
        cluster.outcome.facts["calls placed during preStop landing on the dying pod"] = int(during.pod == "a")
        cluster.outcome.facts["sigkilled"] = termination.sigkilled
        cluster.outcome.facts["preStop"] = (termination.sigterm_at or termination.exited_at) - termination.started
        cluster.outcome.facts["grace"] = spec.grace_seconds
        return cluster.outcome
    finally:
        await cluster.close()


async def our_timing(server: LiveKitServer, workdir: Path, spec: ContainerSpec, call_s: float) -> Outcome:
    """The same calls with our rendered Deployment: no preStop, so the second call goes to the
    replacement pod, and the first runs to its end on the draining one."""
    cluster = Cluster(server, workdir, "ours")
    try:
        a, first = await cluster.pod_with_a_call("a", spec)
        cluster.start_pod("b", spec)
        await cluster.ready("b")
        termination = a.terminate()
        await asyncio.to_thread(a.worker.wait_for_event, "drain_started", 15.0)
        during = await cluster.place_call()
        await cluster.answered(during)
        # call_s from the start of the termination, as in seed_timing
        await asyncio.sleep(max(0.0, termination.started + call_s - time.monotonic()))
        await cluster.hang_up(first)
        await wait_done(a, spec.grace_seconds + 5)
        cluster.outcome.facts["calls placed during termination landing on the dying pod"] = int(during.pod == "a")
        cluster.outcome.facts["sigkilled"] = termination.sigkilled
        return cluster.outcome
    finally:
        await cluster.close()


# Our drain timeout scaled down for tests and the bench; the Deployment's margin between drain
# end and SIGKILL (the rendered shutdown budget) is kept as rendered. Long enough that the old
# calls outlive every step the rolling scenario takes before it checks them (on a saturated
# machine answering the two new calls took over 16 s, and a 20 s drain then closed the old calls
# first); a passing run never waits for it: the drain ends when the old calls hang up.
SCALED_DRAIN_S = 60
SEED_PRESTOP = {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}


def seed_000_spec(spec: ContainerSpec) -> ContainerSpec:
    """Seed 000's pod: preStop `sleep 120`, grace 150, no drain timeout set (the framework's
    3600 s applies), scaled to a tenth: preStop 12 s, grace 15 s."""
    env = {k: v for k, v in spec.env.items() if k != "AGENT_DRAIN_TIMEOUT_SECONDS"}
    seed = dataclasses.replace(spec, env=env, grace_seconds=150, pre_stop=SEED_PRESTOP, drain_timeout_seconds=3600)
    return seed.with_timing(time_scale=0.1)


def dev_spec(server: LiveKitServer, workdir: Path) -> ContainerSpec:
    return pod_spec(server, rendered_deployment_path(workdir))
