"""Drives `code-mode mcp` (stdio) with the official Python MCP SDK, for the CLI's tests.

Usage: client.py BIN|URL MODE LOG_LEVEL ELICIT CODE [SERVER_ARG...]
  BIN|URL    the code-mode binary (started as `BIN mcp SERVER_ARG...` on stdio), or the URL
             of a running `code-mode mcp --http` (Streamable HTTP).
  MODE       `legacy` (initialize handshake, 2025-era protocol) or a modern version such as
             `2026-07-28` (adopted directly).
  LOG_LEVEL  `none` (no opt-in) or a logging level the client asks for.
  ELICIT     `none` (no elicitation capability), `approve` or `deny` (answers every form),
             or `replay`: drives the input_required rounds by hand, approving, then sends
             the last round's requestState and answers again and reports what came back.
  CODE       the program given to execute_typescript.
Prints one JSON object: the negotiated protocol, the log notifications received, and the
tool result (its structured content, or its text, and whether it is an error).
"""

import json
import sys

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main() -> None:
    binary, mode, level, elicit, code, *server_args = sys.argv[1:]
    logs = []
    asked = []

    async def on_log(params) -> None:
        logs.append({"level": str(params.level), "data": params.data})

    async def on_elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(
            action="accept",
            content={"approve": elicit == "approve", "reason": "the test said no"},
        )

    params = binary if binary.startswith("http") else StdioServerParameters(command=binary, args=["mcp", *server_args])
    async with Client(
        params,
        mode=mode,
        logging_callback=on_log,
        log_level=None if level == "none" else level,
        elicitation_callback=None if elicit == "none" else on_elicit,
    ) as client:
        replayed = None
        if elicit == "replay":
            args = {"typescriptCode": code}
            result = await client.session.call_tool("execute_typescript", args, allow_input_required=True)
            state, answers = None, None
            while isinstance(result, types.InputRequiredResult):
                asked.extend(sorted(result.input_requests or {}))
                answers = {k: {"action": "accept", "content": {"approve": True}} for k in (result.input_requests or {})}
                state = result.request_state
                result = await client.session.call_tool(
                    "execute_typescript", args, input_responses=answers, request_state=state, allow_input_required=True
                )
            if state is not None:
                again = await client.session.call_tool(
                    "execute_typescript", args, input_responses=answers, request_state=state, allow_input_required=True
                )
                replayed = {
                    "inputRequired": isinstance(again, types.InputRequiredResult),
                    "isError": bool(getattr(again, "is_error", False)),
                    "text": [c.text for c in getattr(again, "content", []) if getattr(c, "type", None) == "text"],
                }
        else:
            result = await client.call_tool("execute_typescript", {"typescriptCode": code})
        # Notifications sent with the result are handled before the next request ends.
        await client.list_tools()
        texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
        print(
            json.dumps(
                {
                    "protocol": client.protocol_version,
                    "logs": logs,
                    "asked": asked,
                    "replayed": replayed,
                    "isError": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": texts,
                }
            )
        )


anyio.run(main)
