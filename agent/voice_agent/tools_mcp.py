"""Remote tools: MCP servers with their own identity; the agent holds no tool credential.

Each tool server named in AGENT_TOOL_SERVERS (name=url) is reached over streamable HTTP with
livekit-agents 1.8.9 ``llm.mcp.MCPServerHTTP``. The only thing the agent presents is its own
Kubernetes identity: a projected service-account token whose audience is that one server
(k8s/pod.py mounts it at <AGENT_TOOL_TOKEN_DIR>/<name>/token). The kubelet rewrites the file
before the token expires (at 80 % of its lifetime, Kubernetes "projected volumes" docs), so the
file is read again whenever it changed, per request: a long call never sends a stale token.

A tool server that is down or slow must cost the caller one sentence, not the call:
- at session start the tool list is fetched within CONNECT_BUDGET_SECONDS; past it, or on any
  error, the session starts without those tools (the persona says what is unavailable) and a
  ``tools_unavailable`` line is logged;
- each call gets TOOL_CALL_TIMEOUT_SECONDS; a timeout, a refused connection or a protocol error
  reaches the model as a ToolError sentence it relays ("... unavailable right now"), and the
  call goes on. The server's own errors (validation, upstream) arrive as ToolError already
  (MCPServer._make_function_tool, is_error results).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx2
from livekit.agents import ToolError
from livekit.agents.llm.mcp import MCPServerHTTP, MCPToolset

from .logs import log_event
from .settings import AgentSettings

logger = logging.getLogger("voice_agent.tools_mcp")

# Whole tool call, agent side. The Places server gives up upstream after at most 5 s
# (tools/places/places_mcp/settings.py MAX_UPSTREAM_TIMEOUT_SECONDS) and says why; this is the
# backstop for a server that does not answer at all. Six seconds of silence is the most a
# caller should sit through before hearing that the tool is not there.
TOOL_CALL_TIMEOUT_SECONDS = 6.0
# How long session start waits for a tool list: the greeting waits for it.
CONNECT_BUDGET_SECONDS = 3.0


class ProjectedToken(httpx2.Auth):
    """Bearer auth from a projected token file, re-read whenever the kubelet replaced it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int] | None = None
        self._token = ""

    def current(self) -> str:
        try:
            stat = os.stat(self._path)  # follows the kubelet's ..data symlink swap
        except OSError:
            return ""
        version = (stat.st_ino, stat.st_mtime_ns)
        if version != self._seen:
            self._token = self._path.read_text().strip()
            self._seen = version
        return self._token

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        token = self.current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


class ToolServer(MCPServerHTTP):
    """MCPServerHTTP with the projected token and calls that fail as sentences."""

    def __init__(self, name: str, url: str, token_file: Path) -> None:
        super().__init__(
            url=url,
            transport_type="streamable_http",
            timeout=CONNECT_BUDGET_SECONDS,
            sse_read_timeout=TOOL_CALL_TIMEOUT_SECONDS,
            client_session_timeout_seconds=TOOL_CALL_TIMEOUT_SECONDS,
        )
        self.name = name
        self._auth = ProjectedToken(token_file)

    def _create_http_client(self, headers: Any = None, timeout: Any = None, auth: Any = None) -> httpx2.AsyncClient:
        return super()._create_http_client(headers=headers, timeout=timeout, auth=auth or self._auth)

    async def _call_tool(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(TOOL_CALL_TIMEOUT_SECONDS):
                return await super()._call_tool(name, arguments, **kwargs)
        except ToolError:
            raise
        except TimeoutError as exc:
            log_event("tool_call_failed", "tool server too slow", level=logging.WARNING,
                      tool_server=self.name, tool=name, reason="timeout")
            raise ToolError(
                f"The {self.name} service did not answer within {TOOL_CALL_TIMEOUT_SECONDS:g} seconds: tell the "
                "caller it is unavailable right now and carry on with the call"
            ) from exc
        except Exception as exc:
            log_event("tool_call_failed", "tool server unreachable", level=logging.WARNING,
                      tool_server=self.name, tool=name, reason=type(exc).__name__)
            raise ToolError(
                f"The {self.name} service is unavailable right now: tell the caller and carry on with the call"
            ) from exc


class ToolServerToolset(MCPToolset):
    """One server's tools; a server that cannot list them in time leaves the session without them."""

    def __init__(self, server: ToolServer) -> None:
        super().__init__(id=f"mcp_{server.name}", mcp_server=server)
        self._server = server

    async def setup(self, *, reload: bool = False) -> ToolServerToolset:
        try:
            async with asyncio.timeout(CONNECT_BUDGET_SECONDS):
                await super().setup(reload=reload)
        except Exception as exc:  # TimeoutError, connection refused, 401: the call goes on without them
            self._tools = []
            log_event("tools_unavailable", "tool server unavailable at session start", level=logging.WARNING,
                      tool_server=self._server.name, reason=type(exc).__name__)
            return self
        log_event("tools_ready", "tool server tools listed", tool_server=self._server.name,
                  tools=sorted(_tool_name(t) for t in self.tools))
        return self


def tool_server_toolsets(settings: AgentSettings) -> list[ToolServerToolset]:
    """A toolset per configured server (none when AGENT_TOOL_SERVERS is empty)."""
    token_dir = Path(settings.tool_token_dir)
    return [ToolServerToolset(ToolServer(name, url, token_dir / name / "token")) for name, url in settings.tool_servers]


def _tool_name(tool: Any) -> str:
    from livekit.agents.llm.tool_context import get_raw_function_info

    try:
        return get_raw_function_info(tool).name
    except Exception:
        return repr(tool)
