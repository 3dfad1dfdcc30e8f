"""The official MCP Python SDK (PyPI `mcp`, pinned in requirements.txt) as a
client of mcp-proxy, for tests/python_client.rs.

Usage: python_client.py URL TOOL ARGUMENTS_JSON
with the bearer token in the environment variable MCP_PROXY_TOKEN (kept out
of argv, where `ps` would show it).

It does what an MCP client does with a protected server:

1. discovery: an initialize without a token must be refused 401; from the
   `WWW-Authenticate` challenge it takes the `resource_metadata` URL with the
   SDK's own OAuth helpers (the ones its OAuthClientProvider runs on a 401),
   fetches the RFC 9728 metadata there, parses it with the SDK's model and
   checks, as the SDK's OAuth flow does, that its `resource` covers URL;
2. a wrong token: the SDK's `Client` must fail to connect, with the proxy's
   JSON-RPC error (-32015) surfaced as an `MCPError`;
3. the real session: `Client` over the SDK's streamable-HTTP transport with
   `Authorization: Bearer <token>` on every request, in the SDK's default
   connect mode ('auto': it probes `server/discover`, then falls back to the
   initialize handshake): initialize, list tools, call TOOL with ARGUMENTS.

It prints one JSON object on stdout with what each step saw and exits 0;
any failure is an exception (exit 1, traceback on stderr). The Rust test
asserts on the JSON. Every step is bounded in time (anyio.fail_after).
"""

import json
import os
import sys

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

# Generous: CI machines are slow; the Rust side bounds the whole process too.
STEP_TIMEOUT_S = 30

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "python-discovery", "version": "0"},
    },
}


def http_client(token: str | None) -> httpx2.AsyncClient:
    """An HTTP client for the SDK's transport, as its docs say to pass headers.
    No proxy from the environment: the proxy under test is on 127.0.0.1."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(STEP_TIMEOUT_S), trust_env=False
    )


async def discover(url: str) -> dict:
    """Step 1: the 401 and the metadata it points at."""
    async with http_client(None) as http:
        refused = await http.post(
            url,
            json=INITIALIZE,
            headers={"Accept": "application/json, text/event-stream"},
        )
        metadata_url = extract_resource_metadata_from_www_auth(refused)
        candidates = build_protected_resource_metadata_discovery_urls(metadata_url, url)
        metadata = None
        fetched_from = None
        for candidate in candidates:
            response = await http.get(candidate)
            metadata = await handle_protected_resource_response(response)
            if metadata is not None:
                fetched_from = candidate
                break
        if metadata is None:
            raise RuntimeError(f"no protected-resource metadata at any of {candidates}")
        resource = str(metadata.resource)
        return {
            "status": refused.status_code,
            "www_authenticate": refused.headers.get("www-authenticate"),
            "body": refused.json(),
            "resource_metadata_url": metadata_url,
            "metadata_fetched_from": fetched_from,
            "metadata": metadata.model_dump(mode="json", exclude_none=True),
            "resource_covers_url": check_resource_allowed(
                requested_resource=resource_url_from_server_url(url),
                configured_resource=resource,
            ),
        }


async def wrong_token(url: str) -> dict:
    """Step 2: the SDK's client with a token the proxy does not know."""
    try:
        async with http_client("not-a-token-the-proxy-knows") as http:
            async with Client(streamable_http_client(url, http_client=http)):
                pass
    except BaseException as raised:  # noqa: BLE001 - looked into below
        error = mcp_error_in(raised)
        if error is None:
            raise
        return {"connected": False, "code": error.code, "message": error.message}
    return {"connected": True}


def mcp_error_in(raised: BaseException) -> MCPError | None:
    """The MCPError in `raised`, also when the SDK's task groups wrapped it
    in (nested) exception groups."""
    if isinstance(raised, MCPError):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        for inner in raised.exceptions:
            found = mcp_error_in(inner)
            if found is not None:
                return found
    return None


async def session(url: str, token: str, tool: str, arguments: dict) -> dict:
    """Step 3: initialize, list tools, call one."""
    async with http_client(token) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            result = await client.call_tool(tool, arguments)
            info = client.server_info
            return {
                "protocol_version": client.protocol_version,
                "server_name": info.name if info is not None else None,
                "tools": sorted(t.name for t in tools.tools),
                "call": result.model_dump(mode="json", by_alias=True, exclude_none=True),
            }


async def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} URL TOOL ARGUMENTS_JSON (token in MCP_PROXY_TOKEN)")
    url, tool, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    token = os.environ.get("MCP_PROXY_TOKEN")
    if not token:
        sys.exit("MCP_PROXY_TOKEN is not set")
    summary = {}
    with anyio.fail_after(STEP_TIMEOUT_S):
        summary["discovery"] = await discover(url)
    with anyio.fail_after(STEP_TIMEOUT_S):
        summary["wrong_token"] = await wrong_token(url)
    with anyio.fail_after(STEP_TIMEOUT_S):
        summary["session"] = await session(url, token, tool, arguments)
    print(json.dumps(summary))


if __name__ == "__main__":
    anyio.run(main)
