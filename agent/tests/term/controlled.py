"""The TERM scenarios with the real controllers choosing the victims.

Same calls, same verdicts as scenarios.py (calls lost, reroute time, who exits when); what
changes is who decides. A real kube-apiserver, kube-controller-manager and kube-scheduler
(tests/k8s/controlplane.py, scripts/setup-kube.sh) hold the stack's rendered objects; the
Deployment controller rolls out, the ReplicaSet controller picks which pod a scale-down
deletes, the scheduler places pods on the nodes the harness registers (nodes.py), and the
harness's kubelet runs them as kubelet.py does. The only thing the test does to the cluster is
what a person or the HPA does: a new release (a changed pod template) and a new replica count
(the scale subresource, as the HPA writes it).

Objects applied: the stack's namespace, service accounts, RBAC, admission policy, the
SecretProviderClass of the LiveKit files (its CRD vendored), the agent's Deployment and its
PodDisruptionBudget, and in the placeholder scenario the PriorityClass and placeholder
Deployment. Not the HPA (nothing serves it metrics here: the test is its hand), the
PodMonitoring, the NetworkPolicies or the metrics adapter (nothing here acts on them).
Time is scaled as in scenarios.py: the drain timeout becomes SCALED_DRAIN_S with the rendered
margin to SIGKILL kept, in the Deployment the server holds.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import importlib.util
import math
import string
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from helpers.livekit_server import LiveKitServer

from term import scenarios
from helpers.worker_process import PLAIN_CALL_IDS
from term.kubelet import REPO_ROOT, ContainerSpec, Pod, container_spec, pre_stop_seconds
from term.nodes import Kubelet, NodeShape, load_controlplane

APPLIED_KINDS = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ValidatingAdmissionPolicy",
                 "ValidatingAdmissionPolicyBinding", "SecretProviderClass", "PodDisruptionBudget", "PriorityClass"}
CRD = load_controlplane().ROOT / "tests" / "schemas" / "secretproviderclass-crd.yaml"
AGENT_DEPLOYMENT = "voice-agent"
# The drain timeout in the Deployment the controllers read: scenarios.SCALED_DRAIN_S (60 s) was
# outlived here on a saturated machine (answering the two new calls after SIGTERM took 44 s,
# the check of the old calls came after the drain had closed them). A passing run never waits
# for it: the drain ends when the old calls hang up.
CONTROLLED_DRAIN_S = 180
# k8s/runtime.py ROLE_LABEL = PLACEHOLDER_ROLE: the spare-capacity placeholder's pods
PLACEHOLDER_LABEL = ("gke-voice-agents/role", "capacity-placeholder")
WAIT_S = 120.0


def rendered_objects(manifests_dir: Path) -> list[dict[str, Any]]:
    return [doc for path in sorted(manifests_dir.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def scaled_deployment(deployment: dict[str, Any], drain_timeout: float) -> dict[str, Any]:
    """The Deployment with the drain timeout scaled and the rendered margin from drain end to
    SIGKILL kept (ContainerSpec.with_timing, applied to the object the controllers read)."""
    scaled = copy.deepcopy(deployment)
    pod = scaled["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    drain = float(env["AGENT_DRAIN_TIMEOUT_SECONDS"]["value"])
    pre_stop = pre_stop_seconds((container.get("lifecycle") or {}).get("preStop"))
    margin = pod["terminationGracePeriodSeconds"] - pre_stop - drain
    env["AGENT_DRAIN_TIMEOUT_SECONDS"]["value"] = str(int(drain_timeout))
    pod["terminationGracePeriodSeconds"] = int(pre_stop + drain_timeout + margin)
    return scaled


def _domain_pod_requests():
    """domain/pod_requests.py, the stack's one home of the effective-request arithmetic (spare
    capacity and cost use it), loaded by path: it imports only the standard library."""
    name = "gke_voice_agents_pod_requests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "domain" / "pod_requests.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pod_requests(pod_spec: dict[str, Any]) -> tuple[int, int]:
    """(millicores, MiB) the scheduler counts for a pod (KEP-753: app containers plus native
    sidecars, or an ordinary init container's phase if that needs more), rounded up as node
    sizes are whole millicores and MiB."""
    totals = _domain_pod_requests().effective_pod_requests(pod_spec["containers"], pod_spec.get("initContainers", ()))
    return math.ceil(totals["cpu"]), math.ceil(totals["memory"])


class ControlledCluster(scenarios.Cluster):
    """scenarios.Cluster whose pods the controllers create and the harness kubelet runs; each
    agent pod is named a, b, c... in the order it starts (Outcome.pods)."""

    def __init__(self, server: LiveKitServer, workdir: Path, scenario: str, controlplane, manifests_dir: Path,
                 nodes: list[NodeShape], *, drain_timeout: float = CONTROLLED_DRAIN_S,
                 placeholders: bool = False, placeholder_size: tuple[int, int] | None = None):
        super().__init__(server, workdir, scenario)
        self.cp, self.manifests_dir = controlplane, manifests_dir
        self.objects = rendered_objects(manifests_dir)
        self.namespace = self.deployment()["metadata"]["namespace"]
        self.drain_timeout, self.placeholders = drain_timeout, placeholders
        # (millicores, MiB) for the placeholder's container instead of the rendered size
        self.placeholder_size = placeholder_size
        self.letters: dict[str, str] = {}
        self.kubelet = Kubelet(controlplane, self.namespace, nodes, agent_spec=self._agent_spec,
                               start_agent=self._start_agent)

    def deployment(self, name: str = AGENT_DEPLOYMENT) -> dict[str, Any]:
        return next(o for o in self.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)

    def apply_stack(self, replicas: int) -> None:
        cp = self.cp
        cp.apply(yaml.safe_load(CRD.read_text()))
        cp.wait_for("the SecretProviderClass CRD", lambda: _established(cp, "secretproviderclasses.secrets-store.csi.x-k8s.io"))
        for obj in self.objects:
            if obj["kind"] in APPLIED_KINDS and (self.placeholders or obj["kind"] != "PriorityClass"):
                cp.apply(obj)
        # the serviceaccount and root-ca-cert-publisher controllers fill the namespace
        cp.wait_for("kube-root-ca.crt in the namespace", lambda: _exists(cp, f"/api/v1/namespaces/{self.namespace}/configmaps/kube-root-ca.crt"))
        agent = scaled_deployment(self.deployment(), self.drain_timeout)
        agent["spec"]["replicas"] = replicas
        cp.apply(agent)
        if self.placeholders:
            placeholder = copy.deepcopy(next(o for o in self.objects if o["kind"] == "Deployment" and PLACEHOLDER_LABEL
                                             in o["spec"]["template"]["metadata"].get("labels", {}).items()))
            if self.placeholder_size:
                cpu, memory = self.placeholder_size
                amounts = {"cpu": f"{cpu}m", "memory": f"{memory}Mi"}
                placeholder["spec"]["template"]["spec"]["containers"][0]["resources"] = {
                    "requests": amounts, "limits": dict(amounts)}
            cp.apply(placeholder)
        self.kubelet.register()

    # ---- the kubelet's callbacks --------------------------------------------------------------
    def _agent_spec(self, pod: dict[str, Any], credentials_dir: str) -> ContainerSpec:
        """The container as the pod the controllers made says (not the rendered file), with the
        endpoints of scenarios.pod_spec, the pod's own name and namespace for the downward API,
        and its projected API credentials pointed at the real API server."""
        as_deployment = {"metadata": {"name": pod["metadata"]["name"], "namespace": self.namespace},
                         "spec": {"template": {"metadata": pod["metadata"], "spec": pod["spec"]}}}
        spec = container_spec(
            as_deployment,
            # the scenarios find a call's lines by its room name, as in scenarios.pod_spec
            {**scenarios.endpoint_overrides(self.server), **scenarios.livekit_secret_env(self.server, as_deployment),
             **PLAIN_CALL_IDS},
            manifests_dir=self.manifests_dir,
            secret_manager=scenarios.livekit_secret_manager(self.server, as_deployment, self.manifests_dir))
        env = dict(spec.env)
        env.update({
            "AGENT_POD_NAME": pod["metadata"]["name"], "AGENT_POD_NAMESPACE": pod["metadata"]["namespace"],
            "AGENT_KUBE_CREDENTIALS_DIR": credentials_dir,
            # what the kubelet puts in every container's env for the in-cluster API address
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.cp.port),
        })
        return dataclasses.replace(spec, env=env)

    def _start_agent(self, name: str, spec: ContainerSpec) -> Pod:
        letter = string.ascii_lowercase[len(self.letters)]
        self.letters[name] = letter
        return self.start_pod(letter, spec)

    # ---- what the scenarios wait for --------------------------------------------------------------
    def name_of(self, letter: str) -> str:
        return next(name for name, mine in self.letters.items() if mine == letter)

    async def agent_pod(self, letter: str) -> Pod:
        """The agent pod named `letter`, once the controllers made it and its worker registered."""
        await asyncio.to_thread(self.kubelet.wait_pod, lambda p: self.letters.get(p.name) == letter,
                                f"agent pod {letter} started", WAIT_S)
        await self.ready(letter)
        return self.outcome.pods[letter]

    async def until(self, what: str, check, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.kubelet.errors:
                raise RuntimeError(f"the harness kubelet failed: {self.kubelet.errors[-1]}")
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{what} not reached within {timeout}s")

    def scale(self, replicas: int, name: str = AGENT_DEPLOYMENT) -> None:
        """What the HPA writes: the Deployment's scale subresource."""
        self.cp.call("PATCH", f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}/scale",
                     {"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    def release(self, revision: str) -> None:
        """A new release: a changed pod template, which starts a rollout."""
        self.cp.call("PATCH", f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{AGENT_DEPLOYMENT}",
                     {"spec": {"template": {"metadata": {"annotations": {"gke-voice-agents/term-test-release": revision}}}}},
                     content_type="application/merge-patch+json")

    def deletion_cost(self, letter: str) -> str | None:
        from voice_agent.deletion_cost import ANNOTATION

        pod = self.kubelet.all_pods().get(self.name_of(letter))
        return pod.annotations.get(ANNOTATION) if pod else None

    def api_pod(self, name: str) -> dict[str, Any] | None:
        try:
            return self.cp.call("GET", f"/api/v1/namespaces/{self.namespace}/pods/{name}")
        except load_controlplane().ApiError as error:
            if error.status == 404:
                return None
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self.kubelet.stop()


def _established(cp, name: str) -> bool:
    crd = cp.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions") or [])


def _exists(cp, path: str) -> bool:
    try:
        cp.call("GET", path)
        return True
    except load_controlplane().ApiError:
        return False


# ---------------------------------------------------------------------------------------------
# Scenario 1 under the Deployment controller: a new release replaces the pod.
async def rolling_replacement(cluster: ControlledCluster, hold_s: float = 4.0) -> scenarios.Outcome:
    """Pod a holds two calls; a new release makes the Deployment controller surge pod b and,
    once b has been available for minReadySeconds, delete a. New calls must land on b, a's
    calls run to their natural end, a exits by itself once they have."""
    try:
        cluster.apply_stack(replicas=1)
        a = await cluster.agent_pod("a")
        old = [await cluster.place_call() for _ in range(2)]
        for call in old:
            await cluster.answered(call)
        cluster.release("2")
        await cluster.agent_pod("b")
        termination = await cluster.until("the controller deleting pod a", lambda: a.termination)
        await scenarios.after_sigterm(cluster, a, termination, old, hold_s)
        cluster.outcome.facts["minReadySeconds"] = cluster.deployment()["spec"].get("minReadySeconds", 0)
        cluster.outcome.facts["drain timed out logged"] = bool(a.worker.events("drain_timed_out"))
        cluster.outcome.facts["drain finished logged"] = bool(a.worker.events("drain_finished"))
        await cluster.until("pod a gone from the API", lambda: cluster.api_pod(cluster.name_of("a")) is None)
        return cluster.outcome
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------------------------
# Scale-down under the ReplicaSet controller: which pod goes.
MAX_CALLS_TO_REACH_B = 8


async def scale_down(cluster: ControlledCluster) -> scenarios.Outcome:
    """Two pods; calls end up on the newer one (b) only, so the older (a) is idle. Each worker
    keeps its own pod's deletion cost through the real API server (its bound token, the stack's
    admission policy). Then the HPA's hand scales to one: the ReplicaSet controller, which
    without the costs would delete the newer pod, must delete the idle one; b's calls go on."""
    try:
        cluster.apply_stack(replicas=1)
        a = await cluster.agent_pod("a")
        cluster.scale(2)
        await cluster.agent_pod("b")
        calls = []
        while not any(c.pod == "b" for c in calls):
            if len(calls) == MAX_CALLS_TO_REACH_B:
                raise AssertionError(f"LiveKit gave pod b none of {len(calls)} calls")
            calls.append(await cluster.place_call())
            await cluster.answered(calls[-1])
        for call in [c for c in calls if c.pod == "a"]:
            await cluster.hang_up(call)
        from voice_agent.deletion_cost import BAND_COSTS

        idle, busy = str(BAND_COSTS["idle"]), str(BAND_COSTS["busy"])
        await cluster.until("both workers' deletion costs in the API",
                            lambda: cluster.deletion_cost("a") == idle and cluster.deletion_cost("b") in (busy, str(BAND_COSTS["full"])))
        cluster.outcome.facts["cost a (idle, older)"] = cluster.deletion_cost("a")
        cluster.outcome.facts["cost b (busy, newer)"] = cluster.deletion_cost("b")
        cluster.scale(1)
        victim = await cluster.until("the ReplicaSet controller deleting a pod", lambda: next(
            (letter for letter, pod in cluster.outcome.pods.items() if pod.termination), None))
        cluster.outcome.facts["deleted"] = victim
        gone = cluster.outcome.pods[victim]
        await scenarios.wait_done(gone, gone.spec.grace_seconds + 5)
        cluster.outcome.facts["deleted pod: SIGTERM -> exit"] = gone.termination.exited_at - gone.termination.sigterm_at
        survivor = "b" if victim == "a" else "a"
        on_survivor = [c for c in calls if c.pod == survivor and c.hung_up_at is None]
        cluster.outcome.facts["calls on the kept pod still served"] = sum([await cluster.agent_in_room(c) for c in on_survivor])
        for call in on_survivor:
            await cluster.hang_up(call)
        cluster.outcome.facts["sigkilled"] = gone.termination.sigkilled
        return cluster.outcome
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------------------------
# Spare capacity under the scheduler: an evicted placeholder makes room on its node.
async def placeholder_preemption(cluster: ControlledCluster) -> scenarios.Outcome:
    """One node sized for one agent pod and one placeholder. A second agent pod does not fit
    beside them; the scheduler may preempt the placeholder (priority below every agent pod) only
    if that frees enough room. Facts: where the second agent pod went, or the scheduler's reason
    for leaving it Pending."""
    try:
        cluster.apply_stack(replicas=1)
        await cluster.agent_pod("a")
        placeholder = await asyncio.to_thread(
            cluster.kubelet.wait_pod, lambda p: p.agent is None and not p.terminating, "the placeholder running", WAIT_S)
        cluster.outcome.facts["placeholder node"] = placeholder.node
        cluster.scale(2)
        first = cluster.name_of("a")

        def second_agent_pod() -> dict[str, Any] | None:
            pods = cluster.cp.call("GET", f"/api/v1/namespaces/{cluster.namespace}/pods",
                                   query={"labelSelector": "gke-voice-agents/role=agent"})["items"]
            for pod in pods:
                if pod["metadata"]["name"] == first:
                    continue
                if pod["spec"].get("nodeName"):
                    return pod
                scheduled = next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"), {})
                # the scheduler's verdict once it has tried preemption too
                if scheduled.get("reason") == "Unschedulable" and "preemption" in scheduled.get("message", ""):
                    return pod
            return None

        pod = await cluster.until("the second agent pod bound or judged unschedulable", second_agent_pod)
        cluster.outcome.facts["b node"] = pod["spec"].get("nodeName")
        scheduled = next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"), {})
        cluster.outcome.facts["scheduler"] = scheduled.get("message", "")
        if pod["spec"].get("nodeName"):
            await cluster.agent_pod("b")
        cluster.outcome.facts["placeholder evicted"] = placeholder.deleted.is_set() or placeholder.terminating
        return cluster.outcome
    finally:
        await cluster.close()
