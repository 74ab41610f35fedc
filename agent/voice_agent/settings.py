"""The agent's runtime settings: one frozen dataclass, read once from the environment.

Each variable is declared once in env_declarations.py (default, range, why, the field it lands
in) and read there by one generic reader; this module builds AgentSettings from the values and
keeps the rules that span several variables. The defaults that mirror livekit-agents 1.8.9
(drain timeout, load threshold, health port) are checked against the installed framework by
tests/test_settings.py, so a framework upgrade that moves them fails loudly instead of drifting.

This module must stay free of livekit imports: ``python -m voice_agent`` validates settings
before it imports the framework (fast, clean failure on bad configuration).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .admission import AdmissionSettings, read_admission_settings
from .env_declarations import (  # noqa: F401  (re-exported: one home, the declarations)
    DEFAULT_DRAIN_TIMEOUT_SECONDS, DEFAULT_GEMINI_MODEL, DEFAULT_HEALTH_PORT, DEFAULT_LOAD_THRESHOLD,
    DEFAULT_METRICS_PORT, DEFAULT_PERSONA, DEFAULT_TOOL_TOKEN_DIR, GEMINI_VOICES, VARIABLES, VOICES_FILE,
    default_of, landed, read_secret, read_variables,
)
from .recovery.config import RecoverySettings, read_recovery_settings

_TOOL_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOOL_URL = re.compile(r"^https?://[^\s/]+/mcp$")
# Read here; the recovery and admission groups by their own modules' readers.
_OWN = tuple(v for v in VARIABLES if v.group not in ("crash recovery", "admission"))


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` holds one line per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid agent configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class AgentSettings:
    """Runtime settings of the voice agent worker. Each field's variable, default, range and
    meaning: env_declarations.py (docs/agent-settings.md); the credentials are never logged."""

    livekit_url: str
    livekit_api_key: str = field(repr=False)
    livekit_api_secret: str = field(repr=False)
    gcp_project: str
    gcp_location: str = default_of("GOOGLE_CLOUD_LOCATION")
    gemini_model: str = DEFAULT_GEMINI_MODEL
    drain_timeout_seconds: int = DEFAULT_DRAIN_TIMEOUT_SECONDS
    load_threshold: float = DEFAULT_LOAD_THRESHOLD
    health_port: int = DEFAULT_HEALTH_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    http_host: str = default_of("AGENT_HTTP_HOST")
    log_level: str = default_of("AGENT_LOG_LEVEL")
    agent_name: str = default_of("AGENT_NAME")
    max_call_seconds: int = default_of("AGENT_MAX_CALL_SECONDS")
    call_warning_seconds: int = default_of("AGENT_CALL_WARNING_SECONDS")
    silence_timeout_seconds: int = default_of("AGENT_SILENCE_TIMEOUT_SECONDS")
    gemini_connect_retries: int = default_of("AGENT_GEMINI_CONNECT_RETRIES")
    gemini_fallback_location: str = default_of("AGENT_GEMINI_FALLBACK_LOCATION")
    gemini_fallback_model: str = default_of("AGENT_GEMINI_FALLBACK_MODEL")
    compression_trigger_tokens: int = default_of("AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS")
    compression_target_tokens: int = default_of("AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS")
    log_conversation_text: bool = default_of("AGENT_LOG_CONVERSATION_TEXT")
    log_call_ids: str = default_of("AGENT_LOG_CALL_IDS")
    version: str = default_of("AGENT_VERSION")
    metrics_linger_seconds: int = default_of("AGENT_METRICS_LINGER_SECONDS")
    recovery: RecoverySettings = RecoverySettings()
    admission: AdmissionSettings = AdmissionSettings()
    tool_servers: tuple[tuple[str, str], ...] = ()
    """AGENT_TOOL_SERVERS as (name, url) pairs; empty = no remote tools."""
    tool_token_dir: str = DEFAULT_TOOL_TOKEN_DIR
    persona: str = DEFAULT_PERSONA
    voice: str = default_of("AGENT_VOICE")

    def public_fields(self) -> dict[str, object]:
        """The settings that are safe to log (no key, no secret)."""
        return {
            "livekit_url": self.livekit_url,
            "agent_name": self.agent_name,
            "drain_timeout_seconds": self.drain_timeout_seconds,
            "load_threshold": self.load_threshold,
            "health_port": self.health_port,
            "metrics_port": self.metrics_port,
            "http_host": self.http_host,
            "log_level": self.log_level,
            "gcp_project": self.gcp_project,
            "gcp_location": self.gcp_location,
            "gemini_model": self.gemini_model,
            "max_call_seconds": self.max_call_seconds,
            "call_warning_seconds": self.call_warning_seconds,
            "silence_timeout_seconds": self.silence_timeout_seconds,
            "gemini_connect_retries": self.gemini_connect_retries,
            "gemini_fallback_location": self.gemini_fallback_location,
            "gemini_fallback_model": self.gemini_fallback_model,
            "log_conversation_text": self.log_conversation_text,
            "log_call_ids": self.log_call_ids,
            # "agent_version": framework lines already use "version" for their own release
            "agent_version": self.version,
            **self.recovery.public_fields(),
            **self.admission.public_fields(),
            "tool_servers": ",".join(f"{name}={url}" for name, url in self.tool_servers),
            "persona": self.persona,
            "voice": self.voice,
        }


def load_settings(env: Mapping[str, str]) -> AgentSettings:
    """Parse and validate every setting; raise SettingsError listing all problems at once."""
    problems: list[str] = []
    values = read_variables(env, problems, _OWN)
    recovery = read_recovery_settings(env, problems)
    admission = read_admission_settings(env, problems)
    tool_servers = _tool_servers(values["AGENT_TOOL_SERVERS"], problems)
    _check_call_life(values, problems)
    _check_ports_differ(values, problems)
    if problems:
        raise SettingsError(problems)
    return AgentSettings(**landed(values, _OWN), recovery=recovery, admission=admission,  # type: ignore[arg-type]
                         tool_servers=tool_servers)


# livekit-agents 1.8.9 AgentServer.run (worker.py) exports the api_key and api_secret it was
# given as LIVEKIT_API_KEY / LIVEKIT_API_SECRET before it starts its job processes, which inherit
# them: the values the worker read from the files once at start.
_CREDENTIAL_FILES = ("LIVEKIT_API_KEY_FILE", "LIVEKIT_API_SECRET_FILE")


def load_job_process_settings(env: Mapping[str, str]) -> AgentSettings:
    """A job process's settings: the worker's, with the credentials the framework handed down
    instead of the files again (else it would see both forms, and a file rotated since start
    would give it a key the worker does not use)."""
    return load_settings({k: v for k, v in env.items() if k not in _CREDENTIAL_FILES})


def _tool_servers(raw: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """AGENT_TOOL_SERVERS=name=url,...: each name a DNS label (its token lives in
    <AGENT_TOOL_TOKEN_DIR>/<name>/token), each URL http(s)://host[:port]/mcp (streamable HTTP)."""
    servers: list[tuple[str, str]] = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, _, url = entry.partition("=")
        if not (_TOOL_NAME.match(name.strip()) and _TOOL_URL.match(url.strip())):
            problems.append(
                f"AGENT_TOOL_SERVERS entry {entry!r} is invalid: expected name=url with name a DNS label "
                "(e.g. places) and url http(s)://host[:port]/mcp"
            )
            continue
        servers.append((name.strip(), url.strip()))
    if len({name for name, _ in servers}) != len(servers):
        problems.append(f"AGENT_TOOL_SERVERS={raw!r} names a server twice: each name must be unique")
    return tuple(servers)


def _check_call_life(values: Mapping[str, object], problems: list[str]) -> None:
    limit, warning = values["AGENT_MAX_CALL_SECONDS"], values["AGENT_CALL_WARNING_SECONDS"]
    if isinstance(limit, int) and isinstance(warning, int) and warning >= limit:
        problems.append(
            f"AGENT_CALL_WARNING_SECONDS={warning} is not below AGENT_MAX_CALL_SECONDS={limit}: "
            "the warning must come before the end of the call"
        )
    trigger = values["AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS"]
    target = values["AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS"]
    if isinstance(trigger, int) and isinstance(target, int) and target >= trigger:
        problems.append(
            f"AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS={target} is not below "
            f"AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS={trigger}: compression must shrink the "
            "context"
        )


def _check_ports_differ(values: Mapping[str, object], problems: list[str]) -> None:
    health, metrics = values["AGENT_HEALTH_PORT"], values["AGENT_METRICS_PORT"]
    if health is not None and health == metrics:
        problems.append(
            f"AGENT_HEALTH_PORT and AGENT_METRICS_PORT are both {health}: the health server and "
            "the metrics server need different ports (defaults 8081 and 9100)"
        )
