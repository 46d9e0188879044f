"""Billy's MCP endpoint at `/mcp` (issue 13): the agent door, over the same service functions.

`server.py` builds the official SDK's `MCPServer` (Streamable HTTP, bearer tokens checked by a
`TokenVerifier`, protected-resource metadata) and routes `/mcp` to it; `calls.py` turns each
tool call into an Actor and a result; `tools.py` holds the reads; `writes.py` the registry of
writes, each offered as a `preview_*` / `confirm_*` pair.
"""
