"""The console against a real `parley up --fake-model` (tests/client's server and its gated MCP
server), driven by Debian's headless Chromium through selenium."""

from tests.client.conftest import Gates, Holding, Server, holding, parley_server

__all__ = ["Gates", "Holding", "Server", "holding", "parley_server"]
