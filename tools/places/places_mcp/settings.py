"""The tool server's settings: one frozen dataclass read once from the environment.

Every field names its variable. A bad value stops the process before it listens: one line per
problem naming the variable, the value and what is allowed (exit 2, no traceback).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_AUDIENCE = "places-mcp"
DEFAULT_PLACES_BASE_URL = "https://places.googleapis.com"
# The metadata server GKE serves Workload Identity tokens from (GKE Workload Identity docs).
DEFAULT_METADATA_HOST = "metadata.google.internal"
# Upstream budget per tool call. The agent's MCP client waits TOOL_CALL_TIMEOUT_SECONDS (6 s,
# agent/voice_agent/tools_mcp.py) for the whole call, so the server must give up first and say
# why, rather than the agent timing out with nothing to tell the caller.
DEFAULT_UPSTREAM_TIMEOUT_SECONDS = 4.0
MAX_UPSTREAM_TIMEOUT_SECONDS = 5.0
# A cluster rotates its signing key rarely; a token with an unknown key id triggers a fetch of
# the key set at most this often, so forged key ids cannot make this server hammer the issuer.
DEFAULT_JWKS_REFRESH_SECONDS = 60
# The cluster's API server as a pod sees it, and where k8s/tool_server.py projects this server's
# own API token and the cluster CA (kubelet-renewed, Kubernetes "projected volumes").
DEFAULT_KUBE_API_URL = "https://kubernetes.default.svc"
DEFAULT_KUBE_TOKEN_FILE = "/var/run/secrets/tokens/kube-api/token"
DEFAULT_KUBE_CA_FILE = "/var/run/secrets/tokens/kube-api/ca.crt"
# How long a TokenReview verdict is reused: the window in which a token still works after its
# pod was deleted. A minute at most: beyond that the review protects little.
DEFAULT_REVIEW_CACHE_SECONDS = 10
MAX_REVIEW_CACHE_SECONDS = 60
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_AUDIENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# system:serviceaccount:<namespace>:<name>, both DNS labels (what the kubelet puts in `sub`).
_SUBJECT = re.compile(r"^system:serviceaccount:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?:[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class SettingsError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid places tool server configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class ToolServerSettings:
    issuer: str
    """PLACES_MCP_ISSUER: the cluster's service-account token issuer (OIDC), e.g. GKE's
    https://container.googleapis.com/v1/projects/P/locations/L/clusters/C (required)."""
    allowed_subjects: tuple[str, ...]
    """PLACES_MCP_ALLOWED_SUBJECTS: comma-separated system:serviceaccount:<ns>:<name> callers
    (required): the agent's Kubernetes service account, nobody else."""
    quota_project: str
    """PLACES_QUOTA_PROJECT: the project billed for Places calls (X-Goog-User-Project; required)."""
    audience: str = DEFAULT_AUDIENCE
    """PLACES_MCP_AUDIENCE: the audience a caller's projected token must carry."""
    jwks_url: str = ""
    """PLACES_MCP_JWKS_URL: the issuer's key set; empty = discovered from
    <issuer>/.well-known/openid-configuration."""
    host: str = "0.0.0.0"
    """PLACES_MCP_HOST: bind address (tests use 127.0.0.1)."""
    port: int = DEFAULT_PORT
    """PLACES_MCP_PORT: the MCP endpoint (/mcp), /healthz and /readyz."""
    places_base_url: str = DEFAULT_PLACES_BASE_URL
    """PLACES_API_BASE_URL: the Places API (New) endpoint (tests point it at a local stand-in)."""
    metadata_host: str = DEFAULT_METADATA_HOST
    """GCE_METADATA_HOST: where the Workload Identity access token comes from (google-auth's name)."""
    upstream_timeout_seconds: float = DEFAULT_UPSTREAM_TIMEOUT_SECONDS
    """PLACES_TIMEOUT_SECONDS: budget of one Places call, token fetch included."""
    language: str = "en"
    """PLACES_LANGUAGE: language of names and addresses (BCP-47, e.g. en, fr, pt-BR)."""
    jwks_refresh_seconds: int = DEFAULT_JWKS_REFRESH_SECONDS
    """PLACES_MCP_JWKS_REFRESH_SECONDS: the issuer's key set is fetched again for an unknown key
    id at most this often (1..3600)."""
    kube_api_url: str = DEFAULT_KUBE_API_URL
    """PLACES_MCP_KUBE_API_URL: the cluster's API server, asked whether a caller's pod still
    exists (TokenReview)."""
    kube_token_file: str = DEFAULT_KUBE_TOKEN_FILE
    """PLACES_MCP_KUBE_TOKEN_FILE: this server's own API token (projected, renewed by the kubelet)."""
    kube_ca_file: str = DEFAULT_KUBE_CA_FILE
    """PLACES_MCP_KUBE_CA_FILE: the cluster CA that signs the API server's certificate (https only)."""
    review_cache_seconds: int = DEFAULT_REVIEW_CACHE_SECONDS
    """PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS: a TokenReview verdict is reused this long (0..60):
    the replay window of a token whose pod was deleted."""


def load_settings(env: Mapping[str, str]) -> ToolServerSettings:
    problems: list[str] = []

    def get(name: str) -> str:
        return env.get(name, "").strip()

    issuer = get("PLACES_MCP_ISSUER")
    if not issuer.startswith(("https://", "http://")):
        problems.append(f"PLACES_MCP_ISSUER={issuer!r}: required, the cluster's token issuer URL "
                        "(https://container.googleapis.com/v1/projects/P/locations/L/clusters/C on GKE)")
    subjects = tuple(s.strip() for s in get("PLACES_MCP_ALLOWED_SUBJECTS").split(",") if s.strip())
    bad = [s for s in subjects if not _SUBJECT.match(s)]
    if not subjects or bad:
        problems.append(f"PLACES_MCP_ALLOWED_SUBJECTS={get('PLACES_MCP_ALLOWED_SUBJECTS')!r}: required, comma-separated "
                        "system:serviceaccount:<namespace>:<name> (the agent's Kubernetes service account)")
    quota_project = get("PLACES_QUOTA_PROJECT")
    if not _PROJECT_ID.match(quota_project):
        problems.append(f"PLACES_QUOTA_PROJECT={quota_project!r}: required, a Google Cloud project id "
                        "(6-30 lower-case letters, digits, dashes) billed for Places calls")
    audience = get("PLACES_MCP_AUDIENCE") or DEFAULT_AUDIENCE
    if not _AUDIENCE.match(audience):
        problems.append(f"PLACES_MCP_AUDIENCE={audience!r}: up to 128 letters, digits, '.', '_', ':', '/' or '-'")
    jwks_url = get("PLACES_MCP_JWKS_URL")
    if jwks_url and not jwks_url.startswith(("https://", "http://")):
        problems.append(f"PLACES_MCP_JWKS_URL={jwks_url!r}: empty (discovered from the issuer) or an http(s) URL")
    port = _integer(get("PLACES_MCP_PORT"), DEFAULT_PORT, 1, 65535, "PLACES_MCP_PORT", "a TCP port", problems)
    refresh = _integer(get("PLACES_MCP_JWKS_REFRESH_SECONDS"), DEFAULT_JWKS_REFRESH_SECONDS, 1, 3600,
                       "PLACES_MCP_JWKS_REFRESH_SECONDS", "seconds between fetches of the issuer's key set", problems)
    timeout = _seconds(get("PLACES_TIMEOUT_SECONDS"), problems)
    review_cache = _integer(get("PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS"), DEFAULT_REVIEW_CACHE_SECONDS, 0,
                            MAX_REVIEW_CACHE_SECONDS, "PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS",
                            "seconds a verdict on a caller's token is reused; the replay window after its pod is gone",
                            problems)
    kube_api_url = get("PLACES_MCP_KUBE_API_URL") or DEFAULT_KUBE_API_URL
    if not kube_api_url.startswith(("https://", "http://")):
        problems.append(f"PLACES_MCP_KUBE_API_URL={kube_api_url!r}: an http(s) URL (default {DEFAULT_KUBE_API_URL})")
    kube_ca_file = get("PLACES_MCP_KUBE_CA_FILE") or DEFAULT_KUBE_CA_FILE
    if kube_api_url.startswith("https://") and not Path(kube_ca_file).is_file():
        problems.append(f"PLACES_MCP_KUBE_CA_FILE={kube_ca_file!r}: no such file; the cluster CA that signs "
                        f"{kube_api_url}'s certificate (k8s/tool_server.py projects kube-root-ca.crt there)")
    language = get("PLACES_LANGUAGE") or "en"
    if not _LANGUAGE.match(language):
        problems.append(f"PLACES_LANGUAGE={language!r}: a BCP-47 language code such as en, fr or pt-BR")
    base_url = get("PLACES_API_BASE_URL") or DEFAULT_PLACES_BASE_URL
    if not base_url.startswith(("https://", "http://")):
        problems.append(f"PLACES_API_BASE_URL={base_url!r}: an http(s) URL (default {DEFAULT_PLACES_BASE_URL})")
    if problems:
        raise SettingsError(problems)
    return ToolServerSettings(
        issuer=issuer.rstrip("/"), allowed_subjects=subjects, quota_project=quota_project, audience=audience,
        jwks_url=jwks_url, host=get("PLACES_MCP_HOST") or "0.0.0.0", port=port,
        places_base_url=base_url.rstrip("/"), metadata_host=get("GCE_METADATA_HOST") or DEFAULT_METADATA_HOST,
        upstream_timeout_seconds=timeout, language=language, jwks_refresh_seconds=refresh,
        kube_api_url=kube_api_url.rstrip("/"), kube_token_file=get("PLACES_MCP_KUBE_TOKEN_FILE") or DEFAULT_KUBE_TOKEN_FILE,
        kube_ca_file=kube_ca_file, review_cache_seconds=review_cache,
    )


def _integer(raw: str, default: int, low: int, high: int, name: str, what: str, problems: list[str]) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems.append(f"{name}={raw!r}: allowed {low}..{high} ({what})")
        return default
    return value


def _seconds(raw: str, problems: list[str]) -> float:
    if not raw:
        return DEFAULT_UPSTREAM_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.5 <= value <= MAX_UPSTREAM_TIMEOUT_SECONDS):
        problems.append(f"PLACES_TIMEOUT_SECONDS={raw!r}: allowed 0.5..{MAX_UPSTREAM_TIMEOUT_SECONDS:g} seconds "
                        "(must stay below the agent's 6 s tool-call timeout)")
        return DEFAULT_UPSTREAM_TIMEOUT_SECONDS
    return value
