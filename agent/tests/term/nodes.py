"""The harness's kubelet under a real control plane: nodes registered with a real kube-apiserver,
pods that the real kube-scheduler binds to them run as kubelet.py runs them.

The Deployment and ReplicaSet controllers of a real kube-controller-manager decide which pods
exist, when a rollout moves on (maxSurge, maxUnavailable, minReadySeconds) and which pod a
scale-down deletes (pod-deletion-cost first, then readiness and age); the real kube-scheduler
places them, preempting lower-priority placeholders. This file is only the node side:

- each node registers with a capacity of its own (an Autopilot node is sized to its pods) and
  keeps its Lease renewed, as the kubelet's heartbeat;
- a pod bound to one of its nodes starts: the agent's container through kubelet.Pod (PID 1 of
  its own PID namespace, its cgroup, its CSI files), any other container (the spare-capacity
  placeholder's pause) as a stand-in that only holds its place, since pause does nothing but
  wait for a signal and exits on SIGTERM;
- the downward API gets the pod's real name and namespace, and the projected service-account
  token is a real one: the TokenRequest API, bound to the pod, written with the cluster CA where
  the agent reads them, so the worker keeps its own deletion cost through the real API server
  and the stack's admission policy;
- readiness is the container's readinessProbe (HTTP GET on the named port, every periodSeconds)
  written to the pod's Ready condition with its transition time, which is what the controllers
  count for minReadySeconds and availability;
- a pod given a deletionTimestamp is terminated with its deletionGracePeriodSeconds (preStop,
  SIGTERM to PID 1, SIGKILL at the end: kubelet.Pod.terminate), then deleted for good.

Not here: container restarts, liveness and startup probes, volumes other than the CSI files,
networking (the pods share this host's loopback).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from term.kubelet import REPO_ROOT, ContainerSpec, Pod

AGENT_ROLE_LABEL = ("gke-voice-agents/role", "agent")
ZONE_LABEL = "topology.kubernetes.io/zone"
LEASE_NAMESPACE = "kube-node-lease"
# The kubelet renews its Lease every 10 s (nodeLeaseDurationSeconds 40 / 4, kubelet defaults).
LEASE_RENEW_S = 10.0
LEASE_DURATION_S = 40
LOOP_S = 0.2


def load_controlplane():
    """tests/k8s/controlplane.py (standard library only) from the agent's venv."""
    name = "gke_voice_agents_controlplane"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "k8s" / "controlplane.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NodeShape:
    """What a node offers the scheduler (status.capacity = allocatable here)."""

    name: str
    cpu: str
    memory: str
    zone: str = "us-central1-a"
    pods: int = 32  # Autopilot's default maximum pods per node

    def resources(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods), "ephemeral-storage": "100Gi"}


@dataclass
class RunningPod:
    """One pod this kubelet runs: the API object's identity and what runs it."""

    name: str
    uid: str
    node: str
    labels: dict[str, str]
    agent: Pod | None = None           # the agent container (kubelet.Pod), else a placeholder stand-in
    ready: bool = False
    ready_since: str | None = None
    next_probe: float = 0.0
    probe_period: float = 10.0
    probe_url: str | None = None
    started_at: str = field(default_factory=now_rfc3339)
    terminating: bool = False
    deleted: threading.Event = field(default_factory=threading.Event)
    annotations: dict[str, str] = field(default_factory=dict)


def _named_port_env(container: dict[str, Any], port: Any, env: dict[str, str], rendered: dict[str, str]) -> int:
    """The port a probe names, where the process really listens: the container's port number
    for that name, found as the value of the rendered env that configures it, taken from the
    env the process got (the harness moves ports to free ones: pods share this host)."""
    number = port if isinstance(port, int) else next(
        p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
    for key, value in rendered.items():
        if value == str(number) and key in env:
            return int(env[key])
    return int(number)


class Kubelet:
    """Runs every pod that the real scheduler binds to this kubelet's nodes, until `stop()`."""

    def __init__(self, cluster, namespace: str, nodes: list[NodeShape], *,
                 agent_spec: Callable[[dict[str, Any], str], ContainerSpec],
                 start_agent: Callable[[str, ContainerSpec], Pod]):
        self.cluster, self.namespace, self.nodes = cluster, namespace, nodes
        self.agent_spec, self.start_agent = agent_spec, start_agent
        self.pods: dict[str, RunningPod] = {}
        self.gone: dict[str, RunningPod] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="term-kubelet", daemon=True)

    # ---- nodes ------------------------------------------------------------------------------
    def register(self) -> "Kubelet":
        for node in self.nodes:
            self.cluster.call("POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": {
                    "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    ZONE_LABEL: node.zone, "topology.kubernetes.io/region": node.zone.rsplit("-", 1)[0]}},
            })
            self._node_status(node)
            self._renew_lease(node, create=True)
        self._thread.start()
        return self

    def _node_status(self, node: NodeShape) -> None:
        now = now_rfc3339()
        self.cluster.call("PATCH", f"/api/v1/nodes/{node.name}/status", {"status": {
            "capacity": node.resources(), "allocatable": node.resources(),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "term harness",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node.name}],
            "nodeInfo": {"kubeletVersion": load_controlplane().version(), "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "term-harness://1",
                         "kernelVersion": "", "osImage": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }}, content_type="application/merge-patch+json")

    def _renew_lease(self, node: NodeShape, create: bool = False) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": node.name, "namespace": LEASE_NAMESPACE},
                 "spec": {"holderIdentity": node.name, "leaseDurationSeconds": LEASE_DURATION_S, "renewTime": now}}
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{node.name}"
        self.cluster.call("PATCH", path, lease, content_type="application/apply-patch+yaml",
                          query={"fieldManager": "term-kubelet", "force": "true"})

    # ---- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        next_lease = time.monotonic() + LEASE_RENEW_S
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_lease:
                    for node in self.nodes:
                        self._renew_lease(node)
                    next_lease = time.monotonic() + LEASE_RENEW_S
                self._sync()
            except Exception as exc:  # noqa: BLE001 - kept for the test to report, the loop goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(LOOP_S)

    def _sync(self) -> None:
        ours = {n.name for n in self.nodes}
        listed = self.cluster.call("GET", f"/api/v1/namespaces/{self.namespace}/pods")["items"]
        present = set()
        for pod in listed:
            node = pod["spec"].get("nodeName")
            if node not in ours:
                continue
            name = pod["metadata"]["name"]
            present.add(name)
            running = self.pods.get(name)
            if running is None and not pod["metadata"].get("deletionTimestamp"):
                running = self._start(pod)
            if running is None:
                self._delete_now(pod)
                continue
            running.annotations = dict(pod["metadata"].get("annotations") or {})
            if pod["metadata"].get("deletionTimestamp") and not running.terminating:
                self._terminate(pod, running)
            # the kubelet goes on probing a terminating container: a draining worker turns unready
            self._probe(running)
        with self._lock:
            for name in [n for n in self.pods if n not in present]:
                self.gone[name] = self.pods.pop(name)
                self.gone[name].deleted.set()

    def _start(self, pod: dict[str, Any]) -> RunningPod:
        metadata, spec = pod["metadata"], pod["spec"]
        labels = dict(metadata.get("labels") or {})
        running = RunningPod(metadata["name"], metadata["uid"], spec["nodeName"], labels)
        if labels.get(AGENT_ROLE_LABEL[0]) == AGENT_ROLE_LABEL[1]:
            running.agent = self.start_agent(metadata["name"], self.agent_spec(pod, self._credentials(pod)))
            container = spec["containers"][0]
            probe = container.get("readinessProbe") or {}
            http = probe.get("httpGet") or {}
            rendered = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
            port = _named_port_env(container, http.get("port"), dict(running.agent.spec.env), rendered)
            running.probe_url = f"http://127.0.0.1:{port}{http.get('path', '/')}"
            running.probe_period = float(probe.get("periodSeconds", 10))
        else:
            running.ready, running.ready_since = True, now_rfc3339()
        with self._lock:
            self.pods[running.name] = running
        self._status(running)
        return running

    def _credentials(self, pod: dict[str, Any]) -> str:
        """The projected volume of the pod's service-account token: a token bound to this pod
        from the TokenRequest API and the cluster CA, written to a directory of the pod's own."""
        directory = self.cluster.workdir / "pods" / pod["metadata"]["name"] / "serviceaccount"
        directory.mkdir(parents=True, exist_ok=True)
        token = self.cluster.request_token(self.namespace, pod["spec"].get("serviceAccountName", "default"), pod=pod)
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_text(self.cluster.pki.ca.read_text())
        return str(directory)

    def _probe(self, running: RunningPod) -> None:
        if running.agent is None or time.monotonic() < running.next_probe:
            return
        termination = running.agent.termination
        if termination is not None and termination.done.is_set():
            return  # _finish writes the last status
        running.next_probe = time.monotonic() + running.probe_period
        ok = False
        if running.agent.running():
            try:
                with urllib.request.urlopen(running.probe_url, timeout=3) as response:
                    ok = 200 <= response.status < 400
            except OSError:
                ok = False
        if ok != running.ready:
            running.ready = ok
            running.ready_since = now_rfc3339()
            self._status(running)

    def _status(self, running: RunningPod, *, terminated: int | None = None) -> None:
        ready = "True" if running.ready and terminated is None else "False"
        since = running.ready_since or running.started_at
        state = ({"terminated": {"exitCode": terminated, "finishedAt": now_rfc3339(), "startedAt": running.started_at}}
                 if terminated is not None else {"running": {"startedAt": running.started_at}})
        status = {
            "phase": "Running" if terminated is None else ("Succeeded" if terminated == 0 else "Failed"),
            "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": running.started_at,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": since},
                {"type": "Ready", "status": ready, "lastTransitionTime": since},
            ],
        }
        try:
            self.cluster.call("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{running.name}/status",
                              {"status": status}, content_type="application/merge-patch+json")
        except load_controlplane().ApiError as error:
            if error.status != 404:  # gone already: nothing left to report on
                raise

    def _terminate(self, pod: dict[str, Any], running: RunningPod) -> None:
        running.terminating = True
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if running.agent is None:
            # pause exits on SIGTERM at once
            self._finish(running, 0)
            return
        if grace is not None:
            running.agent.spec = dataclasses.replace(running.agent.spec, grace_seconds=float(grace))
        termination = running.agent.terminate()

        def finish() -> None:
            termination.done.wait()
            self._finish(running, termination.returncode if termination.returncode is not None else 137)

        threading.Thread(target=finish, name=f"finish-{running.name}", daemon=True).start()

    def _finish(self, running: RunningPod, code: int) -> None:
        try:
            self._status(running, terminated=code)
            self.cluster.call("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{running.name}",
                              {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                               "preconditions": {"uid": running.uid}})
        except Exception as exc:  # noqa: BLE001
            if "NotFound" not in str(exc) and "404" not in str(exc):
                self.errors.append(f"finishing {running.name}: {exc}")

    def _delete_now(self, pod: dict[str, Any]) -> None:
        self.cluster.call("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{pod['metadata']['name']}",
                          {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})

    # ---- for the scenarios -----------------------------------------------------------------------
    def all_pods(self) -> dict[str, RunningPod]:
        with self._lock:
            return {**self.gone, **self.pods}

    def wait_pod(self, predicate: Callable[[RunningPod], bool], what: str, timeout: float) -> RunningPod:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pod in self.all_pods().values():
                if predicate(pod):
                    return pod
            if self.errors:
                raise RuntimeError(f"the harness kubelet failed: {self.errors[-1]}")
            time.sleep(LOOP_S)
        raise TimeoutError(f"{what} within {timeout}s (pods: {sorted(self.all_pods())}; errors: {self.errors[-3:]})")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for running in self.all_pods().values():
            if running.agent is not None:
                running.agent.kill()


def json_patch(obj: Any) -> bytes:
    return json.dumps(obj).encode()
