"""Who may call: a Kubernetes projected service-account token, verified here.

Network position is not identity: the NetworkPolicy admits agent pods, and this check admits
only a token that (1) the cluster's issuer signed (its OIDC key set), (2) names this server's
audience (the agent's pod mounts a projected token with `audience: places-mcp`, so its ordinary
API-server token, or a token for another tool, is refused), (3) has not expired, and (4) belongs
to an allowed service account (`sub` = system:serviceaccount:<ns>:<name>), and (5) still belongs
to a pod that exists: the cluster's TokenReview says so (token_review.py), so a token copied
out of a pod is worthless once that pod is gone.

Kubernetes serves the key set through OIDC discovery (`<issuer>/.well-known/openid-configuration`
-> `jwks_uri`; KEP-1393, "Service Account Issuer Discovery"); on GKE the issuer is
https://container.googleapis.com/v1/projects/P/locations/L/clusters/C and the key set is public
at `<issuer>/jwks`. Keys are cached and fetched again only for an unknown `kid` (the cluster
rotates its signing key), at most once per `refresh_seconds` (PLACES_MCP_JWKS_REFRESH_SECONDS), so a stream of forged kids
cannot turn this server into a load on the issuer.

Implements the MCP SDK's TokenVerifier (mcp.server.auth.provider): returning None makes the
SDK's RequireAuthMiddleware answer 401 before any MCP message is read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx2
import jwt
from mcp.server.auth.provider import AccessToken

from .token_review import TokenReviewer

logger = logging.getLogger("places_mcp.caller_auth")

# Kubernetes signs service-account tokens with RS256 (or ES256 with an EC key); never "none"/HS*.
ALGORITHMS = ["RS256", "ES256"]
# Clock skew tolerated between the issuing control plane and this pod, for a token used the
# instant it is issued (nbf/iat). Expiry gets none: the SDK's BearerAuthBackend (mcp 2.3.0,
# server/auth/middleware/bearer_auth.py) refuses any AccessToken whose expires_at has passed, and
# the kubelet renews a projected token at 80 % of its lifetime, long before that.
LEEWAY_SECONDS = 30


class ProjectedTokenVerifier:
    def __init__(self, http: httpx2.AsyncClient, *, issuer: str, audience: str, allowed_subjects: tuple[str, ...],
                 jwks_url: str = "", refresh_seconds: float = 60.0, reviewer: TokenReviewer | None = None) -> None:
        self._http = http
        self._issuer = issuer
        self._audience = audience
        self._subjects = frozenset(allowed_subjects)
        self._jwks_url = jwks_url
        self._keys: dict[str, Any] = {}
        self._refresh_seconds = refresh_seconds
        self._fetched_at = -refresh_seconds
        self._lock = asyncio.Lock()
        self._reviewer = reviewer

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self._claims(token)
        except (jwt.PyJWTError, KeyUnavailable) as exc:
            # never the token itself: it is a credential
            logger.info("caller token refused: %s", _reason(exc))
            return None
        subject = str(claims.get("sub", ""))
        if subject not in self._subjects:
            logger.info("caller token refused: subject %s is not an allowed caller", subject)
            return None
        if not await self._still_bound(subject, token):
            return None
        return AccessToken(token=token, client_id=subject, scopes=[], expires_at=int(claims["exp"]),
                           resource=self._audience, subject=subject, claims={"iss": claims["iss"]})

    async def _still_bound(self, subject: str, token: str) -> bool:
        if self._reviewer is None:
            return True
        review = await self._reviewer.review(token)
        if review.authenticated is None:
            # never worse than no review: the signature, audience, expiry and subject held
            logger.warning("caller token admitted on its signature alone: %s", review.reason)
            return True
        if not review.authenticated or review.username != subject:
            logger.info("caller token refused by the cluster: %s", review.reason or f"user {review.username}")
            return False
        return True

    async def _claims(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        key = await self._key(str(header.get("kid", "")))
        return jwt.decode(token, key, algorithms=ALGORITHMS, audience=self._audience, issuer=self._issuer,
                          leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud", "sub"]})

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys and time.monotonic() - self._fetched_at >= self._refresh_seconds:
            async with self._lock:
                if kid not in self._keys and time.monotonic() - self._fetched_at >= self._refresh_seconds:
                    await self._refresh()
        if kid not in self._keys:
            raise KeyUnavailable(f"no signing key {kid!r} in the issuer's key set")
        return self._keys[kid]

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            url = self._jwks_url or await self._discover()
            response = await self._http.get(url)
            response.raise_for_status()
            keys = response.json()["keys"]
        except (httpx2.HTTPError, ValueError, KeyError) as exc:
            raise KeyUnavailable(f"issuer key set unavailable ({type(exc).__name__})") from exc
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in keys if k.get("kid") and k.get("use", "sig") == "sig"}

    async def _discover(self) -> str:
        response = await self._http.get(f"{self._issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        return str(response.json()["jwks_uri"])

    async def ready(self) -> bool:
        """The issuer's key set has been fetched (or can be now): readiness of this server."""
        if self._keys:
            return True
        async with self._lock:
            try:
                await self._refresh()
            except KeyUnavailable:
                return False
        return bool(self._keys)


class KeyUnavailable(Exception):
    pass


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
