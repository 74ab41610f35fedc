"""Is the caller's pod still there? The cluster's TokenReview API, asked about each new token.

A signature check (caller_auth.py) proves who a token was issued to, until it expires; alone it
would admit a token copied out of a pod after that pod is gone. A projected service-account
token is bound to its pod (claim `kubernetes.io.pod.{name,uid}`), and the API server refuses
such a token in a TokenReview once the pod no longer exists or was replaced by another of the
same name (Kubernetes pkg/serviceaccount/claims.go, `validator.Validate`: the bound pod is looked
up and its UID compared; TokenReview API: authentication.k8s.io/v1, "create" answers 201 with
`status.authenticated`). Its `spec.audiences` makes the server check the token's audience too.

Costs and limits, decided here:
- A verdict is cached for `cache_seconds` (PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS, default 10),
  per token, so a conversation's tool calls cost one review per token per interval. That is
  the replay window after a pod is deleted: tests/test_token_review.py measures it.
- When the API server cannot answer (a control-plane upgrade, a network blip), a token that
  passed the signature check is admitted and the event logged: replay protection must never
  make a tool call worse than having none. A token the API server refused stays refused.
- This server needs `create` on `tokenreviews` and nothing else (k8s/tool_server.py's
  ClusterRole); its own token is a projected one the kubelet renews, read again per request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import httpx2

logger = logging.getLogger("places_mcp.token_review")

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
# Enough distinct tokens for every agent pod of a large fleet within one cache interval.
MAX_CACHED_VERDICTS = 4096
# A token no cluster issued: reviewing it shows whether this server may ask at all (201 with
# authenticated false) without revealing anything.
PROBE_TOKEN = "readiness-probe.not-a-token"


@dataclass(frozen=True)
class Review:
    authenticated: bool | None  # None: the API server could not answer
    username: str
    reason: str


class TokenReviewer:
    def __init__(self, http: httpx2.AsyncClient, *, api_url: str, token_file: str, audience: str,
                 cache_seconds: float) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + REVIEW_PATH
        self._token_file = Path(token_file)
        self._audience = audience
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[Review, float]] = OrderedDict()

    async def review(self, token: str) -> Review:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        verdict = await self._ask(token)
        if verdict.authenticated is not None and self._cache_seconds > 0:
            self._cache[key] = (verdict, time.monotonic() + self._cache_seconds)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED_VERDICTS:
                self._cache.popitem(last=False)
        return verdict

    async def permitted(self) -> tuple[bool, str]:
        """May this server review tokens (RBAC, its own token, the API server reachable)?"""
        verdict = await self._ask(PROBE_TOKEN)
        if verdict.authenticated is None:
            return False, verdict.reason
        return True, ""

    async def _ask(self, token: str) -> Review:
        try:
            own = self._token_file.read_text().strip()
        except OSError as exc:
            return Review(None, "", f"own API token unreadable at {self._token_file}: {exc.strerror or exc}")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [self._audience]}}
        try:
            response = await self._http.post(self._url, json=body, headers={"Authorization": f"Bearer {own}"})
        except httpx2.HTTPError as exc:
            return Review(None, "", f"API server unreachable ({type(exc).__name__})")
        if response.status_code not in (200, 201):
            return Review(None, "", f"TokenReview answered HTTP {response.status_code}: {_status_message(response)}")
        try:
            status = response.json().get("status") or {}
        except ValueError:
            return Review(None, "", "TokenReview answer is not JSON")
        # An empty status.audiences means "valid for the API server", not for us (TokenReview
        # docs: a client that sets spec.audiences must find its audience in status.audiences).
        if status.get("authenticated") is True and self._audience in (status.get("audiences") or []):
            return Review(True, str((status.get("user") or {}).get("username", "")), "")
        return Review(False, "", str(status.get("error") or "not authenticated"))


def _status_message(response: httpx2.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except ValueError:
        return response.text[:200]
