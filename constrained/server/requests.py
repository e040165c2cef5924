"""OpenAI-shaped request bodies, read into one :class:`CompletionRequest` the engine can run.

Clients written for OpenAI or vLLM send structured outputs in several spellings; each is turned into one
:class:`OutputFormat` here, so the engine and its constraint cache see one kind of object:

* ``response_format``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``, ``{"type":
  "json_object"}`` or ``{"type": "text"}``;
* ``tools`` with ``tool_choice`` (``"none"``, ``"auto"``, ``"required"``, ``{"type": "function", "function":
  {"name": ...}}``): the arguments of a call are valid under the function's ``parameters`` schema;
* vLLM's extras: ``structured_outputs`` (``json``, ``regex``, ``choice``, ``grammar``, ``sql``) and the older
  ``guided_json``, ``guided_regex``, ``guided_choice``, ``guided_grammar``.

Everything here is plain data and validation; nothing compiles or runs a model. A malformed body raises
:class:`RequestError`, which the app answers with HTTP 400 naming the offending parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import RequestError

FormatKind = Literal["json_schema", "regex", "choice", "grammar", "sql", "tool_call"]
ToolChoice = Literal["none", "auto", "required"] | str

#: Upper bounds a stranger's request is held to before anything is compiled.
MAX_CHOICES = 1_000
MAX_N = 16
MAX_TOOLS = 64


@dataclass(frozen=True)
class Tool:
    """One function a chat request offers: its name and the JSON Schema of its arguments."""

    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class OutputFormat:
    """What the output must be: ``kind`` and its ``source`` (schema, pattern, choices, grammar text, database).

    ``key`` is canonical text, the same for equal formats however the client spelled them: the engine's
    constraint cache is keyed by it.
    """

    kind: FormatKind
    source: Any
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "required"

    @property
    def key(self) -> str:
        tools = [[tool.name, tool.parameters] for tool in self.tools]
        return json.dumps([self.kind, self.source, tools, self.tool_choice], sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class CompletionRequest:
    """One request as the engine runs it; ``n`` choices share everything but their seeds."""

    endpoint: Literal["chat", "completion"]
    model: str
    prompt: str
    messages: tuple[dict[str, Any], ...] = ()
    output: OutputFormat | None = None
    n: int = 1
    seed: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise RequestError(message, param)


def _schema_of(value: Any, param: str) -> dict[str, Any] | bool:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RequestError(f"{param} is not JSON: {error}", param) from None
    _require(isinstance(value, (dict, bool)), f"{param} must be a JSON Schema object", param)
    return value


def _choices_of(value: Any, param: str) -> list[str]:
    _require(isinstance(value, list) and 0 < len(value) <= MAX_CHOICES and all(isinstance(c, str) for c in value),
             f"{param} must be a list of 1 to {MAX_CHOICES} strings", param)
    return list(value)


def _text_of(value: Any, param: str) -> str:
    _require(isinstance(value, str) and value != "", f"{param} must be a non-empty string", param)
    return value


def _response_format(value: Any) -> OutputFormat | None:
    _require(isinstance(value, dict) and isinstance(value.get("type"), str),
             "response_format must be an object with a type", "response_format")
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat("json_schema", {"type": "object"})
    if kind == "json_schema":
        spec = value.get("json_schema")
        _require(isinstance(spec, dict) and "schema" in spec, "response_format.json_schema needs a schema",
                 "response_format.json_schema")
        return OutputFormat("json_schema", _schema_of(spec["schema"], "response_format.json_schema.schema"))
    raise RequestError(f"response_format type {kind!r} is not one of text, json_object, json_schema",
                       "response_format.type")


#: vLLM's ``structured_outputs`` members and the older ``guided_*`` fields, with what each becomes.
_VLLM_FIELDS = {"json": "json_schema", "regex": "regex", "choice": "choice", "grammar": "grammar", "sql": "sql"}


def _vllm_format(body: dict[str, Any]) -> OutputFormat | None:
    found: list[tuple[str, str, Any]] = []
    outputs = body.get("structured_outputs")
    if outputs is not None:
        _require(isinstance(outputs, dict), "structured_outputs must be an object", "structured_outputs")
        found += [(f"structured_outputs.{name}", kind, outputs[name]) for name, kind in _VLLM_FIELDS.items()
                  if outputs.get(name) is not None]
    found += [(f"guided_{name}", kind, body[f"guided_{name}"]) for name, kind in _VLLM_FIELDS.items()
              if body.get(f"guided_{name}") is not None]
    if not found:
        return None
    if len(found) > 1:
        raise RequestError(f"give one structured output, not {', '.join(p for p, _, _ in found)}", found[1][0])
    param, kind, value = found[0]
    if kind == "json_schema":
        return OutputFormat(kind, _schema_of(value, param))
    if kind == "choice":
        return OutputFormat(kind, _choices_of(value, param))
    return OutputFormat(kind, _text_of(value, param))


def _tools(body: dict[str, Any]) -> tuple[tuple[Tool, ...], ToolChoice]:
    tools = body.get("tools") or []
    _require(isinstance(tools, list) and len(tools) <= MAX_TOOLS, f"tools must be a list of at most {MAX_TOOLS}",
             "tools")
    parsed: list[Tool] = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        _require(isinstance(tool, dict) and tool.get("type") == "function" and isinstance(function, dict)
                 and isinstance(function.get("name"), str), "a tool must be {type: function, function: {name}}",
                 f"tools[{index}]")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        parsed.append(Tool(function["name"], _schema_of(parameters, f"tools[{index}].function.parameters")))
    names = [tool.name for tool in parsed]
    _require(len(set(names)) == len(names), "tool names must be unique", "tools")
    choice = body.get("tool_choice", "auto" if parsed else "none")
    if isinstance(choice, dict):
        function = choice.get("function")
        _require(choice.get("type") == "function" and isinstance(function, dict)
                 and isinstance(function.get("name"), str), "tool_choice must name a function", "tool_choice")
        _require(function["name"] in names, f"tool_choice names {function['name']!r}, which tools does not offer",
                 "tool_choice")
        return tuple(parsed), function["name"]
    _require(choice in ("none", "auto", "required"), "tool_choice must be none, auto, required or a function",
             "tool_choice")
    _require(choice == "none" or parsed, f"tool_choice {choice!r} needs tools", "tool_choice")
    return tuple(parsed), choice


def _output_format(body: dict[str, Any], tools: tuple[Tool, ...], tool_choice: ToolChoice) -> OutputFormat | None:
    formats = [f for f in (
        _response_format(body["response_format"]) if body.get("response_format") is not None else None,
        _vllm_format(body),
    ) if f is not None]
    if tools and tool_choice != "none":
        _require(not formats, "tools cannot be combined with another structured output", "tools")
        return OutputFormat("tool_call", None, tools, tool_choice)
    _require(len(formats) <= 1, "give one structured output, not response_format and a vLLM field too",
             "response_format")
    return formats[0] if formats else None


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text ones
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if all(isinstance(text, str) for text in texts) and texts:
            return "\n".join(texts)
    if content is None:
        return ""
    raise RequestError("message content must be a string or text parts", f"messages[{index}].content")


def _messages(value: Any) -> tuple[dict[str, Any], ...]:
    _require(isinstance(value, list) and value, "messages must be a non-empty list", "messages")
    messages = []
    for index, message in enumerate(value):
        _require(isinstance(message, dict) and message.get("role") in ("system", "user", "assistant", "tool",
                                                                          "developer"),
                 "a message needs a role of system, developer, user, assistant or tool", f"messages[{index}]")
        messages.append({"role": message["role"], "content": _message_text(message.get("content"), index)})
    return tuple(messages)


def _common(body: dict[str, Any]) -> dict[str, Any]:
    n = body.get("n", 1)
    _require(isinstance(n, int) and 1 <= n <= MAX_N, f"n must be an integer from 1 to {MAX_N}", "n")
    seed = body.get("seed")
    _require(seed is None or isinstance(seed, int), "seed must be an integer", "seed")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    _require(max_tokens is None or (isinstance(max_tokens, int) and max_tokens > 0),
             "max_tokens must be a positive integer", "max_tokens")
    temperature = body.get("temperature")
    _require(temperature is None or (isinstance(temperature, (int, float)) and 0 <= temperature <= 2),
             "temperature must be a number from 0 to 2", "temperature")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    _require(isinstance(stop, (list, tuple)) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop),
             "stop must be a string or up to 4 strings", "stop")
    stream = body.get("stream", False)
    _require(isinstance(stream, bool), "stream must be a boolean", "stream")
    options = body.get("stream_options") or {}
    _require(isinstance(options, dict), "stream_options must be an object", "stream_options")
    model = body.get("model", "")
    _require(isinstance(model, str), "model must be a string", "model")
    return {"model": model, "n": n, "seed": seed, "max_tokens": max_tokens,
            "temperature": None if temperature is None else float(temperature), "stop": tuple(stop),
            "stream": stream, "include_usage": bool(options.get("include_usage", False))}


def chat_request(body: Any, prompt_of: Any) -> CompletionRequest:
    """A ``/v1/chat/completions`` body; ``prompt_of(messages)`` renders the messages (chat template or ours).

    Raises:
        RequestError: a field is missing or malformed (its name in ``param``).
    """
    _require(isinstance(body, dict), "the body must be a JSON object", None)
    messages = _messages(body.get("messages"))
    tools, tool_choice = _tools(body)
    output = _output_format(body, tools, tool_choice)
    return CompletionRequest("chat", prompt=prompt_of(messages, output), messages=messages, output=output,
                             **_common(body))


def completion_request(body: Any) -> CompletionRequest:
    """A ``/v1/completions`` body: one prompt string (a list of one is taken too).

    Raises:
        RequestError: a field is missing or malformed (its name in ``param``).
    """
    _require(isinstance(body, dict), "the body must be a JSON object", None)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    _require(isinstance(prompt, str), "prompt must be a string (batches: send one request each)", "prompt")
    _require(not body.get("tools"), "tools belong to /v1/chat/completions", "tools")
    return CompletionRequest("completion", prompt=prompt, output=_output_format(body, (), "none"),
                             **_common(body))
