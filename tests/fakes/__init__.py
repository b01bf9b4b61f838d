"""The only fakes, all network servers on loopback: `bedrock.py` (a scripted Bedrock Converse
endpoint that boto3 reaches through AWS_ENDPOINT_URL_BEDROCK_RUNTIME) and `mcp_servers.py`
(real MCP servers built with the `mcp` SDK)."""
