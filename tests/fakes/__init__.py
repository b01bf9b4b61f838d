"""The only fakes, all network servers on loopback that refuse what the real service refuses:
`bedrock.py` (a scripted Bedrock Converse/ConverseStream endpoint that boto3 reaches through
AWS_ENDPOINT_URL_BEDROCK_RUNTIME), `chat_completions.py` (Cortex / OpenAI-compatible chat
completions), `otlp.py` (an OTLP/HTTP collector) and `mcp_servers.py` (real MCP servers built with
the `mcp` SDK); `serving.py` serves an ASGI fake in the caller's event loop."""
