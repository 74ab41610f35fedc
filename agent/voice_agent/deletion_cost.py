"""Keeps controller.kubernetes.io/pod-deletion-cost on the worker's own pod, in bands.

The ReplicaSet controller removes pods with the lowest deletion cost first when the HPA scales
down (Kubernetes "ReplicaSet": pod deletion cost). The worker sets it from its active calls in
three bands: idle (no call: goes first), busy, full (at its call cap: goes last). It writes only
when the band changes, so a pod sends a few PATCHes an hour, not one per call.

The write is one JSON merge patch of the pod's metadata (Kubernetes API reference, "Pod" /
patch: ``PATCH /api/v1/namespaces/{namespace}/pods/{name}``, ``Content-Type:
application/merge-patch+json``, answered 200 with the pod), authenticated with the pod's
projected service-account token (re-read at every write: the kubelet renews the file) and
trusting the cluster CA beside it (k8s/deletion_cost.py mounts both). A failed write is logged
and retried at the next tick; the calls never wait for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .logs import log_event

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Lower goes first; pods without the annotation count as 0, so a new pod sorts with the idle.
BAND_COSTS = {"idle": 0, "busy": 100, "full": 1000}
CHECK_INTERVAL_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 5.0


def band_for(active_calls: int, max_calls: int) -> str:
    if active_calls <= 0:
        return "idle"
    if max_calls > 0 and active_calls >= max_calls:
        return "full"
    return "busy"


@dataclass(frozen=True)
class PodRef:
    name: str
    namespace: str


def api_url_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """In-cluster API address: the kubelet sets KUBERNETES_SERVICE_HOST/PORT in every pod."""
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"https://{host}:{port}"


class DeletionCostKeeper:
    def __init__(self, pod: PodRef, max_calls: int, *, api_url: str,
                 credentials_dir: str | Path = SERVICE_ACCOUNT_DIR) -> None:
        self._pod = pod
        self._max_calls = max_calls
        self._api_url = api_url.rstrip("/")
        self._dir = Path(credentials_dir)
        self._applied: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self.writes = 0
        self.failures = 0

    @property
    def applied_band(self) -> str | None:
        return self._applied

    async def update(self, active_calls: int) -> bool:
        """Write the band for ``active_calls`` if it differs from the last one written."""
        band = band_for(active_calls, self._max_calls)
        if band == self._applied:
            return False
        try:
            await self._patch(BAND_COSTS[band])
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, PatchRefused) as exc:
            self.failures += 1
            log_event("deletion_cost_failed", "pod deletion cost not written (retried next tick)",
                      level=logging.WARNING, band=band, active_calls=active_calls, error=str(exc))
            return False
        previous, self._applied = self._applied, band
        self.writes += 1
        log_event("deletion_cost_set", "pod deletion cost set", band=band, previous_band=previous,
                  cost=BAND_COSTS[band], active_calls=active_calls)
        return True

    async def run(self, active_calls: callable) -> None:  # type: ignore[valid-type]
        """Every second: the band of ``active_calls()``, written on change. Until cancelled."""
        try:
            while True:
                await self.update(active_calls())
                await asyncio.sleep(CHECK_INTERVAL_SECONDS)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _patch(self, cost: int) -> None:
        token = (self._dir / "token").read_text().strip()
        session = self._client()
        url = f"{self._api_url}/api/v1/namespaces/{self._pod.namespace}/pods/{self._pod.name}"
        body = json.dumps({"metadata": {"annotations": {ANNOTATION: str(cost)}}})
        async with session.patch(
            url, data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json",
                     "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        ) as response:
            if response.status != 200:
                raise PatchRefused(response.status, await _reason(response))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=str(self._dir / "ca.crt"))
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        return self._session


class PatchRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status


async def _reason(response: aiohttp.ClientResponse) -> str:
    """A Kubernetes Status object's message, else the body's start."""
    text = await response.text()
    try:
        return str(json.loads(text).get("message", text))[:300]
    except ValueError:
        return text[:300]
