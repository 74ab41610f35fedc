"""A kubelet stand-in for one container: start it as PID 1, terminate it the way Kubernetes does.

Fidelity that matters for drain behaviour:
- The container command runs as PID 1 of its own PID namespace (`unshare --pid --fork`), so a
  shell that installs no SIGTERM handler ignores SIGTERM exactly as it does in a pod.
- Termination: the grace clock starts, the preStop hook runs (counted inside grace), then
  SIGTERM goes to PID 1 only, then SIGKILL takes the whole namespace when grace runs out.
- Secrets Store CSI volumes (GKE's Secret Manager add-on): the files the provider would write
  are written to a per-pod directory and the env that points into the mount is pointed there
  (see SecretVolume).
- CPU: the container runs in cgroups of its own with the Deployment's CPU limit as quota, seen
  as its cgroup root (helpers/pod_cgroup.py), so the load the worker reports is its own.
Everything else about the pod (image, network) is out of scope and stays real-host.
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
# The CSI driver of GKE's Secret Manager add-on (a managed build of the Secrets Store CSI driver
# with GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp); its SecretProviderClasses
# say `provider: gke`.
SECRETS_STORE_DRIVER = "secrets-store-gke.csi.k8s.io"
SECRETS_STORE_PROVIDER = "gke"


@dataclass(frozen=True)
class SecretVolume:
    """A Secrets Store CSI volume as the container sees it, standing in for the driver.

    Imitated: the provider (secrets-store-csi-driver-provider-gcp, config/config.go: each entry
    of the SecretProviderClass's `parameters.secrets` YAML string has a `resourceName`
    projects/*/secrets/*/versions/* and a relative `path`) fetches each listed secret version
    from Secret Manager and writes its payload, byte for byte, to <mountPath>/<path>, before the
    container starts. Here the payloads come from a mapping resourceName -> value that the test
    supplies (an imitated Secret Manager), and the files go to a per-pod directory on the host
    (Pod mounts them), since the test cannot mount at the real path. Not imitated: rotation,
    file modes, Workload Identity (the real mount fails when the pod's principal may not read a
    secret; tests/policy checks the grants)."""

    name: str
    mount_path: str
    files: Mapping[str, str] = field(repr=False)  # path inside the mount -> secret payload

    def mount(self, pod_dir: Path) -> Path:
        """Write the files under pod_dir/<volume name>, as the provider writes the mount."""
        root = pod_dir / self.name
        for path, value in self.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(value)
        return root

    def rebase(self, value: str, root: Path) -> str:
        """`value` pointed at `root` when it is the mount path or under it; else unchanged."""
        if value == self.mount_path or value.startswith(self.mount_path.rstrip("/") + "/"):
            return str(root) + value[len(self.mount_path):]
        return value


@dataclass(frozen=True)
class ContainerSpec:
    """What the rendered Deployment says about running and stopping the agent container."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    grace_seconds: float
    pre_stop: Mapping[str, Any] | None
    drain_timeout_seconds: float
    # resources.limits.cpu in millicores: the pod cgroup's quota (helpers/pod_cgroup.py)
    cpu_limit_millis: int | None = None
    # the container's Secrets Store CSI mounts, written per pod by Pod (SecretVolume)
    secret_volumes: tuple[SecretVolume, ...] = ()

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


def container_spec(
    deployment: dict,
    overrides: Mapping[str, str],
    *,
    manifests_dir: Path | None = None,
    secret_manager: Mapping[str, str] | None = None,
) -> ContainerSpec:
    """Command, args, plain env, grace and preStop exactly as rendered. Env that comes from
    Secrets (secretKeyRef: the LiveKit URL and credentials in the kubernetesSecret mode) is not
    in the manifest: `overrides` supplies it, pointed at the local server. Files from Secrets
    Store CSI volumes come from `secret_manager` (resourceName -> value) through the
    SecretProviderClasses in `manifests_dir`, the directory the Deployment was rendered into."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    plain = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    # the downward API (valueFrom.fieldRef) is the kubelet's to fill, as it would in the cluster
    plain.update(_downward_api(deployment, container))
    from_secrets = {e["name"] for e in container.get("env", []) if "valueFrom" in e} - set(plain)
    missing = from_secrets - set(overrides)
    if missing:
        raise ValueError(f"the Deployment reads {sorted(missing)} from a Secret; the test must supply them")
    volumes = secret_volumes(deployment, manifests_dir, secret_manager or {})
    _check_file_env(plain, container, volumes)
    argv = tuple(str(w) for w in (container.get("command") or []) + (container.get("args") or []))
    return ContainerSpec(
        argv=argv,
        env={**plain, **overrides},
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
        pre_stop=(container.get("lifecycle") or {}).get("preStop"),
        drain_timeout_seconds=float(plain.get("AGENT_DRAIN_TIMEOUT_SECONDS", 3600)),
        cpu_limit_millis=_cpu_limit(container),
        secret_volumes=volumes,
    )


def secret_provider_classes(deployment: dict, manifests_dir: Path | None) -> dict[str, dict]:
    """The SecretProviderClass of each Secrets Store CSI volume the container mounts, by volume
    name, found among the manifests rendered next to the Deployment (same namespace, as the
    driver looks it up). Fails the way the mount would: a class not found, another provider."""
    pod = deployment["spec"]["template"]["spec"]
    mounted = {m["name"] for m in pod["containers"][0].get("volumeMounts", [])}
    namespace = (deployment.get("metadata") or {}).get("namespace", "default")
    classes = {}
    for volume in pod.get("volumes", []):
        csi = volume.get("csi") or {}
        if csi.get("driver") != SECRETS_STORE_DRIVER or volume["name"] not in mounted:
            continue
        wanted = (csi.get("volumeAttributes") or {}).get("secretProviderClass")
        if manifests_dir is None:
            raise ValueError(f"volume {volume['name']!r} mounts SecretProviderClass {wanted!r}: "
                             "pass the manifests directory the Deployment was rendered into")
        spc = _find_secret_provider_class(manifests_dir, wanted, namespace)
        if spc is None:
            raise LookupError(f"volume {volume['name']!r} mounts SecretProviderClass {wanted!r}, but "
                              f"{manifests_dir} holds none of that name in namespace {namespace!r}: "
                              "the driver would fail the mount and the pod would never start")
        provider = (spc.get("spec") or {}).get("provider")
        if provider != SECRETS_STORE_PROVIDER:
            raise ValueError(f"SecretProviderClass {wanted!r} names provider {provider!r}; the "
                             f"{SECRETS_STORE_DRIVER} driver serves {SECRETS_STORE_PROVIDER!r} only")
        classes[volume["name"]] = spc
    return classes


def _find_secret_provider_class(manifests_dir: Path, name: str | None, namespace: str) -> dict | None:
    for path in sorted(manifests_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            metadata = (doc or {}).get("metadata") or {}
            if (doc or {}).get("kind") == "SecretProviderClass" and metadata.get("name") == name \
                    and metadata.get("namespace", "default") == namespace:
                return doc
    return None


def secret_files(spc: dict) -> dict[str, str]:
    """path -> resourceName of a SecretProviderClass: `parameters.secrets` is a YAML string
    (a list of {resourceName, path}), parsed as the provider parses it."""
    entries = yaml.safe_load(spc["spec"]["parameters"]["secrets"]) or []
    return {str(entry["path"]): str(entry["resourceName"]) for entry in entries}


def secret_volumes(deployment: dict, manifests_dir: Path | None,
                   secret_manager: Mapping[str, str]) -> tuple[SecretVolume, ...]:
    """Each Secrets Store CSI mount of the container with the payloads its files would get."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mount_paths = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    volumes = []
    for name, spc in secret_provider_classes(deployment, manifests_dir).items():
        files = {}
        for path, resource in secret_files(spc).items():
            if resource not in secret_manager:
                raise LookupError(f"SecretProviderClass {spc['metadata']['name']!r} lists {resource} "
                                  f"(path {path}), which the imitated Secret Manager does not hold: "
                                  "the provider would fail the mount (NotFound)")
            files[path] = secret_manager[resource]
        volumes.append(SecretVolume(name, mount_paths[name], files))
    return tuple(volumes)


def _check_file_env(env: Mapping[str, str], container: dict, volumes: tuple[SecretVolume, ...]) -> None:
    """Every rendered *_FILE env must point into a volume the container mounts and this
    stand-in provides; otherwise the file would not exist in the pod (or not here)."""
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    provided = {v.mount_path for v in volumes}
    for name, value in env.items():
        if not name.endswith("_FILE"):
            continue
        under = [m for m in mounts if value == m or value.startswith(m.rstrip("/") + "/")]
        if not under:
            raise ValueError(f"{name}={value!r} points under no volume the container mounts "
                             f"({', '.join(sorted(mounts)) or 'none'}): the file would not exist in the pod")
        mount = max(under, key=len)
        if mount not in provided:
            raise ValueError(f"{name}={value!r} is under {mount} (volume {mounts[mount]!r}), which this "
                             "stand-in does not provide: it writes Secrets Store CSI volumes only")


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
    from helpers.pod_cgroup import cpu_millis

    limit = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
    return cpu_millis(str(limit)) if limit else None


def mount_secret_volumes(spec: ContainerSpec, pod_dir: Path | None) -> dict[str, str]:
    """Write the spec's Secrets Store CSI volumes under `pod_dir` and return the container env
    with every value under a volume's mountPath pointed at the written copy."""
    env = dict(spec.env)
    if not spec.secret_volumes:
        return env
    if pod_dir is None:
        raise ValueError(f"the pod mounts {[v.name for v in spec.secret_volumes]} (Secrets Store CSI): "
                         "give it a directory of its own for the files (volumes_dir)")
    for volume in spec.secret_volumes:
        root = volume.mount(pod_dir)
        env = {name: volume.rebase(value, root) for name, value in env.items()}
    return env


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

    def __init__(self, spec: ContainerSpec, *, env: Mapping[str, str], log_path: Path,
                 volumes_dir: Path | None = None):
        from helpers.pod_cgroup import DEFAULT_CPU_LIMIT_MILLIS
        from helpers.worker_process import AGENT_DIR, start_worker

        self.spec = spec
        # `volumes_dir`: this pod's own directory for its Secrets Store CSI mounts
        self.env = mount_secret_volumes(spec, volumes_dir)
        # The container's CPU limit as a cgroup of its own (helpers/pod_cgroup.py), so the
        # worker's load is its own CPU against that limit, as in the pod, and not the whole test
        # machine's. A spec without a limit (recovery_pods.py's hand-made pods) gets the
        # harness's default. The PID namespace is made outside the group, the group inside it.
        self.worker = start_worker(
            spec.argv, {**env, **self.env}, cwd=AGENT_DIR, log_path=log_path,
            cpu_limit_millis=spec.cpu_limit_millis or DEFAULT_CPU_LIMIT_MILLIS,
            outside=["unshare", "--pid", "--fork", "--kill-child", "--"],
        )
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
        self.worker.cgroup.remove()
        t.done.set()

    def kill(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
            self.worker.process.wait(timeout=10)
        self.worker.cgroup.remove()
