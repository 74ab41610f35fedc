"""Settings: defaults, every validation error, and the defaults shared with livekit-agents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voice_agent import settings as s
from voice_agent.settings import (
    AgentSettings,
    SettingsError,
    load_job_process_settings,
    load_settings,
    read_secret,
)

AGENT_DIR = Path(__file__).resolve().parents[1]


def _with(env: dict[str, str], **changes: str | None) -> dict[str, str]:
    updated = dict(env)
    for key, value in changes.items():
        if value is None:
            updated.pop(key, None)
        else:
            updated[key] = value
    return updated


def test_minimal_env_gives_production_defaults(valid_env: dict[str, str]) -> None:
    settings = load_settings(valid_env)
    assert settings == AgentSettings(
        livekit_url="wss://livekit.example.com",
        livekit_api_key="APIexamplekey",
        livekit_api_secret="s3cr3t-value-that-must-never-be-printed",
        gcp_project="voice-agents-dev",
        gcp_location="us-central1",
        gemini_model="gemini-live-2.5-flash-native-audio",
        drain_timeout_seconds=3600,
        load_threshold=0.7,
        health_port=8081,
        metrics_port=9100,
        http_host="0.0.0.0",
        log_level="INFO",
        agent_name="",
    )


def test_every_variable_is_read(valid_env: dict[str, str]) -> None:
    env = _with(
        valid_env,
        AGENT_DRAIN_TIMEOUT_SECONDS="1800",
        AGENT_LOAD_THRESHOLD="0.5",
        AGENT_HEALTH_PORT="18081",
        AGENT_METRICS_PORT="19100",
        AGENT_HTTP_HOST="127.0.0.1",
        AGENT_LOG_LEVEL="warning",
        AGENT_NAME="support-agent",
        GOOGLE_CLOUD_LOCATION="europe-west4",
        AGENT_GEMINI_MODEL="gemini-live-2.5-flash-native-audio",
        GOOGLE_GENAI_USE_VERTEXAI="1",
    )
    settings = load_settings(env)
    assert (settings.drain_timeout_seconds, settings.load_threshold) == (1800, 0.5)
    assert (settings.health_port, settings.metrics_port, settings.http_host) == (
        18081,
        19100,
        "127.0.0.1",
    )
    assert settings.log_level == "WARNING"
    assert settings.agent_name == "support-agent"
    assert settings.gcp_location == "europe-west4"


def test_secrets_never_appear_in_repr_or_public_fields(valid_env: dict[str, str]) -> None:
    """Guards against a settings dump in a log line leaking the LiveKit secret."""
    settings = load_settings(valid_env)
    for text in (repr(settings), str(settings.public_fields())):
        assert valid_env["LIVEKIT_API_SECRET"] not in text
        assert valid_env["LIVEKIT_API_KEY"] not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"LIVEKIT_URL": None}, r"LIVEKIT_URL is required but not set"),
        (
            {"LIVEKIT_URL": "livekit.example.com"},
            r"LIVEKIT_URL='livekit.example.com' is not a LiveKit server URL: use ws://",
        ),
        ({"LIVEKIT_URL": "ftp://host"}, r"LIVEKIT_URL='ftp://host' is not a LiveKit server URL"),
        ({"LIVEKIT_URL": "wss://"}, r"LIVEKIT_URL='wss://' is not a LiveKit server URL"),
        (
            {"LIVEKIT_API_KEY": None},
            r"LIVEKIT_API_KEY is required but neither LIVEKIT_API_KEY_FILE nor LIVEKIT_API_KEY "
            r"is set: set LIVEKIT_API_KEY_FILE to the file the GKE stack mounts from Secret "
            r"Manager, or LIVEKIT_API_KEY from the LiveKit Kubernetes Secret",
        ),
        (
            {"LIVEKIT_API_SECRET": "  ", "LIVEKIT_API_SECRET_FILE": " "},
            r"LIVEKIT_API_SECRET is required but neither LIVEKIT_API_SECRET_FILE nor",
        ),
        (
            {"AGENT_DRAIN_TIMEOUT_SECONDS": "1h"},
            r"AGENT_DRAIN_TIMEOUT_SECONDS='1h' is not an integer: allowed 1\.\.604800",
        ),
        (
            {"AGENT_DRAIN_TIMEOUT_SECONDS": "0"},
            r"AGENT_DRAIN_TIMEOUT_SECONDS=0 is out of range: allowed 1\.\.604800 "
            r"\(.*0 would wait forever\)",
        ),
        (
            {"AGENT_DRAIN_TIMEOUT_SECONDS": "604801"},
            r"AGENT_DRAIN_TIMEOUT_SECONDS=604801 is out of range: allowed 1\.\.604800",
        ),
        (
            {"AGENT_LOAD_THRESHOLD": "high"},
            r"AGENT_LOAD_THRESHOLD='high' is not a number: allowed a number in \(0, 1\]",
        ),
        (
            {"AGENT_LOAD_THRESHOLD": "0"},
            r"AGENT_LOAD_THRESHOLD=0 is out of range: allowed a number in \(0, 1\]",
        ),
        (
            {"AGENT_LOAD_THRESHOLD": "1.5"},
            r"AGENT_LOAD_THRESHOLD=1\.5 is out of range: allowed a number in \(0, 1\]: "
            r"the share of the container CPU limit",
        ),
        ({"AGENT_LOAD_THRESHOLD": "nan"}, r"AGENT_LOAD_THRESHOLD=nan is out of range"),
        ({"AGENT_LOAD_THRESHOLD": "inf"}, r"AGENT_LOAD_THRESHOLD=inf is out of range"),
        (
            {"AGENT_HEALTH_PORT": "http"},
            r"AGENT_HEALTH_PORT='http' is not an integer: allowed 1\.\.65535 \(a TCP port\)",
        ),
        ({"AGENT_HEALTH_PORT": "0"}, r"AGENT_HEALTH_PORT=0 is out of range: allowed 1\.\.65535"),
        (
            {"AGENT_METRICS_PORT": "65536"},
            r"AGENT_METRICS_PORT=65536 is out of range: allowed 1\.\.65535",
        ),
        (
            {"AGENT_METRICS_PORT": "8081"},
            r"AGENT_HEALTH_PORT and AGENT_METRICS_PORT are both 8081: .*need different ports",
        ),
        (
            {"AGENT_HTTP_HOST": "local host"},
            r"AGENT_HTTP_HOST='local host' is invalid: expected an IP address or host name",
        ),
        (
            {"AGENT_LOG_LEVEL": "verbose"},
            r"AGENT_LOG_LEVEL='verbose' is not a log level: allowed DEBUG, INFO, WARNING, ERROR",
        ),
        (
            {"AGENT_NAME": "my agent"},
            r"AGENT_NAME='my agent' is invalid: expected empty \(automatic dispatch\) or up to 128",
        ),
        (
            {"GOOGLE_CLOUD_PROJECT": None},
            r"GOOGLE_CLOUD_PROJECT is required but not set: a Google Cloud project id",
        ),
        (
            {"GOOGLE_CLOUD_PROJECT": "My_Project"},
            r"GOOGLE_CLOUD_PROJECT='My_Project' is invalid: "
            r"expected a Google Cloud project id: 6-30",
        ),
        (
            {"GOOGLE_CLOUD_LOCATION": "mars"},
            r"GOOGLE_CLOUD_LOCATION='mars' is invalid: "
            r"expected a Vertex AI region such as us-central1",
        ),
        (
            {"AGENT_GEMINI_MODEL": "gemini live"},
            r"AGENT_GEMINI_MODEL='gemini live' is invalid: expected a Gemini Live model id",
        ),
        (
            {"GOOGLE_GENAI_USE_VERTEXAI": "false"},
            r"GOOGLE_GENAI_USE_VERTEXAI='false' is not supported: "
            r".*Vertex AI with Application Default Credentials",
        ),
        (
            {"GOOGLE_GENAI_USE_VERTEXAI": "yes please"},
            r"GOOGLE_GENAI_USE_VERTEXAI='yes please' is not a boolean: set it to true",
        ),
        (
            {"GOOGLE_API_KEY": "AIza-not-wanted"},
            r"GOOGLE_API_KEY is set \(value hidden\) but this agent never uses API keys",
        ),
    ],
)
def test_each_invalid_setting_names_variable_value_and_rule(
    valid_env: dict[str, str], changes: dict[str, str | None], message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(_with(valid_env, **changes))
    assert len(raised.value.problems) == 1, raised.value.problems


def test_all_problems_are_reported_at_once() -> None:
    """An operator fixing a Deployment should see every bad variable in one go."""
    with pytest.raises(
        SettingsError, match=r"invalid agent configuration:\n  - LIVEKIT_URL"
    ) as raised:
        load_settings({"AGENT_LOAD_THRESHOLD": "2"})
    names = [problem.split(" ", 1)[0].split("=", 1)[0] for problem in raised.value.problems]
    assert names == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "GOOGLE_CLOUD_PROJECT",
        "AGENT_LOAD_THRESHOLD",
    ]


def test_secret_values_never_appear_in_errors(valid_env: dict[str, str]) -> None:
    env = _with(valid_env, GOOGLE_API_KEY="AIza-secret-key", AGENT_LOAD_THRESHOLD="7")
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    text = str(raised.value)
    for secret in (
        "AIza-secret-key",
        valid_env["LIVEKIT_API_SECRET"],
        valid_env["LIVEKIT_API_KEY"],
    ):
        assert secret not in text


def test_defaults_match_livekit_agents_1_8_9() -> None:
    """One number, one home: our defaults mirror the framework's production defaults.

    Fails when a framework upgrade moves them (DESIGN section 3: drain_timeout became 3600 in
    1.8; the load threshold and health port are the production defaults of AgentServer).
    """
    from livekit.agents import worker

    assert s.DEFAULT_DRAIN_TIMEOUT_SECONDS == worker.DRAIN_TIMEOUT == 3600
    assert s.DEFAULT_LOAD_THRESHOLD == worker._default_load_threshold.prod_default == 0.7
    assert s.DEFAULT_HEALTH_PORT == worker.AgentServer._default_port.prod_default == 8081


def test_default_model_is_a_known_vertex_live_model() -> None:
    from livekit.plugins.google.realtime import realtime_api

    assert s.DEFAULT_GEMINI_MODEL in realtime_api.KNOWN_VERTEXAI_MODELS



# --- LiveKit credentials from files (the GKE stack mounts them from Secret Manager) -----------


def _from_files(env: dict[str, str], key_file: Path, secret_file: Path) -> dict[str, str]:
    return _with(
        env,
        LIVEKIT_API_KEY=None,
        LIVEKIT_API_SECRET=None,
        LIVEKIT_API_KEY_FILE=str(key_file),
        LIVEKIT_API_SECRET_FILE=str(secret_file),
    )


def test_credentials_are_read_from_files_without_surrounding_whitespace(
    valid_env: dict[str, str], tmp_path: Path
) -> None:
    """A secret stored with `echo` ends in a newline; the signed token must not include it."""
    key_file, secret_file = tmp_path / "api-key", tmp_path / "api-secret"
    key_file.write_text(f"  {valid_env['LIVEKIT_API_KEY']}\n")
    secret_file.write_text(f"{valid_env['LIVEKIT_API_SECRET']}\r\n\n")
    settings = load_settings(_from_files(valid_env, key_file, secret_file))
    assert settings == load_settings(valid_env)
    for text in (repr(settings), str(settings.public_fields())):
        assert valid_env["LIVEKIT_API_SECRET"] not in text
        assert valid_env["LIVEKIT_API_KEY"] not in text


def test_both_forms_of_a_credential_are_refused(valid_env: dict[str, str], tmp_path: Path) -> None:
    """Which of two differing keys wins must not be a guess: the operator picks one."""
    key_file = tmp_path / "api-key"
    key_file.write_text("APIfromthefile")
    env = _with(valid_env, LIVEKIT_API_KEY_FILE=str(key_file))
    with pytest.raises(
        SettingsError,
        match=r"LIVEKIT_API_KEY and LIVEKIT_API_KEY_FILE are both set \(values hidden\): set "
        r"only one, LIVEKIT_API_KEY_FILE for the file the GKE stack mounts from Secret Manager "
        r"or LIVEKIT_API_KEY for the value from the LiveKit Kubernetes Secret",
    ) as raised:
        load_settings(env)
    assert len(raised.value.problems) == 1, raised.value.problems
    assert "APIfromthefile" not in str(raised.value)
    assert valid_env["LIVEKIT_API_KEY"] not in str(raised.value)


def _missing(case: Path) -> Path:
    return case / "api-secret"


def _directory(case: Path) -> Path:
    return case


def _parent_is_a_file(case: Path) -> Path:
    (case / "secrets").write_text("APIexamplekey")
    return case / "secrets" / "api-secret"


def _file_holding(content: bytes):
    def make(case: Path) -> Path:
        (case / "api-secret").write_bytes(content)
        return case / "api-secret"

    return make


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (
            _missing,
            r"cannot be read: no such file; point it at the mounted secret file "
            r"\(in the GKE stack, the pod's Secret Manager volume\)$",
        ),
        (_directory, r"cannot be read: it is a directory, not a file;"),
        # a real "not readable" even as root: open() fails with ENOTDIR
        (_parent_is_a_file, r"cannot be read: not readable: Not a directory;"),
        (
            _file_holding(b""),
            r"is empty: the secret it holds has no value; in the GKE stack, add a Secret "
            r"Manager version holding the LiveKit credential$",
        ),
        (_file_holding(b" \n\t\n"), r"is empty:"),
        (
            _file_holding(b"\xff\xfeAPIexamplekey"),
            r"is not UTF-8 text \(contents hidden\): it must hold the LiveKit credential",
        ),
    ],
    ids=["missing", "directory", "parent-is-a-file", "empty", "whitespace-only", "not-utf8"],
)
def test_each_unusable_credential_file_names_variable_path_and_why(
    valid_env: dict[str, str], tmp_path: Path, make, why: str
) -> None:
    path = make(tmp_path)
    env = _with(valid_env, LIVEKIT_API_SECRET=None, LIVEKIT_API_SECRET_FILE=str(path))
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert len(raised.value.problems) == 1, raised.value.problems
    problem = raised.value.problems[0]
    assert re.match(rf"LIVEKIT_API_SECRET_FILE={re.escape(repr(str(path)))} {why}", problem), problem
    assert "APIexamplekey" not in problem


_READ_SECRET_FILE = """
import sys
from voice_agent.settings import read_secret
problems = []
read_secret({"LIVEKIT_API_SECRET_FILE": sys.argv[1]}, "LIVEKIT_API_SECRET", problems)
print("\\n".join(problems))
"""
# Root reads any file whatever its mode, through these two capabilities; without them, root is
# held to the permission bits like the pod's user (uid 10001) is.
_WITHOUT_DAC_OVERRIDE = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
)


def test_a_credential_file_this_user_may_not_read_is_named_with_the_reason(tmp_path: Path) -> None:
    """A mount the container's user may not read must say so, not "no such file".

    As root (CI) chmod 000 does not stop reads, so there the read runs in a child process
    without the capabilities that let root ignore permission bits (util-linux setpriv)."""
    path = tmp_path / "api-secret"
    path.write_text("s3cr3t-in-an-unreadable-file")
    path.chmod(0o000)
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without util-linux setpriv: permission bits cannot bind")
        done = subprocess.run(
            [*_WITHOUT_DAC_OVERRIDE, sys.executable, "-c", _READ_SECRET_FILE, str(path)],
            cwd=AGENT_DIR, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        problem = done.stdout.strip()
    else:
        problems: list[str] = []
        read_secret({"LIVEKIT_API_SECRET_FILE": str(path)}, "LIVEKIT_API_SECRET", problems)
        problem = "\n".join(problems)
    assert problem == (
        f"LIVEKIT_API_SECRET_FILE={str(path)!r} cannot be read: not readable: permission denied "
        "for this user; point it at the mounted secret file (in the GKE stack, the pod's Secret "
        "Manager volume)"
    )


def test_credential_file_problems_are_reported_with_every_other_problem(tmp_path: Path) -> None:
    """An operator fixing a Deployment sees the missing mount and the rest in one go."""
    env = {
        "LIVEKIT_API_KEY_FILE": str(tmp_path / "api-key"),
        "LIVEKIT_API_SECRET": "s3cr3t",
        "LIVEKIT_API_SECRET_FILE": str(tmp_path / "api-secret"),
        "AGENT_LOAD_THRESHOLD": "2",
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    names = [problem.split(" ", 1)[0].split("=", 1)[0] for problem in raised.value.problems]
    assert names == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY_FILE",
        "LIVEKIT_API_SECRET",
        "GOOGLE_CLOUD_PROJECT",
        "AGENT_LOAD_THRESHOLD",
    ]
    assert "no such file" in raised.value.problems[1]
    assert "both set" in raised.value.problems[2]


def test_job_processes_take_the_credentials_the_framework_hands_down(
    valid_env: dict[str, str], tmp_path: Path
) -> None:
    """livekit-agents exports the worker's key and secret as LIVEKIT_API_KEY/SECRET to its job
    processes, next to the _FILE variables they inherit. A job process must take those values
    (not refuse both forms, not read a file again): here the files are gone, and it still gets
    the worker's credentials."""
    env = _with(
        valid_env,
        LIVEKIT_API_KEY_FILE=str(tmp_path / "gone-key"),
        LIVEKIT_API_SECRET_FILE=str(tmp_path / "gone-secret"),
    )
    with pytest.raises(SettingsError, match="both set"):
        load_settings(env)
    settings = load_job_process_settings(env)
    assert (settings.livekit_api_key, settings.livekit_api_secret) == (
        valid_env["LIVEKIT_API_KEY"],
        valid_env["LIVEKIT_API_SECRET"],
    )
