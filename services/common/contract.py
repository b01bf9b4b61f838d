"""Values of Parley's contract that more than one service uses: the `{alias}-{tool}` wire name of
an MCP tool, the JSON Schema subsets the providers accept, text mode's implicit schema, the
cancelled run's message, the kinds and sizes of input content and an MCP server's approval
policy. Each is defined here once; every service imports it from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# --- MCP tool wire names ------------------------------------------------------------------------

MAX_WIRE_NAME: Final = 64  # what the providers accept as a tool name


def wire_name(alias: str, tool: str) -> str:
    """The name the model sees for MCP server `alias`'s tool `tool` (the dash routes it)."""
    return f"{alias}-{tool}"


def split_wire_name(name: str) -> tuple[str, str] | None:
    """(alias, tool) at the first dash (aliases have none), or None for a dash-free name, which
    is a caller-declared tool."""
    alias, dash, tool = name.partition("-")
    if not dash or not alias or not tool:
        return None
    return alias, tool


# --- JSON Schema subsets ------------------------------------------------------------------------

# The Draft 2020-12 keywords Bedrock structured output accepts: a caller's output_format_schema
# may use these and no others (the UnsupportedOutputSchema row).
OUTPUT_SCHEMA_KEYWORDS: Final = frozenset(
    {
        "type",
        "properties",
        "required",
        "enum",
        "const",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "title",
        "description",
        "anyOf",
    }
)
# What a discovered MCP tool's input schema keeps once normalised. It differs on purpose: an
# output schema is the caller's, refused when it strays, while a tool's schema is the server's
# and never refused, so range validators (minimum, maximum, multipleOf…) are not kept but lifted
# into its description, where every provider reads them and none can choke on them.
TOOL_SCHEMA_KEYWORDS: Final = OUTPUT_SCHEMA_KEYWORDS - {"minimum", "maximum"}

# --- runs ---------------------------------------------------------------------------------------

# Text mode's implicit schema: a run's effective_config echoes it, and a runner reads an effective
# schema equal to it as text mode (final_text). Never mutate it.
TEXT_MODE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}

# error.message of a cancelled run, whether the store ends it (pending) or its runner (running).
CANCELLED_MESSAGE: Final = "the run was cancelled"

# --- input content (a user_message's `content` blocks) ------------------------------------------

MAX_CONTENT_BLOCKS: Final = 20
# The blocks a caller may send (ContentBlock's oneof names); the rest only Parley writes.
USER_CONTENT_KINDS: Final = ("text", "image", "document")
# Decoded sizes: Bedrock's limits (3.75 MB an image, 4.5 MB a document), held on every cluster so
# that a conversation's history can move to another provider.
MAX_IMAGE_BYTES: Final = 3_932_160
MAX_DOCUMENT_BYTES: Final = 4_718_592
MAX_DOCUMENT_NAME: Final = 200
# Media type -> Converse's `format`.
IMAGE_FORMATS: Final = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS: Final = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/csv": "csv",
    "text/html": "html",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
# Documents a chat-completions provider (cortex, openai) reads, as text; it has no form for the
# others (binary: pdf, Word, Excel).
TEXT_DOCUMENT_TYPES: Final = frozenset({"text/plain", "text/markdown", "text/csv", "text/html"})

# --- approval of MCP tool calls -----------------------------------------------------------------

APPROVAL_NEVER: Final = "never"
APPROVAL_ALWAYS: Final = "always"


@dataclass(frozen=True)
class ApprovalPolicy:
    """An MCP server's `require_approval`: every tool, or the named ones (the server's own tool
    names, not wire names)."""

    every_tool: bool = False
    names: frozenset[str] = frozenset()

    def needs(self, tool: str) -> bool:
        return self.every_tool or tool in self.names


def approval_policy(value: Any) -> ApprovalPolicy:
    """`require_approval` as JSON (None when unset): "never", "always" or a list of tool names.
    Raises ValueError saying what is wrong with anything else."""
    if value is None or value == APPROVAL_NEVER:
        return ApprovalPolicy()
    if value == APPROVAL_ALWAYS:
        return ApprovalPolicy(every_tool=True)
    if isinstance(value, str):
        raise ValueError(f'must be "never", "always" or a list of tool names, not {value!r}')
    if not isinstance(value, list):
        raise ValueError('must be "never", "always" or a list of tool names')
    names: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise ValueError(f"[{i}] must be a tool name (a non-empty string)")
        if name in names:
            raise ValueError(f"[{i}] names `{name}` twice")
        names.append(name)
    return ApprovalPolicy(names=frozenset(names))
