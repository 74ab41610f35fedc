"""The MCP client side the agent uses (livekit-agents 1.8.9 MCPServerHTTP does exactly this:
an httpx2 client carrying the headers, streamable_http_client, ClientSession)."""

from __future__ import annotations

from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "0"}}}


async def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    """(is_error, text) of one tool call made with a bearer token."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        async with streamable_http_client(url=f"{url}/mcp", http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                result = await session.call_tool(tool, arguments)
                return bool(result.is_error), "\n".join(getattr(part, "text", "") for part in result.content)


async def list_tools(url: str, token: str) -> list[str]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        async with streamable_http_client(url=f"{url}/mcp", http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                return [tool.name for tool in (await session.list_tools()).tools]


def raw_initialize(url: str, authorization: str | None) -> httpx2.Response:
    """One initialize request, with a chosen Authorization header (or none)."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx2.post(f"{url}/mcp", json=INITIALIZE, headers=headers, timeout=10)
