"""OpenAI- and vLLM-shaped request bodies read into one request; malformed ones named by their parameter."""

from __future__ import annotations

import json

import pytest

from constrained.errors import RequestError
from constrained.server.formats import compile_format, read_tool_calls
from constrained.server.requests import OutputFormat, Tool, chat_request, completion_request

MESSAGES = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def chat(**body):
    return chat_request({"messages": MESSAGES, **body}, lambda messages, output: messages[-1]["content"])


@pytest.mark.parametrize("body", [
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
    {"structured_outputs": {"json": SCHEMA}},
    {"guided_json": json.dumps(SCHEMA)},
])
def test_every_spelling_of_a_schema_is_one_format(body):
    assert chat(**body).output == OutputFormat("json_schema", SCHEMA)


def test_formats_that_differ_only_in_key_order_share_a_cache_key():
    reordered = {"required": ["a"], "properties": {"a": {"type": "integer"}}, "type": "object"}
    assert chat(guided_json=SCHEMA).output.key == chat(guided_json=reordered).output.key


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 0}, "n"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"guided_regex": "a", "guided_choice": ["a"]}, "guided_choice"),
    ({"guided_choice": []}, "guided_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "guided_regex": "a"}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
])
def test_a_malformed_field_is_named(body, param):
    with pytest.raises(RequestError) as info:
        chat(**body)
    assert info.value.param == param


def test_completion_prompt_forms():
    assert completion_request({"prompt": ["one"]}).prompt == "one"
    with pytest.raises(RequestError, match="prompt"):
        completion_request({"prompt": ["one", "two"]})
    with pytest.raises(RequestError, match="JSON object"):
        completion_request([1, 2])


def test_choice_compiles_to_exactly_its_strings():
    constraint = compile_format(OutputFormat("choice", ["yes", "no (maybe)", "a.b*"]), {})
    assert all(constraint.accepts(text) for text in ("yes", "no (maybe)", "a.b*"))
    assert not any(constraint.accepts(text) for text in ("ye", "no", "aXb*", "yesno"))


def test_tool_choice_auto_accepts_a_valid_call_or_plain_text_only():
    tools = (Tool("f", {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
                        "additionalProperties": False}),)
    output = OutputFormat("tool_call", None, tools, "auto")
    constraint = compile_format(output, {})
    assert constraint.accepts('{"name": "f", "arguments": {"x": 3}}')
    assert constraint.accepts("It is sunny.") and constraint.accepts("")
    assert not constraint.accepts('{"name": "g", "arguments": {"x": 3}}')
    assert not constraint.accepts('{"name": "f", "arguments": {"x": "3"}}')
    (call,) = read_tool_calls(output, '{"name": "f", "arguments": {"x": 3}}')
    assert call.name == "f" and json.loads(call.arguments) == {"x": 3}
    assert read_tool_calls(output, "It is sunny.") is None


def test_sql_needs_a_database_the_server_has():
    with pytest.raises(RequestError, match="no database 'shop'"):
        compile_format(OutputFormat("sql", "shop"), {})


def test_a_lark_grammar_compiles_through_guided_grammar():
    body = chat(guided_grammar='start: NUMBER ("+" NUMBER)*\n%import common.NUMBER\n')
    constraint = compile_format(body.output, {})
    assert constraint.accepts("1+22") and not constraint.accepts("1+")


def test_the_engine_reads_its_databases_once_at_start():
    from pathlib import Path

    from constrained.errors import DatabaseError
    from constrained.server.engine import Engine
    from constrained.testing import byte_tokenizer, masked_lm
    from constrained.text_to_sql.database import open_database

    tokenizer = byte_tokenizer(300)
    script = Path(__file__).resolve().parents[1] / "examples" / "concerts.sql"
    engine = Engine(masked_lm(len(tokenizer)), tokenizer, databases={"shop": open_database(script)})
    try:
        output = OutputFormat("sql", "shop")
        prompt = engine.prompt_of(({"role": "user", "content": "How many singers?"},), output)
        assert prompt.startswith("Tables: singer(") and prompt.endswith("How many singers?\nSQL:")
        assert compile_format(output, engine.databases).accepts("SELECT count(*) FROM singer")
    finally:
        engine.close()
    with pytest.raises(DatabaseError, match="no database file"):
        Engine(masked_lm(len(tokenizer)), tokenizer, databases={"x": "/nonexistent.sqlite"})
