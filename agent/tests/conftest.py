"""Shared fixtures. Fixtures that start processes live in tests/helpers so other suites
(e.g. the controlled TERM test driven by the rendered Deployment) can reuse them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import pod_cgroup
from helpers.livekit_server import LiveKitServer, start_livekit_server
from helpers.postgres import PostgresServer, start_postgres

# A complete, valid production-like environment; tests change one variable at a time.
VALID_ENV = {
    "LIVEKIT_URL": "wss://livekit.example.com",
    "LIVEKIT_API_KEY": "APIexamplekey",
    "LIVEKIT_API_SECRET": "s3cr3t-value-that-must-never-be-printed",
    "GOOGLE_CLOUD_PROJECT": "voice-agents-dev",
}


@pytest.fixture
def valid_env() -> dict[str, str]:
    return dict(VALID_ENV)


@pytest.fixture(scope="module")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """A real livekit-server --dev on free loopback ports, one per test module."""
    server = start_livekit_server(tmp_path_factory.mktemp("livekit"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's server binaries, helpers/postgres.py), one per test module:
    the crash-recovery suites' checkpoint database."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def agent_dir() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _pod_cgroups_removed() -> Iterator[None]:
    """Every worker runs in a pod cgroup (helpers/pod_cgroup.py) that its stop() removes; one a
    test left behind goes at the end of the session, with anything still running inside, and
    those of an earlier session that died before its own cleanup go at the start."""
    try:
        pod_cgroup.sweep_orphans()  # left by a session killed before its cleanup
    except pod_cgroup.PodCgroupError:
        pass  # no pod cgroups here: nothing to sweep, and each worker start says why
    yield
    pod_cgroup.remove_all()
