"""OpenAI-shaped response bodies: completions, chat completions, their streamed chunks, and errors.

The official ``openai`` client parses these; field names and ``object`` values follow its API reference.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from .formats import ToolCall
from .requests import CompletionRequest


@dataclass(frozen=True)
class Choice:
    """One generated answer: its text (or tool calls), why it ended, and its token count."""

    text: str
    finish_reason: str
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] | None = None


def response_id(endpoint: str) -> str:
    return f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{secrets.token_hex(12)}"


def usage(prompt_tokens: int, choices: list[Choice]) -> dict[str, int]:
    completion = sum(choice.completion_tokens for choice in choices)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}


def _message(choice: Choice) -> dict[str, Any]:
    if choice.tool_calls is not None:
        return {"role": "assistant", "content": None, "tool_calls": [call.as_dict() for call in choice.tool_calls]}
    return {"role": "assistant", "content": choice.text}


def completion_body(request: CompletionRequest, rid: str, model: str, prompt_tokens: int,
                    choices: list[Choice]) -> dict[str, Any]:
    """The whole answer of a non-streamed request."""
    created = int(time.time())
    if request.endpoint == "chat":
        listed = [{"index": i, "message": _message(c), "logprobs": None, "finish_reason": c.finish_reason}
                  for i, c in enumerate(choices)]
        obj = "chat.completion"
    else:
        listed = [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
                  for i, c in enumerate(choices)]
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": listed,
            "usage": usage(prompt_tokens, choices)}


def chunk_body(request: CompletionRequest, rid: str, model: str, index: int, *, text: str | None = None,
               role: bool = False, tool_calls: tuple[ToolCall, ...] | None = None,
               finish_reason: str | None = None) -> dict[str, Any]:
    """One server-sent event of a streamed request: a delta of choice ``index``."""
    created = int(time.time())
    if request.endpoint == "completion":
        return {"id": rid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]}
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if text:
        delta["content"] = text
    if tool_calls is not None:
        delta["tool_calls"] = [{"index": i, **call.as_dict()} for i, call in enumerate(tool_calls)]
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(request: CompletionRequest, rid: str, model: str, prompt_tokens: int,
                choices: list[Choice]) -> dict[str, Any]:
    """The last event when ``stream_options.include_usage`` asks for it: no choices, the usage."""
    obj = "chat.completion.chunk" if request.endpoint == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [],
            "usage": usage(prompt_tokens, choices)}


def error_body(message: str, kind: str, *, param: str | None = None, code: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """OpenAI's error shape; ``extra`` adds fields of ours (``partial`` text, a JSON ``pointer``)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}
