"""`constrained serve`: the official openai client gets valid structured outputs, and every error is OpenAI-shaped.

The server runs in a thread on 127.0.0.1, on a free port, over the built-in model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jsonschema
import pytest
import torch

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from server_payloads import PERSON, TIME, WEATHER  # noqa: E402

from constrained.default_model import load_default  # noqa: E402
from constrained.server.app import create_app  # noqa: E402
from constrained.server.engine import Engine  # noqa: E402
from constrained.testing import free_local_port  # noqa: E402


@contextmanager
def running(engine: Engine, **app_options) -> Iterator[str]:
    port = free_local_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, **app_options), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small tensors on a shared machine: more threads only spin against the other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    model, tokenizer = load_default()
    with running(Engine(model, tokenizer, max_batch=4, request_timeout_s=600)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600)


def test_json_schema_response_validates(client) -> None:
    reply = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "Ada Lovelace is 36."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
        max_tokens=64, seed=1)
    choice = reply.choices[0]
    jsonschema.validate(json.loads(choice.message.content), PERSON)
    assert choice.finish_reason == "stop" and reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0


def test_json_object_gives_an_object_and_n_choices(client) -> None:
    reply = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "Grace Hopper, 85"}],
        response_format={"type": "json_object"}, max_tokens=64, n=2, seed=3)
    assert len(reply.choices) == 2
    for choice in reply.choices:
        assert isinstance(json.loads(choice.message.content), dict)


def test_named_tool_call_arguments_validate(client) -> None:
    reply = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=48, seed=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


@pytest.mark.parametrize("tool_choice", ["required", "auto"])
def test_required_and_auto_tool_calls_are_valid_when_made(client, tool_choice: str) -> None:
    reply = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "What time is it in UTC?"}],
        tools=[WEATHER, TIME], tool_choice=tool_choice, max_tokens=48, seed=2)
    message = reply.choices[0].message
    if tool_choice == "required":
        assert message.tool_calls
    for call in message.tool_calls or ():
        spec = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
        jsonschema.validate(json.loads(call.function.arguments), spec["function"]["parameters"])
    if not message.tool_calls:
        assert not message.content.startswith("{")


def test_vllm_guided_regex_and_choice(client) -> None:
    reply = client.completions.create(model="constrained-builtin", prompt="Date:", max_tokens=16,
                                      extra_body={"guided_regex": r"20[0-9]{2}-[01][0-9]-[0-3][0-9]"})
    assert len(reply.choices[0].text) == 10 and reply.choices[0].text.startswith("20")
    reply = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "yes or no?"}], max_tokens=8,
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    assert reply.choices[0].message.content in ("yes", "no")


def test_streaming_sends_deltas_that_add_up_to_a_valid_document(client) -> None:
    stream = client.chat.completions.create(
        model="constrained-builtin", messages=[{"role": "user", "content": "Alan Turing, 41"}], stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
        max_tokens=64, seed=5, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), PERSON)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_models_health_and_metrics(base_url: str, client) -> None:
    assert [m.id for m in client.models.list()] == ["constrained-builtin"]
    assert httpx.get(f"{base_url}/health").json() == {"status": "ok"}
    text = httpx.get(f"{base_url}/metrics").text
    assert "# TYPE constrained_requests_total counter" in text and 'endpoint="chat",status="200"' in text
    assert "constrained_forward_passes_total" in text


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]


def test_bad_schema_regex_and_body_are_400_with_what_is_wrong(base_url: str) -> None:
    chat = f"{base_url}/v1/chat/completions"
    messages = [{"role": "user", "content": "x"}]
    response = httpx.post(chat, json={"messages": messages, "response_format": {
        "type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "object", "properties": {
            "a": {"type": "strin"}}}}}})
    assert response.status_code == 400 and "strin" in _error(response)["message"]
    response = httpx.post(chat, json={"messages": messages, "guided_regex": "(unclosed"})
    assert response.status_code == 400 and _error(response)["code"] == "RegexError"
    response = httpx.post(chat, json={"messages": messages, "n": 99})
    assert response.status_code == 400 and _error(response)["param"] == "n"
    response = httpx.post(chat, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    response = httpx.post(chat, json={"messages": messages, "tools": [WEATHER],
                                      "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert response.status_code == 400 and _error(response)["param"] == "tool_choice"


def test_unsatisfiable_request_is_400_with_the_partial_text(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/completions", timeout=120, json={
        "prompt": "x", "max_tokens": 2, "guided_regex": "a{40}"})
    error = _error(response)
    assert response.status_code == 400 and error["code"] == "constraint_unsatisfiable" and "partial" in error


def test_limits_answer_413_429_and_408() -> None:
    model, tokenizer = load_default()
    body = {"prompt": "Date:", "max_tokens": 16, "guided_regex": "[0-9]{4}"}
    with running(Engine(model, tokenizer, max_queue=1), max_body_bytes=200) as url:
        big = httpx.post(f"{url}/v1/completions", json={"prompt": "x" * 500})
        assert big.status_code == 413
        full = httpx.post(f"{url}/v1/completions", json={**body, "n": 2})
        assert full.status_code == 429 and full.headers["Retry-After"] == "1"
        assert _error(full)["code"] == "queue_full"
    with running(Engine(model, tokenizer, request_timeout_s=0.01)) as url:
        slow = httpx.post(f"{url}/v1/completions", json={**body, "max_tokens": 96}, timeout=60)
        assert slow.status_code == 408 and _error(slow)["type"] == "timeout_error"
        assert httpx.get(f"{url}/health").status_code == 200  # the server is still up


def test_a_client_that_goes_away_frees_its_slot() -> None:
    """A streamed request whose client disconnects is cancelled at its next block, long before it would end."""
    model, tokenizer = load_default()
    engine = Engine(model, tokenizer)
    body = {"prompt": "x", "max_tokens": 1500, "guided_regex": "[0-9]{1400}", "seed": 0}  # sixteen blocks

    def passes() -> float:
        return engine.metrics.value("constrained_forward_passes_total")

    with running(engine) as url:
        assert httpx.post(f"{url}/v1/completions", json=body, timeout=120).status_code == 200
        whole = passes()
        with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=60) as response:
            assert response.status_code == 200
            next(response.iter_lines())  # the stream has started; now the client leaves
        deadline = time.monotonic() + 120
        while engine.metrics.value("constrained_running") or engine.metrics.value("constrained_queue_depth"):
            assert time.monotonic() < deadline, "the cancelled request still holds its slot"
            time.sleep(0.05)
        assert passes() - whole < whole  # the same request, seed and passes, stopped early
