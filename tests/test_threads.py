"""Thread safety: the built-in model loads once however many threads ask, a failed load does not stick, and one
bound constraint serves canvases in several threads with the results of serial use."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from constrained import default_model
from constrained.errors import DenoiserError
from constrained.json_schema import json_schema

THREADS = 4


def test_load_default_from_many_threads_loads_once_and_a_failure_does_not_stick(monkeypatch):
    calls: list[int] = []
    started = threading.Barrier(THREADS)
    loaded = object(), object()

    def flaky_load(directory):
        calls.append(1)
        if len(calls) == 1:
            raise DenoiserError("the first load fails")
        return loaded

    monkeypatch.setattr(default_model, "load", flaky_load)
    default_model.forget_default()

    def call() -> object:
        started.wait()
        try:
            return default_model.load_default()
        except DenoiserError as error:
            return error

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda _: call(), range(THREADS)))
        assert len(calls) == 2  # the failed load, then one successful load for every other thread
        assert sum(isinstance(r, DenoiserError) for r in results) == 1
        assert all(r is loaded for r in results if not isinstance(r, DenoiserError))
        assert default_model.load_default() is loaded and len(calls) == 2
    finally:
        default_model.forget_default()


_RACE = """
import threading
from constrained import default_model
barrier = threading.Barrier({threads})
devices = []
def load():
    barrier.wait()
    try:
        model, _ = default_model.load(default_model.checkpoint_dir())
        devices.append(str(next(model.parameters()).device))
    except Exception as error:
        devices.append(type(error).__name__ + ": " + str(error)[:200])
threads = [threading.Thread(target=load) for _ in range({threads})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
model, _ = default_model.load(default_model.checkpoint_dir())
devices.append(str(next(model.parameters()).device))
print(devices)
"""


def test_loading_the_checkpoint_from_several_threads_of_a_fresh_process():
    """Transformers imports and builds models through process-wide state; concurrent loads used to fail."""
    if not (default_model.checkpoint_dir() / "model.safetensors").is_file():
        pytest.skip("no shipped checkpoint yet (python -m model.train)")
    result = subprocess.run([sys.executable, "-c", _RACE.format(threads=THREADS)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == repr(["cpu"] * (THREADS + 1))


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}}},
          "required": ["name"]}
TEXTS = ['{"name": "Ada", "tags": ["a", "b"]}', '{"name":"Grace"}', '{"name": "Linus", "tags": []}']


def _walk(bound, tok, text: str) -> list:
    """Decide a text's tokens one by one on a canvas, recording after each decision what the masks say."""
    tokens = tok.encode(text, add_special_tokens=False)
    canvas = bound.canvas(len(tokens) + 8)
    record = []
    for position, token in enumerate(tokens):
        canvas.decide({position: token})
        masks = canvas.masks()
        record.append((canvas.feasible(), int(masks.sum()), masks[position + 1].nonzero().flatten()[:16].tolist()))
    return record


def test_one_bound_constraint_serves_several_threads_as_it_serves_one(tok):
    bound = json_schema(SCHEMA).bind(tok)
    serial = [_walk(bound, tok, text) for text in TEXTS]
    bound._sets.memory_limit = 0  # forget the shared sets at every decision: the hardest case for other threads
    started = threading.Barrier(THREADS * len(TEXTS))

    def walk(index: int) -> list:
        started.wait()
        return _walk(bound, tok, TEXTS[index % len(TEXTS)])

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, between any two kernel calls
    try:
        with ThreadPoolExecutor(THREADS * len(TEXTS)) as pool:
            concurrent = list(pool.map(walk, range(THREADS * len(TEXTS))))
    finally:
        sys.setswitchinterval(interval)
    for index, record in enumerate(concurrent):
        assert record == serial[index % len(TEXTS)], json.dumps(TEXTS[index % len(TEXTS)])
