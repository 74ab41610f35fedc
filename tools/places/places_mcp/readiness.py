"""Ready means a real search can work: not only that the issuer's keys are in hand.

Three things must hold before this pod takes traffic, each checked for real:
1. the cluster issuer's key set is fetched (callers can be verified at all);
2. this server may ask the cluster about tokens (TokenReview permitted, token_review.py);
3. Places answers this server's identity: one IDs-only Text Search, which Google does not bill
   (places_api.SELF_CHECK_MASK), proves the token, the quota project and the API switch.

Only failures no retry cures count against readiness: a refused identity (401/403), no Google
credential, no permission to review tokens. A busy or failing Places API (429, 5xx, timeouts)
leaves a pod that once passed ready: taking every replica out of the Service during an upstream
incident would turn sentences the model can relay into connection errors. A release with a broken
identity, though, never becomes ready, so its rollout stops (maxUnavailable 0) while the old
pods keep serving. A verdict is re-checked every `ok_seconds` once good and every
`retry_seconds` while bad; a 401/403 during a real call forces a re-check at the next probe.
Checks run in the background: a probe always answers at once with the last verdict (a check
takes up to the upstream budget, longer than the probe's 3 s timeout in k8s/tool_server.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .caller_auth import ProjectedTokenVerifier
from .places_api import PlacesClient
from .token_review import TokenReviewer

logger = logging.getLogger("places_mcp.readiness")

OK_SECONDS = 300.0
RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str


class Readiness:
    def __init__(self, verifier: ProjectedTokenVerifier, reviewer: TokenReviewer, places: PlacesClient, *,
                 ok_seconds: float = OK_SECONDS, retry_seconds: float = RETRY_SECONDS) -> None:
        self._verifier = verifier
        self._reviewer = reviewer
        self._places = places
        self._ok_seconds = ok_seconds
        self._retry_seconds = retry_seconds
        self._verdict: Verdict | None = None
        self._checked_at = 0.0
        self._running: asyncio.Task | None = None
        places.on_configuration_refusal = self.recheck

    def recheck(self, reason: str) -> None:
        logger.warning("readiness re-check forced by an upstream refusal: %s", reason)
        self._checked_at = 0.0

    def verdict(self) -> Verdict:
        """The last verdict, at once; starts a check in the background when it is due."""
        if self._due() and (self._running is None or self._running.done()):
            self._running = asyncio.get_running_loop().create_task(self.check_now())
        return self._verdict or Verdict(False, "first check running")

    async def check_now(self) -> Verdict:
        self._verdict = await self._check(self._verdict)
        self._checked_at = time.monotonic()
        return self._verdict

    def _due(self) -> bool:
        if self._verdict is None or self._checked_at == 0.0:
            return True
        interval = self._ok_seconds if self._verdict.ready else self._retry_seconds
        return time.monotonic() >= self._checked_at + interval

    async def _check(self, previous: Verdict | None) -> Verdict:
        if not await self._verifier.ready():
            return self._changed(previous, Verdict(False, "issuer key set unavailable"))
        permitted, why = await self._reviewer.permitted()
        if not permitted:
            return self._changed(previous, Verdict(False, f"cannot review caller tokens: {why}"))
        upstream = await self._places.self_check()
        if upstream.ok:
            return self._changed(previous, Verdict(True, ""))
        if not upstream.configuration and previous is not None and previous.ready:
            logger.info("places self-check failed, not this pod's fault; staying ready: %s", upstream.reason)
            return previous
        return self._changed(previous, Verdict(False, f"places self-check failed: {upstream.reason}"))

    @staticmethod
    def _changed(previous: Verdict | None, new: Verdict) -> Verdict:
        if previous is None or previous.ready != new.ready:
            log = logger.info if new.ready else logger.warning
            log("ready" if new.ready else f"not ready: {new.reason}")
        return new
