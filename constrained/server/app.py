"""The ASGI app: OpenAI's endpoints over an :class:`~.engine.Engine` (the ``serve`` extra: starlette, uvicorn).

``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/health``, ``/metrics``. Errors keep OpenAI's
shape (``{"error": {"message", "type", "param", "code"}}``): 400 for a bad request, schema, pattern or grammar
(the typed error's message, with its JSON pointer) and for an output no text within the budget satisfies (with
the partial text); 408 past the time limit; 413 for a body over ``max_body_bytes``; 429 with ``Retry-After``
when the queue is full. A failing request never takes the server or the other requests down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import ConstrainedError, ConstraintUnsatisfiable, RequestError, SchemaError
from .engine import Engine, EngineFailure, QueueFull, RequestTimeout
from .requests import CompletionRequest, chat_request, completion_request
from .responses import Choice, chunk_body, completion_body, error_body, response_id, usage_chunk

DEFAULT_MAX_BODY_BYTES = 1 << 20
#: How often a waiting non-streamed request checks that its client is still there.
DISCONNECT_POLL_S = 0.5


class BodyTooLarge(ConstrainedError):
    """The request body is over the server's limit."""


def _error_response(error: BaseException) -> JSONResponse:
    """The HTTP answer to an error a request caused (never a 5xx for those)."""
    if isinstance(error, QueueFull):
        return JSONResponse(error_body(str(error), "rate_limit_error", code="queue_full"), status_code=429,
                            headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, RequestTimeout):
        return JSONResponse(error_body(str(error), "timeout_error", code="timeout"), status_code=408)
    if isinstance(error, BodyTooLarge):
        return JSONResponse(error_body(str(error), "invalid_request_error", code="body_too_large"), status_code=413)
    if isinstance(error, RequestError):
        return JSONResponse(error_body(str(error), "invalid_request_error", param=error.param), status_code=400)
    if isinstance(error, ConstraintUnsatisfiable):
        return JSONResponse(error_body(str(error), "invalid_request_error", code="constraint_unsatisfiable",
                                       partial=error.partial), status_code=400)
    if isinstance(error, EngineFailure):
        return JSONResponse(error_body(str(error), "server_error", code="engine_failure"), status_code=500)
    if isinstance(error, ConstrainedError):
        extra = {"pointer": error.pointer} if isinstance(error, SchemaError) else {}
        return JSONResponse(error_body(str(error), "invalid_request_error", code=type(error).__name__, **extra),
                            status_code=400)
    return JSONResponse(error_body(f"internal error: {type(error).__name__}: {error}", "server_error"),
                        status_code=500)


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes, over the limit of {limit}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"the body is not JSON: {error}") from None


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def create_app(engine: Engine, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    """The app serving ``engine``; the engine is closed when the app shuts down."""

    def count(endpoint: str, status: int) -> None:
        engine.metrics.add("constrained_requests_total", endpoint=endpoint, status=str(status))

    async def answer(http: Request, endpoint: str) -> Response:
        try:
            body = await _read_json(http, max_body_bytes)
            request = chat_request(body, engine.prompt_of) if endpoint == "chat" else completion_request(body)
            if request.stream:
                response: Response = await _stream(http, request)
            else:
                response = await _complete(http, request)
        except Exception as error:  # noqa: BLE001 - every error becomes an OpenAI-shaped answer
            response = _error_response(error)
        count(endpoint, response.status_code)
        return response

    async def _complete(http: Request, request: CompletionRequest) -> Response:
        task = asyncio.ensure_future(engine.run(request))
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await http.is_disconnected():
                task.cancel()  # its jobs are cancelled on the way out, freeing their slots
                return Response(status_code=499)
        prompt_tokens, choices = task.result()
        return JSONResponse(completion_body(request, response_id(request.endpoint), engine.name, prompt_tokens,
                                            choices))

    async def _stream(http: Request, request: CompletionRequest) -> Response:
        """Server-sent events: a role chunk, text deltas as blocks commit, the finish, optional usage, [DONE].

        The request is validated and its constraint bound before the first byte, so a bad request is still a
        plain 400; errors after that arrive as an error event.
        """
        await engine.bound_constraint(request.output)
        rid = response_id(request.endpoint)
        events: asyncio.Queue[str | None] = asyncio.Queue()
        streams_text = request.output is None or request.output.kind != "tool_call"

        def on_text(index: int, delta: str) -> None:
            if streams_text:
                events.put_nowait(_sse(chunk_body(request, rid, engine.name, index, text=delta)))

        async def produce() -> None:
            try:
                prompt_tokens, choices = await engine.run(request, on_text)
                for index, choice in enumerate(choices):
                    events.put_nowait(_sse(_final_chunk(request, rid, engine.name, index, choice, streams_text)))
                if request.include_usage:
                    events.put_nowait(_sse(usage_chunk(request, rid, engine.name, prompt_tokens, choices)))
            except Exception as error:  # noqa: BLE001 - the stream has started: report in-band
                events.put_nowait(_sse(json.loads(_error_response(error).body)))
            finally:
                events.put_nowait("data: [DONE]\n\n")
                events.put_nowait(None)

        async def body() -> AsyncIterator[str]:
            task = asyncio.ensure_future(produce())
            try:
                if request.endpoint == "chat":
                    for index in range(request.n):
                        yield _sse(chunk_body(request, rid, engine.name, index, role=True))
                while (event := await events.get()) is not None:
                    yield event
            finally:
                task.cancel()  # a client that disconnects frees its slots

        return StreamingResponse(body(), media_type="text/event-stream")

    async def chat(http: Request) -> Response:
        return await answer(http, "chat")

    async def completions(http: Request) -> Response:
        return await answer(http, "completion")

    async def models(http: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": engine.name, "object": "model", "created": int(time.time()), "owned_by": "constrained"}]})

    async def health(http: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(http: Request) -> Response:
        return PlainTextResponse(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ], lifespan=_closing(engine))


def _closing(engine: Engine) -> Any:
    """The app's lifespan: the build helper started (a server meets new schemas, whose builds the helper then
    makes rather than a child forked from the process holding the model), and the engine's worker stopped when the
    server stops."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from ..build_helper import warm_build_helper

        warm_build_helper()
        try:
            yield
        finally:
            engine.close()

    return lifespan


def _final_chunk(request: CompletionRequest, rid: str, model: str, index: int, choice: Choice,
                 streams_text: bool) -> dict[str, Any]:
    """The finishing event of one choice: tool calls whole (their arguments are one JSON text), else empty."""
    if not streams_text and choice.tool_calls is None:  # a plain answer under tool_choice="auto"
        return chunk_body(request, rid, model, index, text=choice.text, finish_reason=choice.finish_reason)
    return chunk_body(request, rid, model, index, tool_calls=choice.tool_calls, finish_reason=choice.finish_reason)

