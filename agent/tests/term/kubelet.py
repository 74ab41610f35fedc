"""A kubelet stand-in for one container: start it as PID 1, terminate it the way Kubernetes does.

Fidelity that matters for drain behaviour:
- The container command runs as PID 1 of its own PID namespace (`unshare --pid --fork`), so a
  shell that installs no SIGTERM handler ignores SIGTERM exactly as it does in a pod.
- Termination: the grace clock starts, the preStop hook runs (counted inside grace), then
  SIGTERM goes to PID 1 only, then SIGKILL takes the whole namespace when grace runs out.
Everything else about the pod (image, cgroups, network) is out of scope and stays real-host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ContainerSpec:
    """What the rendered Deployment says about running and stopping the agent container."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    grace_seconds: float
    pre_stop: Mapping[str, Any] | None
    drain_timeout_seconds: float
    # resources.limits.cpu in millicores: the pod cgroup's quota (cgroup.py)
    cpu_limit_millis: int | None = None

    def with_timing(self, *, drain_timeout: float | None = None, time_scale: float = 1.0) -> "ContainerSpec":
        """Time-scaled copy for a test that cannot wait an hour.

        `drain_timeout`: replace the drain timeout and keep the Deployment's margin between
        drain end and SIGKILL (grace - preStop - drain) unchanged, since that margin covers
        the framework's fixed, unscaled shutdown timeouts. `time_scale`: multiply preStop and
        grace (for the seed's sleep-based timing, whose point is the ratio)."""
        pre_stop = _scaled_pre_stop(self.pre_stop, time_scale)
        pre_stop_s = pre_stop_seconds(self.pre_stop) * time_scale
        grace = self.grace_seconds * time_scale
        drain = self.drain_timeout_seconds
        if drain_timeout is not None:
            margin = self.grace_seconds - pre_stop_seconds(self.pre_stop) - self.drain_timeout_seconds
            grace, drain = pre_stop_s + drain_timeout + margin, drain_timeout
        env = dict(self.env)
        if "AGENT_DRAIN_TIMEOUT_SECONDS" in env or drain_timeout is not None:
            env["AGENT_DRAIN_TIMEOUT_SECONDS"] = str(int(drain))
        return dataclasses.replace(self, env=env, grace_seconds=grace, pre_stop=pre_stop, drain_timeout_seconds=drain)


def pre_stop_seconds(pre_stop: Mapping[str, Any] | None) -> float:
    if not pre_stop:
        return 0.0
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    words = " ".join(pre_stop.get("exec", {}).get("command", [])).replace(";", " ").split()
    return float(sum(int(words[i + 1]) for i, w in enumerate(words[:-1]) if w == "sleep" and words[i + 1].isdigit()))


def _scaled_pre_stop(pre_stop: Mapping[str, Any] | None, scale: float) -> Mapping[str, Any] | None:
    if not pre_stop or scale == 1.0:
        return pre_stop
    return {"sleep": {"seconds": pre_stop_seconds(pre_stop) * scale}}


def load_deployment(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return next(d for d in docs if d.get("kind") == "Deployment")


def container_spec(deployment: dict, overrides: Mapping[str, str]) -> ContainerSpec:
    """Command, args, plain env, grace and preStop exactly as rendered. Env that comes from
    Secrets (LiveKit URL and credentials) is not in the manifest: `overrides` supplies it,
    pointed at the local server."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    plain = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    # the downward API (valueFrom.fieldRef) is the kubelet's to fill, as it would in the cluster
    plain.update(_downward_api(deployment, container))
    from_secrets = {e["name"] for e in container.get("env", []) if "valueFrom" in e} - set(plain)
    missing = from_secrets - set(overrides)
    if missing:
        raise ValueError(f"the Deployment reads {sorted(missing)} from a Secret; the test must supply them")
    argv = tuple(str(w) for w in (container.get("command") or []) + (container.get("args") or []))
    return ContainerSpec(
        argv=argv,
        env={**plain, **overrides},
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
        pre_stop=(container.get("lifecycle") or {}).get("preStop"),
        drain_timeout_seconds=float(plain.get("AGENT_DRAIN_TIMEOUT_SECONDS", 3600)),
        cpu_limit_millis=_cpu_limit(container),
    )


def _downward_api(deployment: dict, container: dict) -> dict[str, str]:
    """metadata.name / metadata.namespace of the pod this container runs in (fieldRef env)."""
    metadata = deployment.get("metadata") or {}
    fields = {
        "metadata.name": f"{metadata.get('name', 'agent')}-term-test",
        "metadata.namespace": str(metadata.get("namespace", "default")),
    }
    values = {}
    for entry in container.get("env", []):
        path = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if path in fields:
            values[entry["name"]] = fields[path]
    return values


def _cpu_limit(container: dict) -> int | None:
    from term.cgroup import cpu_millis

    limit = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
    return cpu_millis(str(limit)) if limit else None


@dataclass
class Termination:
    started: float                    # grace clock start (monotonic)
    sigterm_at: float | None = None
    exited_at: float | None = None
    sigkilled: bool = False
    returncode: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


def namespace_init(unshare_pid: int, timeout: float = 5.0) -> int:
    """Host PID of the process unshare forked: PID 1 inside the new namespace."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children.read_text().split() if children.exists() else []
        if found:
            return int(found[0])
        time.sleep(0.01)
    raise RuntimeError(f"unshare (pid {unshare_pid}) started no child")


class Pod:
    """One agent container run as the Deployment says, with the kubelet's termination.
    `terminate()` runs in a background thread so the test can keep placing calls while the
    pod goes down. Logs are read through the agent harness's WorkerProcess."""

    def __init__(self, spec: ContainerSpec, *, env: Mapping[str, str], log_path: Path):
        from helpers.worker_process import AGENT_DIR, start_worker

        from term import cgroup

        self.spec = spec
        # The container's CPU limit as a cgroup of its own, so the worker's load is its own CPU
        # against that limit, as in the pod, and not the whole test machine's (cgroup.py).
        self.cgroup = cgroup.PodCgroup(spec.cpu_limit_millis) if spec.cpu_limit_millis and cgroup.supported() else None
        command = self.cgroup.argv(spec.argv) if self.cgroup else list(spec.argv)
        argv = ["unshare", "--pid", "--fork", "--kill-child", "--", *command]
        self.worker = start_worker(argv, {**env, **spec.env}, cwd=AGENT_DIR, log_path=log_path)
        self.pid1 = namespace_init(self.worker.process.pid)
        self.termination: Termination | None = None

    def running(self) -> bool:
        return self.worker.process.poll() is None

    def terminate(self) -> Termination:
        self.termination = Termination(started=time.monotonic())
        threading.Thread(target=self._terminate, args=(self.termination,), daemon=True).start()
        return self.termination

    def _terminate(self, t: Termination) -> None:
        deadline = t.started + self.spec.grace_seconds
        # preStop counts inside grace; only sleeping hooks are emulated (the case studied).
        time.sleep(min(pre_stop_seconds(self.spec.pre_stop), self.spec.grace_seconds))
        if self.running():
            t.sigterm_at = time.monotonic()
            os.kill(self.pid1, signal.SIGTERM)  # PID 1 only, as the container runtime does
        try:
            self.worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            t.sigkilled = True
            os.kill(self.pid1, signal.SIGKILL)  # takes the whole PID namespace with it
            self.worker.process.wait(timeout=10)
        t.exited_at = time.monotonic()
        t.returncode = self.worker.process.returncode
        if self.cgroup:
            self.cgroup.remove()
        t.done.set()

    def kill(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
            self.worker.process.wait(timeout=10)
        if self.cgroup:
            self.cgroup.remove()
