"""Scale-out on Ray: the server's app on two Ray Serve replicas, and offline extraction on Ray Data.

Runs a local Ray instance of two CPUs (no dashboard, its files in a temporary folder) with the built-in model on
one torch thread per process. The replicas serve on 127.0.0.1, on a free port, and are taken down before the
extraction's actors need the CPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
openai = pytest.importorskip("openai")

from server_payloads import PERSON, WEATHER  # noqa: E402

import constrained.ray  # noqa: E402
from constrained.errors import ConstrainedError, RequestError, SchemaError  # noqa: E402
from constrained.ray import REPLICA_HEADER  # noqa: E402
from constrained.ray.serve import APP_NAME  # noqa: E402
from constrained.testing import free_local_port  # noqa: E402

pytestmark = pytest.mark.slow

TEXTS = ["Ada Lovelace, 36", "Alan Turing, 41", "Grace Hopper is 85 years old", "Edsger Dijkstra, 72",
         "Barbara Liskov, aged 50", "Donald Knuth, 30"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """A fresh local instance (never one already running on the machine), stopped with everything in it."""
    folder = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths live under it
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=folder, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="class")
def base_url() -> Iterator[str]:
    """Two replicas behind Ray's proxy on 127.0.0.1, for the tests of one class."""
    port = free_local_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(constrained.ray.application(replicas=2, max_batch=4, request_timeout_s=600), name=APP_NAME)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # frees the replicas' CPUs for the extraction's actors


@pytest.fixture(scope="class")
def client(base_url: str):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600)


class TestServe:
    def test_both_replicas_answer(self, base_url: str) -> None:
        """Ray's proxy spreads requests over the replicas; each answer names its replica."""
        seen = set()
        for _ in range(60):  # both are idle, so each request goes to either: 60 misses would be chance 2**-59
            response = httpx.get(f"{base_url}/health", timeout=60)
            assert response.json() == {"status": "ok"}
            seen.add(response.headers[REPLICA_HEADER])
            if len(seen) == 2:
                break
        assert len(seen) == 2

    def test_json_schema_response_validates(self, client) -> None:
        raw = client.chat.completions.with_raw_response.create(
            model="constrained-builtin", messages=[{"role": "user", "content": "Ada Lovelace is 36."}],
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
            max_tokens=64, seed=1)
        assert raw.headers[REPLICA_HEADER]
        choice = raw.parse().choices[0]
        jsonschema.validate(json.loads(choice.message.content), PERSON)
        assert choice.finish_reason == "stop"

    def test_streaming_passes_through_the_proxy(self, client) -> None:
        stream = client.chat.completions.create(
            model="constrained-builtin", messages=[{"role": "user", "content": "Alan Turing, 41"}], stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
            max_tokens=64, seed=5)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        jsonschema.validate(json.loads(text), PERSON)
        assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"

    def test_named_tool_call_arguments_validate(self, client) -> None:
        reply = client.chat.completions.create(
            model="constrained-builtin", messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=48, seed=0)
        (call,) = reply.choices[0].message.tool_calls
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])

    def test_a_bad_schema_is_400_with_what_is_wrong(self, client) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="constrained-builtin", messages=[{"role": "user", "content": "x"}],
                response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": {
                    "type": "object", "properties": {"a": {"type": "strin"}}}}})
        assert caught.value.status_code == 400 and "strin" in caught.value.body["message"]

    def test_metrics_are_the_replicas_own(self, base_url: str) -> None:
        text = httpx.get(f"{base_url}/metrics", timeout=60).text
        assert "# TYPE constrained_requests_total counter" in text


def _processes_with(variable: str) -> list[int]:
    """Live processes whose environment holds ``variable`` (what a process started by the command inherits)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and variable.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_the_command_serves_on_ray_and_leaves_nothing_running_after_sigterm(tmp_path: Path) -> None:
    """``constrained serve --ray`` on its own local instance (its files in a folder of its own); a service
    manager's SIGTERM stops it cleanly, Ray's processes included."""
    folder = tempfile.mkdtemp(prefix="ray-")
    marker = f"RAY_TMPDIR={folder}"
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | {"RAY_TMPDIR": folder}
    port = free_local_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        command = subprocess.Popen([sys.executable, "-m", "constrained.cli", "serve", "--ray", "--replicas", "1",
                                    "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while "serving on" not in log.read_text():
            assert command.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=60)
        assert response.status_code == 200 and response.headers[REPLICA_HEADER]
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=120) == 0, log.read_text()[-2000:]
        deadline = time.monotonic() + 30
        while _processes_with(marker):
            assert time.monotonic() < deadline, f"Ray processes left running: {_processes_with(marker)}"
            time.sleep(0.5)
    finally:
        if command.poll() is None:
            command.kill()
        shutil.rmtree(folder, ignore_errors=True)


def test_extract_gives_every_row_back_with_valid_json_or_its_error() -> None:
    rows = [{"id": index, "text": text} for index, text in enumerate(TEXTS)] + [{"id": len(TEXTS), "text": None}]
    dataset = ray.data.from_items(rows)
    out = constrained.ray.extract(dataset, PERSON, actors=2, batch_size=2, max_new_tokens=48).take_all()
    out.sort(key=lambda row: row["id"])  # actors finish batches in any order
    assert [(row["id"], row["text"]) for row in out] == [(row["id"], row["text"]) for row in rows]
    for row in out[: len(TEXTS)]:
        assert row["error"] is None, row
        jsonschema.validate(json.loads(row["json"]), PERSON)
    assert out[-1]["json"] is None and out[-1]["error"].startswith("RequestError")


def test_extract_refuses_a_bad_schema_before_any_actor_starts() -> None:
    dataset = ray.data.from_items([{"text": "x"}])
    with pytest.raises(SchemaError):
        constrained.ray.extract(dataset, {"type": "strin"})


def test_serve_run_arguments_are_read_or_refused() -> None:
    from constrained.ray.serve import build

    with pytest.raises(ConstrainedError, match="unknown arguments"):
        build({"replica": "2"})
    with pytest.raises(ConstrainedError, match="does not read as int"):
        build({"replicas": "two"})
    with pytest.raises(RequestError, match="replicas must be at least 1"):  # read, then handed on
        build({"replicas": "0"})
