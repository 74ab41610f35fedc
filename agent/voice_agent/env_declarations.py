"""Every environment variable of the agent, declared once: name, kind, group, description,
default, bounds or choices or pattern, unit, why, whether it is secret, and where the typed value
lands in AgentSettings.

From this table come the loader's single-value checks and their messages (``read_variables``:
one generic reader, no reader per variable; settings.py builds AgentSettings from it and keeps
the rules that span several variables), and docs/agent-settings.md
(``python -m voice_agent.env_declarations`` writes it, ``--check`` says when it is stale;
agent/tests/test_env_declarations.py checks the committed file). The stack's settings follow
the same pattern in domain/declarations.py; the agent has its own venv and image, so nothing is
shared but the idea.

Standard library only, no livekit and no relative imports: ``python -m voice_agent`` validates
settings before it imports the framework, and the stack's tests (another venv) load this file by
path to check that every variable the pod spec sets is declared here.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED: Any = object()  # a default that says: no default, the variable must be set

# livekit-agents 1.8.9 worker.DRAIN_TIMEOUT (3600 s since 1.8; older docs say 1800).
DEFAULT_DRAIN_TIMEOUT_SECONDS = 3600
# livekit-agents 1.8.9 production default (worker._default_load_threshold.prod_default).
DEFAULT_LOAD_THRESHOLD = 0.7
# livekit-agents 1.8.9 production health port (AgentServer._default_port.prod_default).
DEFAULT_HEALTH_PORT = 8081
DEFAULT_METRICS_PORT = 9100
# The Vertex AI Live API model livekit-plugins-google 1.8.9 picks when vertexai=True.
DEFAULT_GEMINI_MODEL = "gemini-live-2.5-flash-native-audio"
# Remote tools (tools_mcp.py): where the kubelet writes each server's projected token.
DEFAULT_TOOL_TOKEN_DIR = "/var/run/secrets/tokens"
# The persona (persona_api.py): module:attribute of a voice_agent.persona_api.Persona.
DEFAULT_PERSONA = "voice_agent.persona:SAMPLE"
# Where in-cluster clients find the token and CA (k8s/deletion_cost.py mounts them there).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# gemini-live-2.5-flash-native-audio takes at most 128,000 input tokens on Vertex AI (model
# card, "Maximum input tokens: 128,000",
# https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/2-5-flash-live-api);
# "128k" there is decimal, not 131072.
MAX_CONTEXT_TOKENS = 128_000
# Gemini Live's prebuilt voices, one home for the agent and the stack (domain/declarations.py
# reads it): the list livekit-plugins-google 1.8.9 declares (realtime/api_proto.py Voice),
# checked against the installed plugin by tests/test_sample_persona.py.
VOICES_FILE = Path(__file__).with_name("data") / "gemini_voices.json"
GEMINI_VOICES: tuple[str, ...] = tuple(json.loads(VOICES_FILE.read_text())["voices"])
TRUE, FALSE = ("true", "1"), ("false", "0")
# Room names, participant identities and phone numbers in logs (privacy.py): off = removed,
# hashed = keyed HMAC per pod life, plain = as they are. The stack offers the same list
# (domain/settings.py LOG_CALL_IDS_MODES; tests/k8s/test_workload.py compares them).
LOG_CALL_IDS_MODES = ("off", "hashed", "plain")
_URL_SCHEMES = ("ws", "wss", "http", "https")
_LOCATION = re.compile(r"^(global|[a-z]+-[a-z]+[0-9]+)$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_ABSOLUTE = re.compile(r"^/")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class Var:
    """One environment variable: what it is, what it may hold, where its value lands, and why."""

    name: str
    kind: str                  # text | integer | number | boolean | choice | credential
    group: str                 # the section of docs/agent-settings.md
    description: str
    default: Any = REQUIRED    # empty or unset means the default; REQUIRED: must be set
    to: str = ""               # field of AgentSettings ("recovery.lease_seconds"); "" = none
    low: float | None = None   # integer/number bounds
    high: float | None = None
    low_open: bool = False     # number: the low bound itself is refused
    unit: str = ""             # "s", "MB", "tokens": for the doc
    why: str = ""              # said in parentheses after the allowed range in errors and docs
    choices: Sequence[str] = ()
    case: str = ""             # choice: "upper" or "lower", how the value is normalised
    noun: str = ""             # choice: "a log level" makes the error "is not a log level"
    pattern: re.Pattern[str] | None = None
    allowed: str = ""          # the rule in words: "is invalid: expected {allowed}"
    # A single-value rule the kinds cannot say: raw -> the rest of the error line, or None.
    check: Callable[[str], str | None] | None = field(default=None, compare=False)
    convert: Callable[[Any], Any] | None = field(default=None, compare=False)
    secret: bool = False       # the value is never shown, in errors or logs
    # False: not read by load_settings; who reads it is said in the description.
    at_start: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        """The variables it covers: a credential comes as the value or as NAME_FILE."""
        return (self.name, f"{self.name}_FILE") if self.kind == "credential" else (self.name,)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def span(v: Var) -> str:
    """The allowed range and why, as the errors say it."""
    if v.low_open:
        return f"a number in ({_num(v.low)}, {_num(v.high)}]: {v.why}"
    return f"{_num(v.low)}..{_num(v.high)}" + (f" ({v.why})" if v.why else "")


def read(v: Var, raw: str) -> tuple[Any, str | None]:
    """One non-empty, stripped value: (typed value, None) or (None, the error line)."""
    shown = f"{v.name}={raw!r}"
    if v.kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            return None, f"{shown} is not an integer: allowed {span(v)}"
        if not v.low <= value <= v.high:
            return None, f"{v.name}={value} is out of range: allowed {span(v)}"
        return value, None
    if v.kind == "number":
        try:
            value = float(raw)
        except ValueError:
            return None, f"{shown} is not a number: allowed {span(v)}"
        too_low = value <= v.low if v.low_open else value < v.low
        # NaN compares false with everything, so it would slip through both bounds.
        if not math.isfinite(value) or too_low or value > v.high:
            return None, f"{v.name}={raw} is out of range: allowed {span(v)}"
        return value, None
    if v.kind == "boolean":
        if raw.lower() in TRUE + FALSE:
            return raw.lower() in TRUE, None
        return None, f"{shown} is not a boolean: allowed true, false, 1 or 0"
    if v.kind == "choice":
        value = raw.upper() if v.case == "upper" else raw.lower() if v.case == "lower" else raw
        if value in v.choices:
            return value, None
        because = f" ({v.why})" if v.why else ""
        return None, (f"{shown} is {'not ' + v.noun if v.noun else 'invalid'}: "
                      f"allowed {', '.join(v.choices)}{because}")
    if v.pattern is not None and not v.pattern.match(raw):
        return None, f"{shown} is invalid: expected {v.allowed}"
    rule = v.check(raw) if v.check else None
    return (raw, None) if rule is None else (None, f"{v.name}{'' if v.secret else '=' + repr(raw)} {rule}")


def read_variables(env: Mapping[str, str], problems: list[str],
                   declared: Sequence[Var]) -> dict[str, Any]:
    """Every declared variable read at start: name -> typed value (the default when unset or
    empty, None when invalid); one line per problem appended, in declaration order."""
    values: dict[str, Any] = {}
    for v in declared:
        if not v.at_start:
            continue
        if v.kind == "credential":
            values[v.name] = read_secret(env, v.name, problems)
            continue
        raw = (env.get(v.name) or "").strip()
        if not raw and v.default is REQUIRED:
            problems.append(f"{v.name} is required but not set: {v.allowed}")
            values[v.name] = None
            continue
        value, problem = read(v, raw) if raw else (v.default, None)
        if problem:
            problems.append(problem)
        values[v.name] = v.convert(value) if v.convert and value is not None else value
    return values


def landed(values: Mapping[str, Any], declared: Sequence[Var], section: str = "") -> dict[str, Any]:
    """The values of one section of AgentSettings ("" = its own fields, "recovery", ...) by
    field name; invalid ones (None) left out so the dataclass default stands."""
    prefix = f"{section}." if section else ""
    return {v.to[len(prefix):]: values[v.name] for v in declared
            if v.to and v.name in values and values[v.name] is not None
            and v.to.startswith(prefix) and "." not in v.to[len(prefix):]}


# ---- the credential kind: the value, or a file holding it -------------------------------------


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


# ---- single-value rules the kinds cannot say ---------------------------------------------------


def livekit_url_rule(raw: str) -> str | None:
    """ws(s):// or http(s):// and a host"""
    scheme, sep, rest = raw.partition("://")
    if sep and scheme.lower() in _URL_SCHEMES and rest.split("/", 1)[0]:
        return None
    return f"is not a LiveKit server URL: use {', '.join(s + '://host[:port]' for s in _URL_SCHEMES)}"


def vertex_rule(raw: str) -> str | None:
    """true or 1 (Vertex AI only)"""
    if raw.lower() in TRUE:
        return None
    if raw.lower() in FALSE:
        return ("is not supported: this agent reaches Gemini only through Vertex AI with Application Default "
                "Credentials (Workload Identity); set it to true or leave it unset")
    return "is not a boolean: set it to true (or 1)"


def api_key_rule(raw: str) -> str | None:
    """must be unset"""
    return ("is set (value hidden) but this agent never uses API keys: Gemini is reached through Vertex AI with "
            "Workload Identity; remove the variable")


def dsn_rule(raw: str) -> str | None:
    """empty or postgresql://USER@HOST:PORT/DATABASE"""
    if raw.startswith(("postgresql://", "postgres://")):
        return None
    return ("(value hidden) is not a PostgreSQL URL: use postgresql://USER@HOST:PORT/DATABASE (in GKE the Cloud "
            "SQL Auth Proxy on 127.0.0.1), or leave it empty to turn crash recovery off")


# The Cloud KMS key that wraps each call's checkpoint data key (recovery/envelope.py):
# projects/*/locations/*/keyRings/*/cryptoKeys/*, key ring and key ids 1-63 of [a-zA-Z0-9_-]
# (cloud.google.com/kms/docs/resource-hierarchy). "none" is the one explicit way to plaintext
# rows, for a laptop or a test without Google credentials; the stack never renders it.
KMS_PLAINTEXT = "none"
KMS_KEY_PATTERN = re.compile(
    r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z0-9-]{1,63}"
    r"/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}")
KMS_KEY_ALLOWED = ("allowed projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY (required with "
                   "AGENT_CHECKPOINT_DSN set: checkpoints hold the conversation), or 'none' for plaintext rows "
                   "outside GCP")


def kms_key_rule(raw: str) -> str | None:
    """a Cloud KMS key resource name, or none"""
    if raw == KMS_PLAINTEXT or KMS_KEY_PATTERN.fullmatch(raw):
        return None
    return f"is not a Cloud KMS key: {KMS_KEY_ALLOWED}"


def kms_endpoint_rule(raw: str) -> str | None:
    """http(s)://HOST[:PORT]"""
    if re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+", raw.rstrip("/")):
        return None
    return "is not an endpoint: allowed http(s)://HOST[:PORT]"


def voice_rule(raw: str) -> str | None:
    """empty (the persona's voice) or a voice of voice_agent/data/gemini_voices.json"""
    if raw in GEMINI_VOICES:
        return None
    near = difflib.get_close_matches(raw.capitalize(), GEMINI_VOICES, n=1, cutoff=0.75)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return (f"is not a Gemini Live voice{hint}: allowed empty (the persona's voice) or one of "
            f"{', '.join(GEMINI_VOICES)}")


# ---- the table -------------------------------------------------------------------------------

GROUPS = {
    "livekit": "LiveKit connection",
    "vertex": "Gemini on Vertex AI",
    "worker": "worker and its HTTP servers",
    "call life": 'call life (call_life.py, model.py; docs/agent.md "Call life")',
    "persona": "persona and remote tools (persona_api.py, tools_mcp.py; docs/your-agent.md, docs/tools.md)",
    "crash recovery": "crash recovery (recovery/; docs/recovery.md)",
    "admission": "admission (admission.py, deletion_cost.py; docs/workload.md)",
    "process": "process (not read by the settings loader)",
}

VARIABLES: tuple[Var, ...] = (
    # --- livekit
    Var("LIVEKIT_URL", "text", "livekit", "The LiveKit server the worker registers with.", to="livekit_url",
        allowed="the LiveKit server URL, e.g. wss://livekit.example.com", check=livekit_url_rule),
    Var("LIVEKIT_API_KEY", "credential", "livekit",
        "LiveKit API key: LIVEKIT_API_KEY_FILE, a file read once at start (the GKE stack mounts "
        "/var/run/secrets/livekit/api-key from Secret Manager; surrounding whitespace stripped), or the value in "
        "LIVEKIT_API_KEY (the LiveKit Kubernetes Secret, a local shell); exactly one. Never logged.",
        to="livekit_api_key", allowed="exactly one of the value or a readable, non-empty UTF-8 file", secret=True),
    Var("LIVEKIT_API_SECRET", "credential", "livekit", "LiveKit API secret, likewise (.../api-secret).",
        to="livekit_api_secret", allowed="exactly one of the value or a readable, non-empty UTF-8 file",
        secret=True),
    # --- vertex
    Var("GOOGLE_CLOUD_PROJECT", "text", "vertex", "The project whose Vertex AI endpoint serves Gemini Live.",
        to="gcp_project", pattern=re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"),
        allowed="a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a letter "
                "(the project whose Vertex AI serves Gemini Live)"),
    Var("GOOGLE_CLOUD_LOCATION", "text", "vertex", "Vertex AI location of the model.", default="us-central1",
        to="gcp_location", pattern=_LOCATION, allowed="a Vertex AI region such as us-central1 or europe-west4, or global"),
    Var("AGENT_GEMINI_MODEL", "text", "vertex", "Gemini Live model id on Vertex AI.", default=DEFAULT_GEMINI_MODEL,
        to="gemini_model", pattern=_MODEL_ID, allowed=f"a Gemini Live model id such as {DEFAULT_GEMINI_MODEL}"),
    Var("GOOGLE_GENAI_USE_VERTEXAI", "text", "vertex",
        "Gemini is reached only through Vertex AI with Application Default Credentials; false is refused.",
        default="true", check=vertex_rule),
    Var("GOOGLE_API_KEY", "text", "vertex", "API keys are refused: Workload Identity (ADC) only.", default="",
        check=api_key_rule, secret=True),
    # --- worker
    Var("AGENT_DRAIN_TIMEOUT_SECONDS", "integer", "worker",
        "How long SIGTERM waits for running sessions to finish; at most 7 days, the longest GKE Autopilot keeps "
        "a pod for a session (extended-duration pods).",
        default=DEFAULT_DRAIN_TIMEOUT_SECONDS, to="drain_timeout_seconds", low=1,
        high=7 * 24 * 3600, unit="s", why="seconds SIGTERM waits for running sessions; 0 would wait forever"),
    Var("AGENT_LOAD_THRESHOLD", "number", "worker",
        "Worker load (the largest of CPU, memory and calls shares, admission.py) at which it reports itself full.",
        default=DEFAULT_LOAD_THRESHOLD, to="load_threshold", low=0, high=1, low_open=True,
        why="the share of the container CPU limit at which the worker reports itself full"),
    Var("AGENT_HEALTH_PORT", "integer", "worker", "The framework's HTTP server: GET / (health), GET /worker.",
        default=DEFAULT_HEALTH_PORT, to="health_port", low=1, high=65535, why="a TCP port"),
    Var("AGENT_METRICS_PORT", "integer", "worker",
        "Prometheus GET /metrics and the probes /ready and /live; must differ from AGENT_HEALTH_PORT.",
        default=DEFAULT_METRICS_PORT, to="metrics_port", low=1, high=65535, why="a TCP port"),
    Var("AGENT_HTTP_HOST", "text", "worker", "Address both HTTP servers bind (tests use 127.0.0.1).",
        default="0.0.0.0", to="http_host", pattern=re.compile(r"^[0-9A-Za-z.:-]+$"),
        allowed="an IP address or host name to bind, e.g. 0.0.0.0 (all interfaces) or 127.0.0.1"),
    Var("AGENT_LOG_LEVEL", "choice", "worker", "Log level; lifecycle lines are always logged.", default="INFO",
        to="log_level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), case="upper", noun="a log level"),
    Var("AGENT_NAME", "text", "worker",
        "Empty: automatic dispatch to every new room; set: explicit dispatch only (docs/agent.md).", default="",
        to="agent_name", pattern=re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        allowed="empty (automatic dispatch) or up to 128 letters, digits, '.', '_' or '-'"),
    Var("AGENT_METRICS_LINGER_SECONDS", "integer", "worker",
        "/metrics stays up this long after a finished drain, so one more scrape sees the pod's last counters "
        "(the pod spec sets the scrape interval + 5 s).", default=0, to="metrics_linger_seconds", low=0, high=120,
        unit="s", why="seconds /metrics stays up after a finished drain: one scrape interval plus a margin"),
    Var("AGENT_VERSION", "text", "worker",
        "The release (image tag or digest) on metrics and lifecycle lines; a process started without a release "
        "(a laptop, a test) calls itself unversioned.", default="unversioned", to="version",
        # as k8s/pod.py sets it: an image tag (128 of [A-Za-z0-9_.-]) or a digest (sha256:<64 hex>)
        pattern=re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"),
        allowed="the release: an image tag or digest (up to 128 letters, digits, '.', '_', ':' or '-'), "
                "e.g. v1.4.2 or sha256:<64 hex>"),
    # --- call life
    Var("AGENT_MAX_CALL_SECONDS", "integer", "call life",
        "A call ends (warning, goodbye, room deleted) after this long; 2700 is prod's maxSessionMinutes (45 min).",
        default=2700, to="max_call_seconds", low=10, high=24 * 3600, unit="s",
        why="seconds a call may last before the agent says goodbye and deletes the room"),
    Var("AGENT_CALL_WARNING_SECONDS", "integer", "call life",
        "The caller is warned this long before AGENT_MAX_CALL_SECONDS; must be below it.", default=60,
        to="call_warning_seconds", low=1, high=24 * 3600, unit="s",
        why="seconds before the call limit at which the caller is warned"),
    # livekit-agents 1.8.9 AgentSession(user_away_timeout=15.0) marks the caller "away" after
    # 15 s of shared silence; ending a call needs a longer, deliberate wait.
    Var("AGENT_SILENCE_TIMEOUT_SECONDS", "integer", "call life",
        "A call where nobody spoke for this long says goodbye and the room is deleted.", default=120,
        to="silence_timeout_seconds", low=5, high=3600, unit="s",
        why="seconds of silence on both sides after which an abandoned call is ended"),
    Var("AGENT_GEMINI_CONNECT_RETRIES", "integer", "call life",
        "New Gemini sessions tried per model after a fatal model error.", default=2, to="gemini_connect_retries",
        low=0, high=5, why="fresh Gemini sessions tried per model after a fatal error"),
    Var("AGENT_GEMINI_FALLBACK_LOCATION", "text", "call life",
        "Vertex AI region tried once the primary is exhausted; empty = none.", default="",
        to="gemini_fallback_location", pattern=_LOCATION,
        allowed="empty (no fallback region) or a Vertex AI region such as europe-west4"),
    Var("AGENT_GEMINI_FALLBACK_MODEL", "text", "call life",
        "Model tried once the primary is exhausted; empty = the primary model.", default="",
        to="gemini_fallback_model", pattern=_MODEL_ID,
        allowed=f"empty (the primary model) or a Gemini Live model id such as {DEFAULT_GEMINI_MODEL}"),
    # Compress at 80 % of the model's input limit, keep half of it.
    Var("AGENT_CONTEXT_COMPRESSION_TRIGGER_TOKENS", "integer", "call life",
        "Context size at which Gemini compresses the conversation (sliding window).", default=102_400,
        to="compression_trigger_tokens", low=1000, high=MAX_CONTEXT_TOKENS, unit="tokens",
        why="context tokens at which Gemini compresses the conversation (model limit 128000 input tokens)"),
    Var("AGENT_CONTEXT_COMPRESSION_TARGET_TOKENS", "integer", "call life",
        "Context size the sliding window keeps; must be below the trigger.", default=64_000,
        to="compression_target_tokens", low=500, high=MAX_CONTEXT_TOKENS, unit="tokens",
        why="context tokens the sliding window keeps after compressing"),
    Var("AGENT_LOG_CONVERSATION_TEXT", "boolean", "call life",
        "true: conversation text in DEBUG lines (never INFO and above); prod must refuse it.", default=False,
        to="log_conversation_text"),
    Var("AGENT_LOG_CALL_IDS", "choice", "call life",
        "Room names, participant identities and phone numbers in logs: off = removed, hashed = keyed HMAC "
        "(one key per pod life), plain = as they are. The room SID, job and session ids always stay.",
        default="off", to="log_call_ids", choices=LOG_CALL_IDS_MODES, noun="a call-id mode"),
    Var("AGENT_MODEL_PRICES", "text", "call life",
        "USD per million tokens by <direction>_<modality> (JSON), rendered by the stack from "
        "domain/data/prices.json; read by each job process (call_usage.py), where a bad value costs the call's "
        "cost estimate only, never the start. Empty: no estimate.", default="", at_start=False,
        allowed="empty or a JSON object of <direction>_<modality>: USD >= 0"),
    # --- persona and tools
    Var("AGENT_PERSONA", "text", "persona",
        "module:attribute of the Persona (persona_api.py) the calls get; only its form is checked here, the "
        "import happens at start (worker.run) and a missing module or attribute exits 2 with one line.",
        default=DEFAULT_PERSONA, to="persona",
        pattern=re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"),
        allowed=f"module:attribute of a Persona, e.g. {DEFAULT_PERSONA} or my_agent.persona:PERSONA"),
    Var("AGENT_VOICE", "text", "persona", "Gemini Live voice for every call (stack setting agentVoice).",
        default="", to="voice", check=voice_rule),
    Var("AGENT_TOOL_SERVERS", "text", "persona",
        "Comma-separated name=url MCP tool servers (tools_mcp.py), e.g. "
        "places=http://places-mcp.voice-agents.svc:8080/mcp; each name a DNS label, each URL "
        "http(s)://host[:port]/mcp, names unique. Empty: no remote tools.", default="",
        allowed="empty or name=url,... (names unique DNS labels, urls http(s)://host[:port]/mcp)"),
    Var("AGENT_TOOL_TOKEN_DIR", "text", "persona",
        "Projected service-account tokens, one <dir>/<name>/token per tool server.", default=DEFAULT_TOOL_TOKEN_DIR,
        to="tool_token_dir", pattern=_ABSOLUTE, allowed="an absolute path"),
    # --- crash recovery: the lease is the main term of "seconds, not the call". Target (issue
    # 25): the caller hears the replacement of a SIGKILLed agent within 3 s (p50). Measured
    # (agent/bench/recovery.py, per-trial phases, lease 3 s / poll 0.5 s, load 7-10): the lease
    # ran out 2.8-2.9 s after the kill, and from then on 0.9-1.6 s went to the watcher's poll,
    # claim + CreateDispatch, a prewarmed job accepting, the take-over and the first audio; the
    # lease alone was 3/4 of the 3.85 s p50. So: lease 2 s, poll 0.25 s, i.e. about
    # 2 + 0.125 + 0.9 s. A shorter lease is safe now that it is renewed by a thread of its own
    # (recovery/checkpoints.py; a stalled job loop keeps it) while the room attribute covers a
    # failed database path (recovery/watcher.py): a live agent is evicted only when both lapse,
    # i.e. its whole process got no CPU for a full lease. The tests run all their eviction and
    # fault scenarios at the low bound, 1.5 s (tests/recovery_pods.py). A renewal every lease/3
    # survives two lost renewals; one UPDATE per call every 0.67 s and one indexed SELECT per
    # worker every 0.25 s are cheap for Cloud SQL.
    Var("AGENT_CHECKPOINT_DSN", "text", "crash recovery",
        "postgresql:// URL of the checkpoint database; empty = crash recovery off. In GKE, the Cloud SQL Auth "
        "Proxy sidecar on 127.0.0.1 (may hold a user name; never logged).", default="", to="recovery.dsn",
        check=dsn_rule, secret=True),
    Var("AGENT_CHECKPOINT_LEASE_SECONDS", "number", "crash recovery",
        "A job not heard from for this long is presumed dead (renewed every lease/3).", default=2.0,
        to="recovery.lease_seconds", low=1.5, high=120.0, unit="s",
        why="seconds without a renewal after which a call's agent is presumed dead"),
    Var("AGENT_RECOVERY_POLL_SECONDS", "number", "crash recovery",
        "How often each worker's watcher looks for dead calls.", default=0.25, to="recovery.poll_seconds",
        low=0.2, high=60.0, unit="s", why="seconds between two looks for dead calls"),
    # long enough for a dispatch to reach a prewarmed job process and the job to take the room over
    Var("AGENT_RECOVERY_CLAIM_SECONDS", "number", "crash recovery",
        "A re-dispatch not taken over within this may be retried by another worker; must exceed the lease.",
        default=20.0, to="recovery.claim_seconds", low=2.0, high=600.0, unit="s",
        why="seconds a re-dispatch may take before another worker retries it"),
    # A call gets at most store.MAX_RECOVERIES_PER_CALL (5) re-dispatches of at most the claim
    # (20 s) each: 15 minutes covers that several times over and keeps a conversation no longer
    # than it can still be resumed.
    Var("AGENT_CHECKPOINT_RETENTION_SECONDS", "integer", "crash recovery",
        "The row of a call whose agent died (and nobody resumed) is deleted after this; the sweep runs in every "
        "worker, watcher on or off.", default=15 * 60, to="recovery.retention_seconds", low=60,
        high=30 * 24 * 3600, unit="s", why="seconds an abandoned call's checkpoint is kept"),
    # The Gemini API documents handles as "valid for 2 hr after the last session termination"
    # (https://ai.google.dev/gemini-api/docs/live-session, Session resumption; Vertex AI's "Start
    # and manage live sessions" page names no other figure). A handle's age is counted from when
    # the job read it, never later than the session's end, so it is never underestimated. The
    # documented lifetime is also the ceiling: a longer setting would offer handles Gemini
    # refuses, costing the call a failed connect before the replay.
    Var("AGENT_GEMINI_HANDLE_TTL_SECONDS", "integer", "crash recovery",
        "A Gemini resumption handle older than this is not used; the stored conversation is replayed instead.",
        default=2 * 3600, to="recovery.handle_ttl_seconds", low=0, high=2 * 3600, unit="s",
        why="seconds a Gemini resumption handle is trusted; 0 = always replay the conversation"),
    Var("AGENT_CHECKPOINT_DB_TIMEOUT_SECONDS", "number", "crash recovery",
        "Per connect or statement; slower means no checkpoint this time.", default=2.0,
        to="recovery.db_timeout_seconds", low=0.1, high=30.0, unit="s",
        why="seconds one database connect or statement may take"),
    Var("AGENT_RECOVERY_KMS_KEY", "text", "crash recovery",
        "Cloud KMS key wrapping each call's checkpoint data key (AES-256-GCM envelope); required with "
        "AGENT_CHECKPOINT_DSN set, 'none' = plaintext rows (local use only; the stack always sets its key).",
        default="", to="recovery.kms_key", check=kms_key_rule, allowed=KMS_KEY_ALLOWED,
        convert=lambda raw: "" if raw == KMS_PLAINTEXT else raw),
    Var("AGENT_RECOVERY_KMS_ENDPOINT", "text", "crash recovery",
        "The Cloud KMS REST endpoint (tests point it at a stand-in on loopback).",
        default="https://cloudkms.googleapis.com", to="recovery.kms_endpoint", check=kms_endpoint_rule,
        allowed="http(s)://HOST[:PORT]", convert=lambda raw: raw.rstrip("/")),
    Var("AGENT_RECOVERY_WATCHER", "choice", "crash recovery",
        "on: this worker re-dispatches calls whose agent died (self-hosted LiveKit); off: LiveKit Cloud "
        "restarts jobs itself.", default="on", to="recovery.watcher", choices=("on", "off"), case="lower",
        why="off on LiveKit Cloud, which restarts jobs itself", convert=lambda value: value == "on"),
    # --- admission
    Var("AGENT_MAX_CALLS", "integer", "admission",
        "Calls this worker takes at most (the per-pod cap domain/capacity.py derives); 0 = no cap.", default=0,
        to="admission.max_calls", low=0, high=1000, unit="calls", why="calls one worker takes at most; 0 = no cap"),
    # Autopilot's largest pod is 110 GiB (domain/sizes.py MAX_MEM_MI).
    Var("AGENT_JOB_MEMORY_LIMIT_MB", "integer", "admission",
        "A job process above this (PSS) is killed by the framework; 0 = never.", default=0,
        to="admission.job_memory_limit_mb", low=0, high=110 * 1024, unit="MB",
        why="MB at which a job process is killed; 0 = never"),
    # livekit-agents 1.8.9 ServerOptions.job_memory_warn_mb default.
    Var("AGENT_JOB_MEMORY_WARN_MB", "integer", "admission",
        "A job process above this is logged; 0 = never; must be below the limit when there is one.",
        default=1000, to="admission.job_memory_warn_mb", low=0, high=110 * 1024, unit="MB",
        why="MB at which a job process is logged; 0 = never"),
    Var("AGENT_POD_NAME", "text", "admission",
        "This pod (downward API); set with AGENT_POD_NAMESPACE, the worker keeps the pod's deletion cost "
        "(deletion_cost.py). Empty: it does not.", default="", to="admission.pod_name", pattern=_K8S_NAME,
        allowed="a Kubernetes name (lower-case letters, digits, '-', '.')"),
    Var("AGENT_POD_NAMESPACE", "text", "admission", "This pod's namespace (downward API); set with AGENT_POD_NAME.",
        default="", to="admission.pod_namespace", pattern=_K8S_NAME,
        allowed="a Kubernetes name (lower-case letters, digits, '-', '.')"),
    Var("AGENT_KUBE_CREDENTIALS_DIR", "text", "admission",
        "The projected token and ca.crt for the Kubernetes API.", default=SERVICE_ACCOUNT_DIR,
        to="admission.kube_credentials_dir", pattern=_ABSOLUTE, allowed="an absolute path"),
    # --- process
    Var("HOME", "text", "process",
        "Caches and temporary files of Python and its libraries; the root filesystem is read-only, so the pod "
        "spec (and the image) point it at the writable /tmp volume.", default="/tmp", at_start=False,
        allowed="an absolute path"),
)

BY_NAME = {v.name: v for v in VARIABLES}


def default_of(name: str) -> Any:
    return BY_NAME[name].default


# ---- docs/agent-settings.md ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DOC = ROOT / "docs" / "agent-settings.md"


def accepts(v: Var) -> str:
    """What a variable may hold, in words."""
    if v.kind in ("integer", "number"):
        rule = f"({_num(v.low)}, {_num(v.high)}]" if v.low_open else f"{_num(v.low)}..{_num(v.high)}"
        return rule + ("" if v.kind == "integer" else " (a number)")
    if v.kind == "boolean":
        return "true, false, 1 or 0"
    if v.kind == "choice":
        return ", ".join(v.choices) + " (any case)"
    if v.pattern is not None:
        return v.allowed
    if v.check is not None:
        return (v.check.__doc__ or "").strip()
    return v.allowed or "text"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_doc() -> str:
    lines = ["# Agent environment variables", "",
             "<!-- Generated from agent/voice_agent/env_declarations.py by "
             "`python -m voice_agent.env_declarations` (in agent/); edit there, not here. -->", "",
             "Every environment variable of the voice agent, with its default and what it accepts. All but",
             "the two marked otherwise are read once at start (`python -m voice_agent start`), before the",
             "framework is imported; an empty value counts as unset. A bad value stops the process: one line",
             "per problem on stderr naming the",
             "variable, the value (never a secret's) and the allowed range, exit code 2, no traceback. Rules",
             "that span several variables (the two ports differ, the call warning comes before the call limit,",
             "the compression target is below its trigger, a recovery claim outlasts the lease, the memory",
             "warning is below the kill, pod name and namespace come together, tool servers are unique) are",
             "checked in `voice_agent/settings.py`, `recovery/config.py` and `admission.py`.", "",
             f"{len(VARIABLES)} variables; **required** ones have no default. The GKE stack sets most of them "
             "(`k8s/pod.py`).", ""]
    group = None
    for v in VARIABLES:
        if v.group != group:
            group = v.group
            lines += ["", f"## {GROUPS[group]}", "",
                      "| variable | type | default | accepts | unit | why | description |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
        if v.default is REQUIRED:
            default = "**required**"
        elif v.default == "":
            default = "empty"
        else:
            default = f"`{str(v.default).lower() if isinstance(v.default, bool) else v.default}`"
        kind = ("secret " if v.secret else "") + v.kind
        name = " or ".join(f"`{n}`" for n in v.names)
        note = "" if v.at_start else " Not read by the settings loader."
        lines.append(f"| {name} | {kind} | {default} | {_cell(accepts(v))} | {v.unit} | {_cell(v.why)} | "
                     f"{_cell(v.description + note)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Writes docs/agent-settings.md; with --check, says whether it is stale and writes nothing."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    text = settings_doc()
    if SETTINGS_DOC.exists() and SETTINGS_DOC.read_text() == text:
        print(f"up to date: {SETTINGS_DOC.relative_to(ROOT).as_posix()}")
        return 0
    if check:
        print(f"out of date (run python -m voice_agent.env_declarations in agent/): "
              f"{SETTINGS_DOC.relative_to(ROOT).as_posix()}", file=sys.stderr)
        return 1
    SETTINGS_DOC.write_text(text)
    print(f"wrote {SETTINGS_DOC.relative_to(ROOT).as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
