"""The contract values every service shares have one definition, and every service uses it."""

from __future__ import annotations

from services.api import effective_config, validation
from services.common import contract
from services.runner import executor, output
from services.tooling import discovery, schema


def test_wire_names_split_at_the_first_dash() -> None:
    assert contract.wire_name("docs", "search_kb") == "docs-search_kb"
    assert contract.split_wire_name("docs-get-page") == ("docs", "get-page")
    assert contract.split_wire_name("search") is None  # a caller-declared tool
    assert contract.split_wire_name("-x") is None and contract.split_wire_name("docs-") is None


def test_the_tool_schema_subset_is_the_output_subset_without_range_validators() -> None:
    assert contract.TOOL_SCHEMA_KEYWORDS < contract.OUTPUT_SCHEMA_KEYWORDS
    assert contract.OUTPUT_SCHEMA_KEYWORDS - contract.TOOL_SCHEMA_KEYWORDS == {"minimum", "maximum"}


def test_every_service_uses_the_one_definition() -> None:
    assert validation.OUTPUT_SCHEMA_KEYWORDS is contract.OUTPUT_SCHEMA_KEYWORDS
    assert schema.OUTPUT_KEYWORDS is contract.TOOL_SCHEMA_KEYWORDS
    assert validation.MAX_WIRE_NAME == discovery.MAX_WIRE_NAME == contract.MAX_WIRE_NAME == 64
    assert effective_config.TEXT_MODE_SCHEMA is output.TEXT_MODE_SCHEMA is contract.TEXT_MODE_SCHEMA
    assert executor.CANCELLED_MESSAGE is contract.CANCELLED_MESSAGE
