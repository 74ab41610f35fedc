"""The agent's runtime settings: one frozen dataclass, read once from the environment.

Every field names the environment variable it comes from. The defaults that mirror
livekit-agents 1.8.9 (drain timeout, load threshold, health port) are checked against the
installed framework by tests/test_settings.py, so a framework upgrade that moves them fails
loudly instead of drifting.

This module must stay free of livekit imports: ``python -m voice_agent`` validates settings
before it imports the framework (fast, clean failure on bad configuration).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .admission import AdmissionSettings, read_admission_settings
from .privacy import DEFAULT_LOG_CALL_IDS, LOG_CALL_IDS_MODES
from .recovery.config import RecoverySettings, read_recovery_settings

# livekit-agents 1.8.9 worker.DRAIN_TIMEOUT (3600 s since 1.8; older docs say 1800).
DEFAULT_DRAIN_TIMEOUT_SECONDS = 3600
# Upper bound: the longest a pod can be kept for a session on GKE Autopilot is the
# extended-duration window (7 days); a drain longer than that can never complete.
MAX_DRAIN_TIMEOUT_SECONDS = 7 * 24 * 3600
# livekit-agents 1.8.9 production default (worker._default_load_threshold.prod_default).
DEFAULT_LOAD_THRESHOLD = 0.7
# livekit-agents 1.8.9 production health port (AgentServer._default_port.prod_default).
DEFAULT_HEALTH_PORT = 8081
DEFAULT_METRICS_PORT = 9100
DEFAULT_HTTP_HOST = "0.0.0.0"
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_GCP_LOCATION = "us-central1"
# The Vertex AI Live API model livekit-plugins-google 1.8.9 picks when vertexai=True.
DEFAULT_GEMINI_MODEL = "gemini-live-2.5-flash-native-audio"
# What a process started without a release (a laptop, a test) calls itself on metrics and logs.
DEFAULT_VERSION = "unversioned"
# After a finished drain the metrics stay up this long, so one more scrape sees the pod's last
# counters (drain finished) before it exits; the pod spec sets it to the scrape interval + 5 s.
MAX_METRICS_LINGER_SECONDS = 120

# Call life (docs/agent.md, "Call life"). 45 min is prod's maxSessionMinutes (Pulumi.prod.yaml).
DEFAULT_MAX_CALL_SECONDS = 2700
MAX_MAX_CALL_SECONDS = 24 * 3600
DEFAULT_CALL_WARNING_SECONDS = 60
# livekit-agents 1.8.9 AgentSession(user_away_timeout=15.0) marks the caller "away" after 15 s
# of shared silence; ending a call needs a longer, deliberate wait.
DEFAULT_SILENCE_TIMEOUT_SECONDS = 120
DEFAULT_GEMINI_CONNECT_RETRIES = 2
MAX_GEMINI_CONNECT_RETRIES = 5
# Context window compression (sliding window). gemini-live-2.5-flash-native-audio takes at most
# 128,000 input tokens on Vertex AI (model card, "Maximum input tokens: 128,000",
# https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/2-5-flash-live-api);
# "128k" there is decimal, not 131072. Compress at 80 % of it, keep half of it.
MAX_CONTEXT_TOKENS = 128_000
DEFAULT_COMPRESSION_TRIGGER_TOKENS = 102_400
DEFAULT_COMPRESSION_TARGET_TOKENS = 64_000

_URL_SCHEMES = ("ws", "wss", "http", "https")
# Google Cloud project ids: 6-30 chars, lowercase letters, digits and hyphens, starting with a
# letter and not ending with a hyphen.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_LOCATION = re.compile(r"^(global|[a-z]+-[a-z]+[0-9]+)$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# An image tag (128 chars of [A-Za-z0-9_.-]) or a digest (sha256:<64 hex>), as k8s/pod.py sets it.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Remote tools (tools_mcp.py): where the kubelet writes each server's projected token.
DEFAULT_TOOL_TOKEN_DIR = "/var/run/secrets/tokens"
_TOOL_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOOL_URL = re.compile(r"^https?://[^\s/]+/mcp$")
# The persona (persona_api.py): module:attribute of a voice_agent.persona_api.Persona.
DEFAULT_PERSONA = "voice_agent.persona:SAMPLE"
_PERSONA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
# Gemini Live's prebuilt voices, one home for the agent and the stack (domain/declarations.py reads it):
# the list livekit-plugins-google 1.8.9 declares (realtime/api_proto.py Voice), checked against
# the installed plugin by tests/test_sample_persona.py.
VOICES_FILE = Path(__file__).with_name("data") / "gemini_voices.json"
GEMINI_VOICES: tuple[str, ...] = tuple(json.loads(VOICES_FILE.read_text())["voices"])
_TRUE = ("true", "1")
_FALSE = ("false", "0")


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` holds one line per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid agent configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class AgentSettings:
    """Runtime settings of the voice agent worker (see docs/agent.md for the full table)."""

    livekit_url: str
    """LIVEKIT_URL: ws(s):// or http(s):// URL of the LiveKit server (required)."""
    livekit_api_key: str = field(repr=False)
    """LIVEKIT_API_KEY_FILE (the file the GKE stack mounts from Secret Manager) or
    LIVEKIT_API_KEY (the kubernetesSecret mode): LiveKit API key, exactly one (never logged)."""
    livekit_api_secret: str = field(repr=False)
    """LIVEKIT_API_SECRET_FILE or LIVEKIT_API_SECRET: LiveKit API secret, likewise."""
    gcp_project: str
    """GOOGLE_CLOUD_PROJECT: project whose Vertex AI endpoint serves Gemini Live (required)."""
    gcp_location: str = DEFAULT_GCP_LOCATION
    """GOOGLE_CLOUD_LOCATION: Vertex AI region."""
    gemini_model: str = DEFAULT_GEMINI_MODEL
    """AGENT_GEMINI_MODEL: Gemini Live model id on Vertex AI."""
    drain_timeout_seconds: int = DEFAULT_DRAIN_TIMEOUT_SECONDS
    """AGENT_DRAIN_TIMEOUT_SECONDS: how long SIGTERM waits for running sessions to finish."""
    load_threshold: float = DEFAULT_LOAD_THRESHOLD
    """AGENT_LOAD_THRESHOLD: worker load (CPU used / CPU limit) at which it stops taking jobs."""
    health_port: int = DEFAULT_HEALTH_PORT
    """AGENT_HEALTH_PORT: the framework's HTTP server (GET / health, GET /worker)."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """AGENT_METRICS_PORT: Prometheus metrics (GET /metrics)."""
    http_host: str = DEFAULT_HTTP_HOST
    """AGENT_HTTP_HOST: address the health and metrics servers bind (tests use 127.0.0.1)."""
    log_level: str = DEFAULT_LOG_LEVEL
    """AGENT_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."""
    agent_name: str = ""
    """AGENT_NAME: empty = automatic dispatch to every new room; set = explicit dispatch only."""
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS
    """AGENT_MAX_CALL_SECONDS: a call ends (warning, goodbye, room deleted) after this long."""
    call_warning_seconds: int = DEFAULT_CALL_WARNING_SECONDS
    """AGENT_CALL_WARNING_SECONDS: the caller is warned this long before AGENT_MAX_CALL_SECONDS."""
    silence_timeout_seconds: int = DEFAULT_SILENCE_TIMEOUT_SECONDS
    """AGENT_SILENCE_TIMEOUT_SECONDS: a call where nobody spoke for this long says goodbye."""
    gemini_connect_retries: int = DEFAULT_GEMINI_CONNECT_RETRIES
    """AGENT_GEMINI_CONNECT_RETRIES: new Gemini sessions tried after a fatal model error."""
    gemini_fallback_location: str = ""
    """AGENT_GEMINI_FALLBACK_LOCATION: Vertex AI region tried once the primary is exhausted."""
    gemini_fallback_model: str = ""
    """AGENT_GEMINI_FALLBACK_MODEL: model tried once the primary is exhausted (empty = same)."""
    compression_trigger_tokens: int = DEFAULT_COMPRESSION_TRIGGER_TOKENS
    """AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS: context size at which Gemini compresses."""
    compression_target_tokens: int = DEFAULT_COMPRESSION_TARGET_TOKENS
    """AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS: context size the sliding window keeps."""
    log_conversation_text: bool = False
    """AGENT_LOG_CONVERSATION_TEXT: true = conversation text in DEBUG lines (never INFO+)."""
    log_call_ids: str = DEFAULT_LOG_CALL_IDS
    """AGENT_LOG_CALL_IDS: room names, participant identities, phone numbers in logs: off =
    removed, hashed = keyed HMAC (per pod life), plain = as they are (privacy.py)."""
    version: str = DEFAULT_VERSION
    """AGENT_VERSION: the release (image tag or digest), a label on metrics and lifecycle lines."""
    metrics_linger_seconds: int = 0
    """AGENT_METRICS_LINGER_SECONDS: /metrics stays up this long after a finished drain."""
    recovery: RecoverySettings = RecoverySettings()
    """AGENT_CHECKPOINT_* / AGENT_RECOVERY_*: crash recovery (recovery/config.py, docs/recovery.md)."""
    admission: AdmissionSettings = AdmissionSettings()
    """AGENT_MAX_CALLS / AGENT_JOB_MEMORY_*: what the worker counts before taking a call (admission.py)."""
    tool_servers: tuple[tuple[str, str], ...] = ()
    """AGENT_TOOL_SERVERS: comma-separated name=url MCP tool servers (tools_mcp.py), e.g.
    places=http://places-mcp.voice-agents.svc:8080/mcp; empty = no remote tools."""
    tool_token_dir: str = DEFAULT_TOOL_TOKEN_DIR
    """AGENT_TOOL_TOKEN_DIR: projected service-account tokens, one <dir>/<name>/token per server."""
    persona: str = DEFAULT_PERSONA
    """AGENT_PERSONA: module:attribute of the persona (persona_api.Persona) the calls get."""
    voice: str = ""
    """AGENT_VOICE: Gemini Live voice for every call; empty = the persona's own voice."""

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
    reader = _Reader(env, problems)
    settings_kwargs = {
        "livekit_url": reader.url("LIVEKIT_URL"),
        "livekit_api_key": read_secret(env, "LIVEKIT_API_KEY", problems),
        "livekit_api_secret": read_secret(env, "LIVEKIT_API_SECRET", problems),
        "gcp_project": reader.pattern(
            "GOOGLE_CLOUD_PROJECT",
            None,
            _PROJECT_ID,
            "a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting "
            "with a letter (the project whose Vertex AI serves Gemini Live)",
        ),
        "gcp_location": reader.pattern(
            "GOOGLE_CLOUD_LOCATION",
            DEFAULT_GCP_LOCATION,
            _LOCATION,
            "a Vertex AI region such as us-central1 or europe-west4, or global",
        ),
        "gemini_model": reader.pattern(
            "AGENT_GEMINI_MODEL",
            DEFAULT_GEMINI_MODEL,
            _MODEL_ID,
            f"a Gemini Live model id such as {DEFAULT_GEMINI_MODEL}",
        ),
        "drain_timeout_seconds": reader.integer(
            "AGENT_DRAIN_TIMEOUT_SECONDS",
            DEFAULT_DRAIN_TIMEOUT_SECONDS,
            1,
            MAX_DRAIN_TIMEOUT_SECONDS,
            "seconds SIGTERM waits for running sessions; 0 would wait forever",
        ),
        "load_threshold": reader.fraction("AGENT_LOAD_THRESHOLD", DEFAULT_LOAD_THRESHOLD),
        "health_port": reader.integer(
            "AGENT_HEALTH_PORT", DEFAULT_HEALTH_PORT, 1, 65535, "a TCP port"
        ),
        "metrics_port": reader.integer(
            "AGENT_METRICS_PORT", DEFAULT_METRICS_PORT, 1, 65535, "a TCP port"
        ),
        "http_host": reader.pattern(
            "AGENT_HTTP_HOST",
            DEFAULT_HTTP_HOST,
            re.compile(r"^[0-9A-Za-z.:-]+$"),
            "an IP address or host name to bind, e.g. 0.0.0.0 (all interfaces) or 127.0.0.1",
        ),
        "log_level": reader.choice("AGENT_LOG_LEVEL", DEFAULT_LOG_LEVEL, LOG_LEVELS),
        "agent_name": reader.pattern(
            "AGENT_NAME",
            "",
            _AGENT_NAME,
            "empty (automatic dispatch) or up to 128 letters, digits, '.', '_' or '-'",
        ),
        "metrics_linger_seconds": reader.integer(
            "AGENT_METRICS_LINGER_SECONDS",
            0,
            0,
            MAX_METRICS_LINGER_SECONDS,
            "seconds /metrics stays up after a finished drain: one scrape interval plus a margin",
        ),
        "version": reader.pattern(
            "AGENT_VERSION",
            DEFAULT_VERSION,
            _VERSION,
            "the release: an image tag or digest (up to 128 letters, digits, '.', '_', ':' "
            "or '-'), e.g. v1.4.2 or sha256:<64 hex>",
        ),
    }
    settings_kwargs["recovery"] = read_recovery_settings(env, problems)
    settings_kwargs["admission"] = read_admission_settings(env, problems)
    settings_kwargs.update(_read_call_life(reader))
    settings_kwargs.update(_read_tool_servers(env, problems))
    settings_kwargs.update(_read_persona(reader))
    _check_vertex_only(env, problems)
    _check_call_life(settings_kwargs, problems)
    _check_ports_differ(settings_kwargs, problems)
    if problems:
        raise SettingsError(problems)
    return AgentSettings(**settings_kwargs)  # type: ignore[arg-type]


# livekit-agents 1.8.9 AgentServer.run (worker.py) exports the api_key and api_secret it was
# given as LIVEKIT_API_KEY / LIVEKIT_API_SECRET before it starts its job processes, which inherit
# them: the values the worker read from the files once at start.
_CREDENTIAL_FILES = ("LIVEKIT_API_KEY_FILE", "LIVEKIT_API_SECRET_FILE")


def load_job_process_settings(env: Mapping[str, str]) -> AgentSettings:
    """A job process's settings: the worker's, with the credentials the framework handed down
    instead of the files again (else it would see both forms, and a file rotated since start
    would give it a key the worker does not use)."""
    return load_settings({k: v for k, v in env.items() if k not in _CREDENTIAL_FILES})


def read_secret(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """A credential from exactly one of ``name`` (the value) or ``name_FILE`` (a file holding
    it, read once here); a problem otherwise. Empty counts as unset, as for every variable."""
    file_name = f"{name}_FILE"
    value, path = env.get(name, "").strip(), env.get(file_name, "").strip()
    if value and path:
        problems.append(
            f"{name} and {file_name} are both set (values hidden): set only one, "
            f"{file_name} for the file the GKE stack mounts from Secret Manager or {name} "
            "for the value from the LiveKit Kubernetes Secret"
        )
        return None
    if path:
        return _read_secret_file(file_name, path, problems)
    if value:
        return value
    problems.append(
        f"{name} is required but neither {file_name} nor {name} is set: set {file_name} to "
        "the file the GKE stack mounts from Secret Manager, or "
        f"{name} from the LiveKit Kubernetes Secret (stack setting livekitCredentials)"
    )
    return None


def _read_secret_file(file_name: str, path: str, problems: list[str]) -> str | None:
    """The file's text without surrounding whitespace (a secret stored with `echo` ends in a
    newline); a problem naming the variable, the path and why. Never the contents."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        problems.append(
            f"{file_name}={path!r} cannot be read: {_why_unreadable(error)}; point it at the "
            "mounted secret file (in the GKE stack, the pod's Secret Manager volume)"
        )
        return None
    except UnicodeDecodeError:
        problems.append(
            f"{file_name}={path!r} is not UTF-8 text (contents hidden): it must hold the "
            "LiveKit credential as plain text"
        )
        return None
    if not value:
        problems.append(
            f"{file_name}={path!r} is empty: the secret it holds has no value; in the GKE "
            "stack, add a Secret Manager version holding the LiveKit credential"
        )
        return None
    return value


def _why_unreadable(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "it is a directory, not a file"
    if isinstance(error, PermissionError):
        return "not readable: permission denied for this user"
    # e.g. a parent of the path is a file: "Not a directory"
    return f"not readable: {error.strerror or type(error).__name__}"


def _check_vertex_only(env: Mapping[str, str], problems: list[str]) -> None:
    """Gemini is reached only through Vertex AI with Application Default Credentials."""
    raw = env.get("GOOGLE_GENAI_USE_VERTEXAI", "true").strip().lower()
    if raw in _FALSE:
        problems.append(
            f"GOOGLE_GENAI_USE_VERTEXAI={raw!r} is not supported: this agent reaches Gemini only "
            "through Vertex AI with Application Default Credentials (Workload Identity); "
            "set it to true or leave it unset"
        )
    elif raw not in _TRUE:
        problems.append(
            f"GOOGLE_GENAI_USE_VERTEXAI={raw!r} is not a boolean: set it to true (or 1)"
        )
    if env.get("GOOGLE_API_KEY"):
        problems.append(
            "GOOGLE_API_KEY is set (value hidden) but this agent never uses API keys: Gemini is "
            "reached through Vertex AI with Workload Identity; remove the variable"
        )


def _read_call_life(reader: _Reader) -> dict[str, object]:
    return {
        "max_call_seconds": reader.integer(
            "AGENT_MAX_CALL_SECONDS",
            DEFAULT_MAX_CALL_SECONDS,
            10,
            MAX_MAX_CALL_SECONDS,
            "seconds a call may last before the agent says goodbye and deletes the room",
        ),
        "call_warning_seconds": reader.integer(
            "AGENT_CALL_WARNING_SECONDS",
            DEFAULT_CALL_WARNING_SECONDS,
            1,
            MAX_MAX_CALL_SECONDS,
            "seconds before the call limit at which the caller is warned",
        ),
        "silence_timeout_seconds": reader.integer(
            "AGENT_SILENCE_TIMEOUT_SECONDS",
            DEFAULT_SILENCE_TIMEOUT_SECONDS,
            5,
            3600,
            "seconds of silence on both sides after which an abandoned call is ended",
        ),
        "gemini_connect_retries": reader.integer(
            "AGENT_GEMINI_CONNECT_RETRIES",
            DEFAULT_GEMINI_CONNECT_RETRIES,
            0,
            MAX_GEMINI_CONNECT_RETRIES,
            "fresh Gemini sessions tried per model after a fatal error",
        ),
        "gemini_fallback_location": reader.pattern(
            "AGENT_GEMINI_FALLBACK_LOCATION",
            "",
            _LOCATION,
            "empty (no fallback region) or a Vertex AI region such as europe-west4",
        ),
        "gemini_fallback_model": reader.pattern(
            "AGENT_GEMINI_FALLBACK_MODEL",
            "",
            _MODEL_ID,
            f"empty (the primary model) or a Gemini Live model id such as {DEFAULT_GEMINI_MODEL}",
        ),
        "compression_trigger_tokens": reader.integer(
            "AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS",
            DEFAULT_COMPRESSION_TRIGGER_TOKENS,
            1000,
            MAX_CONTEXT_TOKENS,
            "context tokens at which Gemini compresses the conversation (model limit 128000 input tokens)",
        ),
        "compression_target_tokens": reader.integer(
            "AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS",
            DEFAULT_COMPRESSION_TARGET_TOKENS,
            500,
            MAX_CONTEXT_TOKENS,
            "context tokens the sliding window keeps after compressing",
        ),
        "log_conversation_text": reader.boolean("AGENT_LOG_CONVERSATION_TEXT", False),
        "log_call_ids": reader.pattern(
            "AGENT_LOG_CALL_IDS",
            DEFAULT_LOG_CALL_IDS,
            re.compile(rf"^({'|'.join(LOG_CALL_IDS_MODES)})$"),
            f"one of {', '.join(LOG_CALL_IDS_MODES)}",
        ),
    }


def _read_tool_servers(env: Mapping[str, str], problems: list[str]) -> dict[str, object]:
    """AGENT_TOOL_SERVERS=name=url,...: each name a DNS label (its token lives in
    <AGENT_TOOL_TOKEN_DIR>/<name>/token), each URL http(s)://host[:port]/mcp (streamable HTTP)."""
    raw = env.get("AGENT_TOOL_SERVERS", "").strip()
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
    token_dir = env.get("AGENT_TOOL_TOKEN_DIR", "").strip() or DEFAULT_TOOL_TOKEN_DIR
    if not token_dir.startswith("/"):
        problems.append(f"AGENT_TOOL_TOKEN_DIR={token_dir!r} is invalid: expected an absolute path")
    return {"tool_servers": tuple(servers), "tool_token_dir": token_dir}


def _read_persona(reader: _Reader) -> dict[str, object]:
    """AGENT_PERSONA's form only (importing it needs the framework: worker.run does that);
    AGENT_VOICE against the plugin's list."""
    return {
        "persona": reader.pattern(
            "AGENT_PERSONA",
            DEFAULT_PERSONA,
            _PERSONA,
            f"module:attribute of a Persona, e.g. {DEFAULT_PERSONA} or my_agent.persona:PERSONA",
        ),
        "voice": reader.voice("AGENT_VOICE"),
    }


def _check_call_life(values: Mapping[str, object], problems: list[str]) -> None:
    limit, warning = values["max_call_seconds"], values["call_warning_seconds"]
    if isinstance(limit, int) and isinstance(warning, int) and warning >= limit:
        problems.append(
            f"AGENT_CALL_WARNING_SECONDS={warning} is not below AGENT_MAX_CALL_SECONDS={limit}: "
            "the warning must come before the end of the call"
        )
    trigger, target = values["compression_trigger_tokens"], values["compression_target_tokens"]
    if isinstance(trigger, int) and isinstance(target, int) and target >= trigger:
        problems.append(
            f"AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS={target} is not below "
            f"AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS={trigger}: compression must shrink the "
            "context"
        )


def _check_ports_differ(values: Mapping[str, object], problems: list[str]) -> None:
    health, metrics = values["health_port"], values["metrics_port"]
    if health is not None and health == metrics:
        problems.append(
            f"AGENT_HEALTH_PORT and AGENT_METRICS_PORT are both {health}: the health server and "
            "the metrics server need different ports (defaults 8081 and 9100)"
        )


@dataclass
class _Reader:
    """Reads one variable at a time; records a problem instead of raising, returns None."""

    env: Mapping[str, str]
    problems: list[str]

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        return value.strip()

    def _required(self, name: str, what: str) -> str | None:
        raw = self._raw(name)
        if not raw:
            self.problems.append(f"{name} is required but not set: {what}")
            return None
        return raw

    def url(self, name: str) -> str | None:
        raw = self._required(name, "the LiveKit server URL, e.g. wss://livekit.example.com")
        if raw is None:
            return None
        scheme, sep, rest = raw.partition("://")
        host = rest.split("/", 1)[0]
        if not sep or scheme.lower() not in _URL_SCHEMES or not host:
            self.problems.append(
                f"{name}={raw!r} is not a LiveKit server URL: use "
                f"{', '.join(s + '://host[:port]' for s in _URL_SCHEMES)}"
            )
            return None
        return raw

    def integer(self, name: str, default: int, low: int, high: int, what: str) -> int | None:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(
                f"{name}={raw!r} is not an integer: allowed {low}..{high} ({what})"
            )
            return None
        if not low <= value <= high:
            self.problems.append(f"{name}={value} is out of range: allowed {low}..{high} ({what})")
            return None
        return value

    def fraction(self, name: str, default: float) -> float | None:
        rule = (
            "allowed a number in (0, 1]: the share of the container CPU limit at which the "
            "worker reports itself full"
        )
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number: {rule}")
            return None
        if not math.isfinite(value) or not 0.0 < value <= 1.0:
            self.problems.append(f"{name}={raw} is out of range: {rule}")
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool | None:
        raw = self._raw(name)
        if not raw:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean: allowed true, false, 1 or 0")
        return None

    def voice(self, name: str) -> str | None:
        raw = self._raw(name)
        if not raw:
            return ""
        if raw not in GEMINI_VOICES:
            near = difflib.get_close_matches(raw.capitalize(), GEMINI_VOICES, n=1, cutoff=0.75)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self.problems.append(
                f"{name}={raw!r} is not a Gemini Live voice{hint}: allowed empty (the persona's "
                f"voice) or one of {', '.join(GEMINI_VOICES)}"
            )
            return None
        return raw

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if not raw:
            return default
        if raw.upper() not in allowed:
            self.problems.append(f"{name}={raw!r} is not a log level: allowed {', '.join(allowed)}")
            return None
        return raw.upper()

    def pattern(
        self,
        name: str,
        default: str | None,
        regex: re.Pattern[str],
        what: str,
    ) -> str | None:
        """Optional unless ``default`` is None; an empty value means "use the default"."""
        raw = self._raw(name)
        if not raw:
            if default is None:
                self.problems.append(f"{name} is required but not set: {what}")
            return default
        if not regex.match(raw):
            self.problems.append(f"{name}={raw!r} is invalid: expected {what}")
            return None
        return raw
