"""An :class:`~.requests.OutputFormat` compiled into a :class:`~constrained.Constraint`, and tool calls read back.

Tool calls: with one function named by ``tool_choice``, the model writes that function's arguments alone (a JSON
value under its ``parameters`` schema); with ``"required"`` it writes ``{"name": ..., "arguments": ...}``, one
member of an ``anyOf`` over the offered functions; with ``"auto"`` that object or a plain answer that does not
start with ``{``. Either way the call the client receives is valid under the schema it sent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..constraint import Constraint
from ..errors import RequestError, UnsupportedSchema
from .requests import OutputFormat, Tool

#: A plain answer under ``tool_choice="auto"``: anything that does not open a JSON object (or nothing at all).
PLAIN_ANSWER = r"(?:[^{][\s\S]*)?"


@dataclass(frozen=True)
class ToolCall:
    """One call as OpenAI's ``tool_calls`` lists it: arguments as JSON text."""

    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def call_schema(tools: tuple[Tool, ...]) -> dict[str, Any]:
    """The JSON Schema of ``{"name": ..., "arguments": ...}`` for one of ``tools``."""
    options = [{"type": "object", "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
                "required": ["name", "arguments"], "additionalProperties": False} for tool in tools]
    return options[0] if len(options) == 1 else {"anyOf": options}


def schema_of(output: OutputFormat) -> Any:
    """The JSON Schema the model's text follows, for JSON formats (the prompt shows it); ``None`` otherwise."""
    if output.kind == "json_schema":
        return output.source
    if output.kind == "tool_call":
        named = [tool for tool in output.tools if tool.name == output.tool_choice]
        return named[0].parameters if named else call_schema(output.tools)
    return None


def compile_format(output: OutputFormat, databases: Mapping[str, Any]) -> Constraint:
    """The constraint for ``output``; ``databases`` are the server's ``--db`` databases by name.

    Raises:
        RequestError: the format names a database the server does not have.
        ConstrainedError: the schema, pattern or grammar does not compile (its own typed error).
    """
    from .. import json_schema, regex

    if output.kind == "json_schema":
        return json_schema(output.source)
    if output.kind == "regex":
        return regex(output.source)
    if output.kind == "choice":
        from ..schema.strings import escape

        return regex("|".join(f"(?:{escape(choice)})" for choice in output.source))
    if output.kind == "grammar":
        from .. import grammar

        return grammar(output.source)
    if output.kind == "sql":
        if output.source not in databases:
            raise RequestError(f"no database {output.source!r} (this server has {sorted(databases) or 'none'})",
                               "structured_outputs.sql")
        from .. import sql

        return sql(databases[output.source])
    return _tool_constraint(output)


def _tool_constraint(output: OutputFormat) -> Constraint:
    from .. import json_schema

    call = json_schema(schema_of(output))
    if output.tool_choice != "auto":
        return call
    if call.also_matches:
        raise UnsupportedSchema("tool_choice 'auto' needs tools whose schemas compile to one pattern; use 'required'")
    inner = call.check

    def check(text: str) -> str | None:
        return inner(text) if inner is not None and text.startswith("{") else None

    return Constraint(f"(?:{call.pattern})|{PLAIN_ANSWER}", check=check, post_checked=call.post_checked,
                      kind="tool call or answer")


def read_tool_calls(output: OutputFormat, text: str) -> list[ToolCall] | None:
    """The calls in a generated ``text`` (``None`` for a plain answer under ``auto``)."""
    if output.kind != "tool_call" or not text.startswith(("{", "[", '"')) and output.tool_choice == "auto":
        return None
    value = json.loads(text)
    call_id = f"call_{secrets.token_hex(12)}"
    if output.tool_choice not in ("auto", "required"):
        return [ToolCall(call_id, output.tool_choice, json.dumps(value, ensure_ascii=False))]
    return [ToolCall(call_id, value["name"], json.dumps(value["arguments"], ensure_ascii=False))]
