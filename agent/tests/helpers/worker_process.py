"""Start the agent worker as a real process from an explicit argv + env, and watch its logs.

``start_worker`` takes the command and environment verbatim, so a test can pass exactly what
the rendered Kubernetes Deployment says (command + args + env) and prove that this, and not a
test-friendly variant, is what drains on SIGTERM. ``contract_argv`` / ``worker_env`` build the
agent contract's own command and environment for tests that start from settings instead.

Every worker runs as in a pod: ``start_worker`` puts it in cgroups of its own with a CPU limit
(pod_cgroup.py, default 1 vCPU), so the load it reports is its own CPU against that limit and
never the whole test machine's.

Gemini cannot be reached from tests: ``worker_env(fake_gemini=True)`` puts the test-only
``fake_gemini`` directory first on PYTHONPATH; its ``sitecustomize.py`` replaces the single
seam ``voice_agent.model.build_realtime_model`` with a local fake. Command and arguments stay
untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .livekit_server import TEST_LOAD_THRESHOLD, LiveKitServer, free_port, wait_for_spare_capacity
from .pod_cgroup import DEFAULT_CPU_LIMIT_MILLIS, PodCgroup

AGENT_DIR = Path(__file__).resolve().parents[2]
FAKE_GEMINI_DIR = AGENT_DIR / "tests" / "fake_gemini"
# the agent runtime contract (CONTRACT.md): exec form, production mode, never `dev`
CONTRACT_ARGV = ("python", "-m", "voice_agent", "start")

LogLine = dict[str, Any]
# How long a worker may take to register and boot a job process on a busy 2-core machine
# (seen: 40 s for the forkserver alone at load average 20+).
SPARE_CAPACITY_TIMEOUT_S = 180.0


# What a pod with readOnlyRootFilesystem and an emptyDir at /tmp gives the process: a private
# mount namespace where / is read-only and /tmp is a fresh, empty, writable tmpfs.
# The wrapper proves both properties in the very shell that then execs the command; if either
# fails, the command never starts.
# A checkout under /tmp would vanish under the fresh tmpfs (and the venv's python with it), so
# the host's /tmp stays reachable at /mnt inside the private mount namespace and the working
# directory is bound back, read-only, at its own path.
_READONLY_ROOT = (
    "mount --bind / / && mount -o remount,bind,ro / "
    "&& mount --bind /tmp /mnt "
    "&& mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp "
    '&& case "$PWD/" in /tmp/*) mkdir -p "$PWD" && mount --bind "/mnt/${PWD#/tmp/}" "$PWD" '
    '&& mount -o remount,bind,ro "$PWD" && cd "$PWD";; esac '
    "&& ! touch /readonly-root-probe 2>/dev/null && touch /tmp/readonly-root-probe "
    '&& exec "$@"'
)


def contract_argv() -> list[str]:
    return list(CONTRACT_ARGV)


def readonly_root_argv(argv: Sequence[str]) -> list[str]:
    """Wrap ``argv`` so it runs with a read-only root filesystem and an empty writable /tmp.

    The wrapper execs the command (same PID), so signals still reach it directly. Needs
    CAP_SYS_ADMIN for the mount namespace; see ``readonly_root_supported``.
    """
    return ["unshare", "--mount", "sh", "-c", _READONLY_ROOT, "sh", *argv]


def readonly_root_supported() -> bool:
    try:
        result = subprocess.run(
            readonly_root_argv(["true"]),
            capture_output=True,
            timeout=10,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


# Tests that find a call's log lines by the room name they chose: the worker's default,
# AGENT_LOG_CALL_IDS=off, removes room names from every line (voice_agent/privacy.py), which
# test_call_ids_integration.py proves on a real call.
PLAIN_CALL_IDS = {"AGENT_LOG_CALL_IDS": "plain"}


def worker_env(
    server: LiveKitServer,
    *,
    health_port: int | None = None,
    metrics_port: int | None = None,
    fake_gemini: bool = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the contract command: our venv first on PATH so `python` is ours."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "LIVEKIT_URL": server.ws_url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "GOOGLE_CLOUD_PROJECT": "voice-agent-test",
        "GOOGLE_CLOUD_LOCATION": "us-central1",
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "AGENT_HTTP_HOST": "127.0.0.1",
        # The worker's load is its own pod cgroup's CPU (start_worker); the threshold is the
        # test server's agents.target_load, which must agree with it (livekit_server.py): the
        # tests study calls, not admission at 0.7 (test_admission*.py, tests/k8s, tests/policy).
        "AGENT_LOAD_THRESHOLD": str(TEST_LOAD_THRESHOLD),
        "AGENT_HEALTH_PORT": str(health_port or free_port()),
        "AGENT_METRICS_PORT": str(metrics_port or free_port()),
        # the tests find a call's lines by the room name they chose (PLAIN_CALL_IDS above);
        # test_call_ids_integration.py removes it to run the worker's own default
        **PLAIN_CALL_IDS,
    }
    if fake_gemini:
        env["PYTHONPATH"] = str(FAKE_GEMINI_DIR)
    env.update(extra or {})
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    log_path: Path
    env: Mapping[str, str]
    cgroup: PodCgroup
    lines: list[LogLine] = field(default_factory=list)
    raw_lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AGENT_HEALTH_PORT']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AGENT_METRICS_PORT']}/metrics"

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                parsed = _parse(raw)
                with self._cond:
                    self.raw_lines.append(raw.rstrip("\n"))
                    if parsed is not None:
                        self.lines.append(parsed)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def events(self, event: str) -> list[LogLine]:
        with self._cond:
            return [line for line in self.lines if line.get("event") == event]

    def messages(self, message: str) -> list[LogLine]:
        with self._cond:
            return [line for line in self.lines if line.get("message") == message]

    def wait_for(self, predicate: Callable[[LogLine], bool], timeout: float, what: str) -> LogLine:
        """First log line matching ``predicate``; fails with the log tail if none in time."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader_alive()):
                    break
                self._cond.wait(min(remaining, 0.5))
        raise AssertionError(f"no log line for {what} within {timeout}s\n{self.tail()}")

    def wait_for_event(self, event: str, timeout: float = 30.0, **fields: Any) -> LogLine:
        def matches(line: LogLine) -> bool:
            return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

        return self.wait_for(matches, timeout, f"event={event} {fields or ''}")

    def wait_for_message(self, message: str, timeout: float = 30.0) -> LogLine:
        return self.wait_for(lambda line: line.get("message") == message, timeout, repr(message))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Signal the worker process only (as the kubelet does PID 1), not its children."""
        os.kill(self.process.pid, signum)

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def stop(self, timeout: float = 20.0) -> None:
        """Best-effort cleanup: TERM, then a second TERM (force exit), then KILL."""
        if self.process.poll() is None:
            for signum in (signal.SIGTERM, signal.SIGTERM):
                try:
                    self.signal(signum)
                    self.process.wait(timeout / 2)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.cgroup.remove()
        if self._reader is not None:
            self._reader.join(5)

    def tail(self, count: int = 40) -> str:
        with self._cond:
            return "\n".join(self.raw_lines[-count:])

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()


def start_worker(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path = AGENT_DIR,
    log_path: Path,
    cpu_limit_millis: int = DEFAULT_CPU_LIMIT_MILLIS,
    memory_limit_bytes: int | None = None,
    cgroup: PodCgroup | None = None,
    outside: Sequence[str] = (),
) -> WorkerProcess:
    """Start ``argv`` with exactly ``env`` (nothing inherited) in ``cwd``; stdout+stderr logged.

    The process runs in a pod cgroup of its own (pod_cgroup.py) with ``cpu_limit_millis`` as its
    CPU limit and ``memory_limit_bytes`` (None: no limit) as its memory limit; ``stop()`` removes
    it. ``cgroup``: a group the caller made (and may read or tune) instead of a new one; stop()
    still removes it. ``outside``: a command prefix that runs before the process enters its
    group and execs into it (the TERM harness's PID namespace). Raises PodCgroupError where no
    pod cgroup can be made (not root, no cgroup filesystem): never a worker measuring the
    machine instead."""
    group = cgroup or PodCgroup.create(cpu_limit_millis, memory_limit_bytes)
    try:
        process = subprocess.Popen(
            [*outside, *group.argv(argv)],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
    except BaseException:
        group.remove()
        raise
    worker = WorkerProcess(process=process, log_path=log_path, env=env, cgroup=group)
    worker._reader = threading.Thread(target=worker._read, name="worker-log-reader", daemon=True)
    worker._reader.start()
    return worker


def wait_until_registered(worker: WorkerProcess, timeout: float = 60.0) -> LogLine:
    return worker.wait_for_event("worker_registered", timeout)


# livekit-agents 1.8.9 ipc/supervised_proc.py: logged by the worker once a job process is up
PROCESS_INITIALIZED = "process initialized"


def wait_until_serving(worker: WorkerProcess, timeout: float = SPARE_CAPACITY_TIMEOUT_S) -> float:
    """Registered, one job process warm, and spare capacity reported: a room placed now gets
    this worker's agent without waiting for a process to boot. Returns the load seen.

    Registered is not enough: on a busy machine the framework registers before its idle job
    processes are up (livekit-agents 1.8.9 ipc/proc_pool.py start() waits 12 s for them) and
    boots them afterwards, within the pod's CPU limit: meanwhile its own load may read about
    1.0 (a room offered then gets no agent, once), or read low while the boot waits for CPU,
    and a call taken then waits for a process (seen: 40 s at load average 35)."""
    deadline = time.monotonic() + timeout
    worker.wait_for_event("worker_registered", timeout)
    worker.wait_for_message(PROCESS_INITIALIZED, max(1.0, deadline - time.monotonic()))
    return wait_for_spare_capacity(worker.metrics_url, max(1.0, deadline - time.monotonic()))


@contextlib.contextmanager
def registered_worker(
    argv: Sequence[str], env: Mapping[str, str], *, log_path: Path, **limits: int | None
) -> Iterator[WorkerProcess]:
    """A worker started from ``argv``/``env``, serving (``wait_until_serving``), always stopped
    after; ``limits``: start_worker's cpu_limit_millis / memory_limit_bytes."""
    worker = start_worker(argv, env, log_path=log_path, **limits)
    try:
        wait_until_serving(worker)
        yield worker
    finally:
        worker.stop()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def _parse(raw: str) -> LogLine | None:
    raw = raw.strip()
    if not raw.startswith("{"):
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
