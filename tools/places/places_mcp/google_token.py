"""The tool server's own Google access token, from the metadata server (Workload Identity).

On GKE the pod's Kubernetes service account is linked to the tool server's Google service
account; the GKE metadata server hands out that account's OAuth token, scope cloud-platform,
which the Places API (New) accepts (https://developers.google.com/maps/documentation/places/
web-service/oauth-token). No key file and no API key exist anywhere.

Endpoint and headers: https://cloud.google.com/compute/docs/access/authenticate-workloads
(GET .../instance/service-accounts/default/token with Metadata-Flavor: Google; the answer has
access_token and expires_in). The host comes from GCE_METADATA_HOST, as google-auth reads it.
"""

from __future__ import annotations

import time

import httpx2

TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
# Renew this long before expiry, so a token never dies between fetch and use.
REFRESH_MARGIN_SECONDS = 300


class TokenUnavailable(RuntimeError):
    """The metadata server gave no token (not on GKE, Workload Identity not configured)."""


class MetadataToken:
    def __init__(self, http: httpx2.AsyncClient, metadata_host: str) -> None:
        self._http = http
        self._url = f"http://{metadata_host}{TOKEN_PATH}"
        self._token = ""
        self._renew_at = 0.0

    async def get(self) -> str:
        if self._token and time.monotonic() < self._renew_at:
            return self._token
        try:
            response = await self._http.get(self._url, headers={"Metadata-Flavor": "Google"})
        except httpx2.HTTPError as exc:
            raise TokenUnavailable(f"metadata server unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise TokenUnavailable(f"metadata server answered HTTP {response.status_code}")
        body = response.json()
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 0))
        self._renew_at = time.monotonic() + max(0.0, lifetime - REFRESH_MARGIN_SECONDS)
        return self._token
