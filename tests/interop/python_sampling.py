"""The official MCP Python SDK (PyPI `mcp`, pinned in requirements.txt) as a
client of mcp-proxy that answers a backend's requests, for
tests/python_client.rs.

Usage: python_sampling.py URL

The proxy behind URL serves server-everything as the backend `everything`.
The client declares sampling and elicitation (by giving the SDK's `Client`
a callback for each), calls `everything/trigger-sampling-request` and
`everything/trigger-elicitation-request`, and answers the requests the
backend sends it through the proxy from its callbacks.

It prints one JSON object on stdout: what each callback was asked and each
tool's result; any failure is an exception (exit 1, traceback on stderr).
Every step is bounded in time (anyio.fail_after).
"""

import json
import sys

import anyio
import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

# Generous: CI machines are slow; the Rust side bounds the whole process too.
STEP_TIMEOUT_S = 30


async def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} URL")
    url = sys.argv[1]
    asked = {"sampling": [], "elicitation": []}

    async def sample(_context, params):
        asked["sampling"].append(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        return types.CreateMessageResult.model_validate(
            {
                "role": "assistant",
                "content": {"type": "text", "text": "sampled by the Python SDK"},
                "model": "python-test-model",
                "stopReason": "endTurn",
            }
        )

    async def elicit(_context, params):
        asked["elicitation"].append(params.model_dump(mode="json", by_alias=True, exclude_none=True))
        return types.ElicitResult.model_validate(
            {"action": "accept", "content": {"name": "Grace Hopper", "check": True}}
        )

    # No proxy from the environment: the proxy under test is on 127.0.0.1.
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(STEP_TIMEOUT_S), trust_env=False)
    summary = {}
    async with http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, sampling_callback=sample, elicitation_callback=elicit) as client:
            with anyio.fail_after(STEP_TIMEOUT_S):
                result = await client.call_tool(
                    "everything/trigger-sampling-request",
                    {"prompt": "a haiku about proxies", "maxTokens": 21},
                )
                summary["sampling"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
            with anyio.fail_after(STEP_TIMEOUT_S):
                result = await client.call_tool("everything/trigger-elicitation-request", {})
                summary["elicitation"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    summary["asked"] = asked
    print(json.dumps(summary))


if __name__ == "__main__":
    anyio.run(main)
