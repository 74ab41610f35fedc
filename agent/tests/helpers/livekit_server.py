"""Start a real ``livekit-server --dev`` on loopback for a test, and stop it.

Reusable by any test that needs a LiveKit server (the agent's own integration tests, the
controlled TERM test that runs the worker as the rendered Deployment says). Each server gets
its own key pair: "devkey" and a random 43-character secret (the dev-mode placeholder secret
"secret" is shorter than the 32 bytes HS256 wants, and PyJWT warns on every token). Every
port is chosen free at start, so several servers can run side by side: HTTP/WebSocket
signalling on 127.0.0.1, WebRTC media on one UDP port of the machine's own address (see
``media_interface``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_API_KEY = "devkey"
SERVER_START_TIMEOUT = 20.0
# The load threshold of every test worker (helpers/worker_process.worker_env and the TERM
# harness set AGENT_LOAD_THRESHOLD to it; test_readiness checks they agree). livekit-server
# v1.13.5 routes no job to a worker whose reported load is at or above its own
# agents.target_load (pkg/agent/config.go: DefaultTargetLoad 0.7; pkg/service/agentservice.go,
# JobRequestAffinity), whatever the worker's threshold. The test server is configured as
# production must be: its target_load equals the workers' threshold. With the default 0.7
# against workers at 1.0, a busy machine (load 0.7-1.0) made the server refuse rooms the
# workers would take ("no servers available") and dispatch a room's agent never again.
TEST_LOAD_THRESHOLD = 1.0


def find_livekit_server() -> str:
    """LIVEKIT_SERVER_BIN, else .tools/bin/livekit-server (scripts/setup-livekit.sh), else PATH."""
    candidates = [
        os.environ.get("LIVEKIT_SERVER_BIN", ""),
        str(REPO_ROOT / ".tools" / "bin" / "livekit-server"),
        shutil.which("livekit-server") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "livekit-server not found: run `bash scripts/setup-livekit.sh` (installs "
        ".tools/bin/livekit-server) or set LIVEKIT_SERVER_BIN"
    )


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveKitServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str = DEV_API_KEY
    api_secret: str = field(default="", repr=False)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_entries(self, message: str) -> list[dict[str, object]]:
        """Fields of the server's log lines with this message (tab-separated, JSON last)."""
        entries = []
        for line in self.log_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 6 and parts[4] == message:
                entries.append(json.loads(parts[5]))
        return entries

    def wait_for_log(
        self, message: str, timeout: float = 10.0, **fields: object
    ) -> dict[str, object]:
        """First server log entry with ``message`` and these field values (the server may log
        an event a moment after the client has seen its effect)."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log_entries(message):
                if all(entry.get(key) == value for key, value in fields.items()):
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"livekit-server never logged {message!r} with {fields}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def media_interface() -> tuple[str, str]:
    """(interface name, IPv4) of the first non-loopback interface that is up.

    WebRTC media cannot use loopback: libwebrtc, the engine inside the livekit rtc SDK, leaves
    loopback interfaces out when it gathers ICE candidates. So the server's single media port
    is bound to this one local address, while signalling and the API stay on 127.0.0.1.
    """
    import psutil

    stats = psutil.net_if_stats()
    for name, addresses in psutil.net_if_addrs().items():
        if name == "lo" or not (name in stats and stats[name].isup):
            continue
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return name, address.address
    raise RuntimeError("no non-loopback IPv4 interface: WebRTC media needs one (see docstring)")


def server_config(
    http_port: int,
    rtc_udp_port: int,
    media: tuple[str, str],
    api_key: str,
    api_secret: str,
    target_load: float = TEST_LOAD_THRESHOLD,
) -> str:
    """Signalling on 127.0.0.1 (--bind); media on one UDP port of one local address; no ICE/TCP;
    agents.target_load equal to the workers' load threshold (see TEST_LOAD_THRESHOLD)."""
    interface, address = media
    return (
        f"port: {http_port}\n"
        "keys:\n"
        f'  {api_key}: "{api_secret}"\n'
        "agents:\n"
        f"  target_load: {target_load}\n"
        "rtc:\n"
        "  tcp_port: 0\n"
        f"  udp_port: {rtc_udp_port}\n"
        "  use_external_ip: false\n"
        "  interfaces:\n"
        f"    includes: [{interface}]\n"
        "  ips:\n"
        f"    includes: [{address}/32]\n"
    )


def start_livekit_server(workdir: Path, *, binary: str | None = None) -> LiveKitServer:
    """Start ``livekit-server --dev --bind 127.0.0.1`` and wait until it answers HTTP."""
    workdir.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    config = workdir / "livekit.yaml"
    api_secret = secrets.token_urlsafe(32)
    config.write_text(
        server_config(
            http_port, free_port(socket.SOCK_DGRAM), media_interface(), DEV_API_KEY, api_secret
        ),
        encoding="utf-8",
    )
    log_path = workdir / "livekit-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary or find_livekit_server(),
                "--dev",
                "--bind",
                "127.0.0.1",
                "--node-ip",
                "127.0.0.1",
                "--config",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    server = LiveKitServer(
        process=process, port=http_port, log_path=log_path, api_secret=api_secret
    )
    try:
        _wait_until_ready(server)
    except Exception:
        server.stop()
        raise
    return server


def _wait_until_ready(server: LiveKitServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"livekit-server exited with {server.process.returncode}:\n{server.log_text()}"
            )
        try:
            with urllib.request.urlopen(server.http_url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(
        f"livekit-server not ready after {SERVER_START_TIMEOUT}s:\n{server.log_text()}"
    )


# livekit-agents 1.8.9 worker.py UPDATE_STATUS_INTERVAL: the server learns a worker's load at most
# this long after it changes; below the threshold for longer than that, the server knows too.
STATUS_INTERVAL_S = 2.5


def wait_for_spare_capacity(metrics_url: str, timeout: float = 60.0) -> float:
    """Wait until a worker has reported spare capacity to the server (lk_agents_worker_load
    below TEST_LOAD_THRESHOLD for longer than one status report); returns the load seen.

    Self-hosted LiveKit offers a room to the workers once: a room that arrives while every
    worker reports itself full never gets an agent. A test that places a call right after a
    worker starts (prewarm) or on a busy machine must wait for this precondition first."""
    deadline, below_since, load = time.monotonic() + timeout, None, 1.0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(metrics_url, timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            text = ""
        loads = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("lk_agents_worker_load{")]
        load = max(loads, default=1.0)
        now = time.monotonic()
        below_since = (below_since or now) if load < TEST_LOAD_THRESHOLD * 0.9 else None
        if below_since is not None and now - below_since > STATUS_INTERVAL_S + 0.5:
            return load
        time.sleep(0.25)
    raise AssertionError(f"{metrics_url}: no spare capacity within {timeout}s (last load {load})")

