"""AGENT_TOOL_SERVERS / AGENT_TOOL_TOKEN_DIR and the projected-token auth of tools_mcp.py."""

from __future__ import annotations

import os

import httpx2
import pytest

from voice_agent.settings import DEFAULT_TOOL_TOKEN_DIR, SettingsError, load_settings
from voice_agent.tools_mcp import ProjectedToken, tool_server_toolsets


def test_no_tool_servers_by_default(valid_env):
    settings = load_settings(valid_env)
    assert settings.tool_servers == () and settings.tool_token_dir == DEFAULT_TOOL_TOKEN_DIR
    assert tool_server_toolsets(settings) == []


def test_servers_parse_and_each_gets_its_own_token_file(valid_env):
    valid_env["AGENT_TOOL_SERVERS"] = "places=http://places-mcp.voice-agents.svc:8080/mcp, calendar=https://cal:443/mcp"
    settings = load_settings(valid_env)
    assert settings.tool_servers == (("places", "http://places-mcp.voice-agents.svc:8080/mcp"),
                                     ("calendar", "https://cal:443/mcp"))
    servers = [t._server for t in tool_server_toolsets(settings)]
    assert [str(s._auth._path) for s in servers] == [f"{DEFAULT_TOOL_TOKEN_DIR}/places/token",
                                                     f"{DEFAULT_TOOL_TOKEN_DIR}/calendar/token"]


@pytest.mark.parametrize("entry", ["places", "places=http://x/sse", "Places=http://x/mcp", "places=ftp://x/mcp",
                                   "places=http://x/mcp,places=http://y/mcp"])
def test_bad_entries_name_the_variable_and_the_rule(valid_env, entry):
    valid_env["AGENT_TOOL_SERVERS"] = entry
    with pytest.raises(SettingsError, match="AGENT_TOOL_SERVERS"):
        load_settings(valid_env)


def test_relative_token_dir_is_refused(valid_env):
    valid_env["AGENT_TOOL_TOKEN_DIR"] = "tokens"
    with pytest.raises(SettingsError, match="AGENT_TOOL_TOKEN_DIR='tokens' is invalid: expected an absolute path"):
        load_settings(valid_env)


def test_projected_token_is_re_read_when_the_kubelet_replaces_it(tmp_path):
    """The kubelet swaps the file atomically (a new inode); every request carries the current one."""
    path = tmp_path / "token"
    path.write_text("first\n")
    auth = ProjectedToken(path)
    request = next(auth.auth_flow(httpx2.Request("POST", "http://x/mcp")))
    assert request.headers["Authorization"] == "Bearer first"
    replacement = tmp_path / "token.new"
    replacement.write_text("second")
    os.replace(replacement, path)
    request = next(auth.auth_flow(httpx2.Request("POST", "http://x/mcp")))
    assert request.headers["Authorization"] == "Bearer second"


def test_missing_token_file_sends_no_header(tmp_path):
    """The server then answers 401 and the tools are unavailable; nothing crashes here."""
    request = next(ProjectedToken(tmp_path / "absent").auth_flow(httpx2.Request("POST", "http://x/mcp")))
    assert "Authorization" not in request.headers
