"""AGENT_VERSION and AGENT_METRICS_LINGER_SECONDS: accepted at their edges, refused past them
with one line naming the variable, the value and the allowed range."""

from __future__ import annotations

import pytest

from voice_agent.settings import SettingsError, load_settings

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("value, expected", [
    ("", "unversioned"), ("v1.2.3", "v1.2.3"), (DIGEST, DIGEST), ("a" * 128, "a" * 128),
    ("sha256-0123456789ab", "sha256-0123456789ab"),
])
def test_version_accepted(valid_env: dict[str, str], value: str, expected: str) -> None:
    assert load_settings({**valid_env, "AGENT_VERSION": value}).version == expected


@pytest.mark.parametrize("value", ["a" * 129, "-v1", "v1 2", 'v1"'])
def test_version_refused_by_name(valid_env: dict[str, str], value: str) -> None:
    with pytest.raises(SettingsError, match=r"AGENT_VERSION=.* is invalid: expected the release"):
        load_settings({**valid_env, "AGENT_VERSION": value})


@pytest.mark.parametrize("value, expected", [("", 0), ("0", 0), ("120", 120), ("35", 35)])
def test_linger_accepted(valid_env: dict[str, str], value: str, expected: int) -> None:
    assert load_settings({**valid_env, "AGENT_METRICS_LINGER_SECONDS": value}).metrics_linger_seconds == expected


@pytest.mark.parametrize("value", ["121", "-1", "1.5"])
def test_linger_refused_by_name(valid_env: dict[str, str], value: str) -> None:
    with pytest.raises(SettingsError, match=r"AGENT_METRICS_LINGER_SECONDS=.*allowed 0\.\.120"):
        load_settings({**valid_env, "AGENT_METRICS_LINGER_SECONDS": value})


def test_version_is_logged_as_agent_version(valid_env: dict[str, str]) -> None:
    """The framework's own lines use "version" for livekit-agents' release."""
    fields = load_settings({**valid_env, "AGENT_VERSION": "v9"}).public_fields()
    assert fields["agent_version"] == "v9" and "version" not in fields
