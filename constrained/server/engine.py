"""The serving engine: bounded queue, shared constraint cache, and one worker that batches the model.

Requests arrive on the event loop; everything slow happens elsewhere so the loop never stalls:

* compiling and binding a new output format runs in a small thread pool, and the bound constraint is cached
  (least recently used, ``cache_size`` entries) and shared by every request that sends the same format, also
  by requests that arrive while it is still being built;
* each choice of a request becomes a :class:`Job` in a bounded queue (a full queue answers at once, it does not
  wait); one worker thread takes jobs in batches and runs the denoiser, so concurrent requests share its forward
  passes; committed blocks flow back to the loop for streaming;
* a job whose client went away or whose time ran out is cancelled: it leaves at its next denoising step.

Thread safety: an :class:`Engine` is used from one event loop; its worker and pool threads touch only jobs,
futures, the metrics and the cache, each under its own lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConstrainedError
from ..prompts import json_prompt, prompt_ids
from .formats import compile_format, read_tool_calls, schema_of
from .metrics import Metrics
from .requests import CompletionRequest, OutputFormat
from .responses import Choice

DEFAULT_MAX_TOKENS = 192
MAX_TOKENS_LIMIT = 4096


class QueueFull(ConstrainedError):
    """Every slot of the queue is taken; the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(ConstrainedError):
    """A request ran past the server's time limit; its jobs were cancelled."""


class EngineFailure(ConstrainedError):
    """The model failed a forward pass for reasons no request caused; the rows in it fail with this (HTTP 500)."""


class Cancelled(ConstrainedError):
    """Ends a running job whose client is gone or whose time ran out, at its next committed block (it never
    reaches a client: the request has already been answered)."""


@dataclass(eq=False)  # jobs are told apart by identity (kept in sets)
class Job:
    """One choice to generate, as the worker runs it; ``future`` receives a :class:`Choice` or an error."""

    request: CompletionRequest
    prompt_ids: list[int]
    bound: Any
    max_new_tokens: int
    seed: int | None
    on_text: Callable[[str], None] | None
    cancelled: threading.Event = field(default_factory=threading.Event)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class Engine:
    """Runs OpenAI-shaped requests on one model.

    Parameters:
        model, tokenizer: the denoiser (anything :func:`constrained.generate` takes) and its tokenizer.
        name: the model id ``/v1/models`` lists and responses carry.
        databases: ``name -> SQLite path or connection`` for SQL outputs (read-only); their schemas are read
            once, here, so a bad ``--db`` fails at start and no request reads a database file for its prompt.
        max_queue: choices that may wait; one more is answered with :class:`QueueFull` (HTTP 429).
        max_batch: rows the worker runs together.
        request_timeout_s: wall-clock limit of one request, queueing included.
        cache_size: bound constraints kept.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "constrained-builtin",
                 databases: Mapping[str, Any] | None = None, max_queue: int = 256, max_batch: int = 16,
                 request_timeout_s: float = 300.0, cache_size: int = 64) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.databases = _read_schemas(databases or {})
        self.max_queue, self.max_batch, self.request_timeout_s = max_queue, max_batch, request_timeout_s
        self.metrics = Metrics()
        self._cache: OrderedDict[str, concurrent.futures.Future] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="constrained-bind")
        self._queue: deque[Job] = deque()
        self._running: set[Job] = set()
        self._wake = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="constrained-engine", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------------------------------- prompts

    def prompt_of(self, messages: tuple[dict[str, Any], ...], output: OutputFormat | None) -> str:
        """The prompt text for chat ``messages``: the tokenizer's chat template where it has one; otherwise the
        built-in model's own prompts (a JSON or SQL task around the users' words, or those words alone)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        text = "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer", "user"))
        schema = schema_of(output) if output is not None else None
        if schema is not None:
            return json_prompt(schema, text)
        if output is not None and output.kind == "sql" and output.source in self.databases:
            from ..text_to_sql.generate import question_prompt

            return question_prompt(self.databases[output.source], text)
        return text

    # ------------------------------------------------------------------------------------------- constraints

    def _bind(self, output: OutputFormat) -> Any:
        started = time.perf_counter()
        bound = compile_format(output, self.databases).bind(self.tokenizer)
        self.metrics.add("constrained_constraint_seconds_total", time.perf_counter() - started)
        return bound

    async def bound_constraint(self, output: OutputFormat | None) -> Any:
        """The bound constraint of ``output`` (``None`` for free text), from the cache or built off the loop.

        A failed build is not cached, so a fixed server-side cause (a database file restored) can succeed later.
        """
        if output is None:
            return None
        key = output.key
        with self._cache_lock:
            future = self._cache.get(key)
            if future is not None:
                self._cache.move_to_end(key)
                self.metrics.add("constrained_constraint_cache_hits_total")
            else:
                future = self._cache[key] = self._pool.submit(self._bind, output)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        try:  # shielded: one request giving up must not cancel a build that others wait for
            return await asyncio.shield(asyncio.wrap_future(future))
        except Exception:
            with self._cache_lock:
                if self._cache.get(key) is future and future.done():
                    del self._cache[key]
            raise

    # ------------------------------------------------------------------------------------------- requests

    async def run(self, request: CompletionRequest, on_text: Callable[[int, str], None] | None = None
                  ) -> tuple[int, list[Choice]]:
        """Generate every choice of ``request``: ``(prompt tokens, choices)``.

        ``on_text(index, delta)`` receives each choice's text as its blocks commit (called on the loop).

        Raises:
            QueueFull: no room for the request's choices.
            RequestTimeout: the request ran past ``request_timeout_s``.
            ConstrainedError: the format does not compile, or a choice cannot satisfy it (with its partial text).
        """
        try:
            return await asyncio.wait_for(self._run(request, on_text), self.request_timeout_s)
        except TimeoutError:
            raise RequestTimeout(f"the request ran past the server's limit of {self.request_timeout_s:g} s") from None

    async def _run(self, request: CompletionRequest, on_text: Callable[[int, str], None] | None
                   ) -> tuple[int, list[Choice]]:
        loop = asyncio.get_running_loop()
        bound = await self.bound_constraint(request.output)
        ids = prompt_ids(self.tokenizer, request.prompt)
        budget = min(request.max_tokens or DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT)
        jobs = []
        for index in range(request.n):
            deliver = None
            if on_text is not None:
                def deliver(delta: str, index: int = index) -> None:
                    loop.call_soon_threadsafe(on_text, index, delta)
            seed = None if request.seed is None else request.seed + index
            jobs.append(Job(request, ids, bound, budget, seed, deliver))
        self._enqueue(jobs)
        try:
            done = await asyncio.gather(*(asyncio.wrap_future(job.future) for job in jobs))
        finally:
            for job in jobs:
                job.cancelled.set()  # a no-op for finished jobs; frees the slots of the others
        return len(ids), list(done)

    def _enqueue(self, jobs: list[Job]) -> None:
        with self._wake:
            if len(self._queue) + len(jobs) > self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} choices waiting)", retry_after=1)
            self._queue.extend(jobs)
            self.metrics.set("constrained_queue_depth", len(self._queue))
            self._wake.notify()

    def close(self) -> None:
        """Stop the worker after its current batch and fail what still waits."""
        with self._wake:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._wake.notify()
        for job in waiting:
            job.future.set_exception(ConstrainedError("the server is shutting down"))
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------- the worker

    def _work(self) -> None:
        """Feed the continuous batch: admit waiting jobs while it has room, then one forward pass."""
        from ..batch import Batcher

        batcher = Batcher(model=self.model, tokenizer=self.tokenizer, max_batch_size=self.max_batch)
        counted = _StatsSeen(batcher.stats)
        while True:
            with self._wake:
                while not self._queue and not batcher.busy and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                admitted = []
                while self._queue and len(self._running) < self.max_batch:
                    job = self._queue.popleft()
                    if job.cancelled.is_set():
                        job.future.cancel()
                        continue
                    self._running.add(job)
                    admitted.append(job)
                self.metrics.set("constrained_queue_depth", len(self._queue))
            for job in admitted:
                self._submit(batcher, job)
            if batcher.busy:
                try:
                    batcher.step()
                except Exception as error:  # a fault of the model or of ours: fail its rows, keep serving
                    self._fail_running(EngineFailure(f"the batch failed: {type(error).__name__}: {error}"))
                    batcher = Batcher(model=self.model, tokenizer=self.tokenizer, max_batch_size=self.max_batch)
                    counted = _StatsSeen(batcher.stats)
                counted.record(batcher.stats, self.metrics)
            self.metrics.set("constrained_running", len(self._running))

    def _fail_running(self, error: ConstrainedError) -> None:
        with self._wake:
            failed, self._running = self._running, set()
        for job in failed:
            if not job.future.done():
                job.future.set_exception(error)

    def _submit(self, batcher: Any, job: Job) -> None:
        from ..batch import Request

        stream = _BlockStream(job, self.tokenizer)

        def done(outcome: Any) -> None:
            with self._wake:
                self._running.discard(job)
            if job.future.done():  # the request gave up (time limit, client gone) and cancelled it
                return
            if isinstance(outcome, Cancelled):
                job.future.cancel()
            elif isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                self.metrics.add("constrained_generated_tokens_total", len(outcome.token_ids))
                job.future.set_result(self._choice(job, outcome.text, len(outcome.token_ids)))

        request = Request(job.prompt_ids, job.bound, max_new_tokens=job.max_new_tokens, seed=job.seed)
        batcher.submit(request, done, on_commit=stream.commit)

    def _choice(self, job: Job, text: str, tokens: int) -> Choice:
        request = job.request
        finish = "length" if tokens >= job.max_new_tokens else "stop"
        if request.output is None:
            cuts = [text.index(stop) for stop in request.stop if stop in text]
            if cuts:
                text, finish = text[: min(cuts)], "stop"
        calls = read_tool_calls(request.output, text) if request.output is not None else None
        if calls is not None:
            return Choice(text, "tool_calls", tokens, tuple(calls))
        return Choice(text, finish, tokens)


def _read_schemas(databases: Mapping[str, Any]) -> dict[str, Any]:
    """Each database's :class:`~constrained.text_to_sql.Schema` (what ``sql()`` and the prompt both take)."""
    if not databases:
        return {}
    from ..text_to_sql import load_schema

    return {name: load_schema(db) for name, db in databases.items()}


class _BlockStream:
    """One job's committed blocks as text: each block's new text goes to the job's ``on_text``, and a cancelled
    job stops here, at its next block."""

    def __init__(self, job: Job, tokenizer: Any) -> None:
        self.job, self.tokenizer = job, tokenizer
        self.ids: list[int] = []
        self.sent = ""

    def commit(self, block: list[int]) -> None:
        if self.job.cancelled.is_set():
            raise Cancelled("the request was cancelled")
        if self.job.on_text is None:
            return
        ends = set(self.job.bound.eos_token_ids) if self.job.bound is not None else set()
        for token in block:
            if token in ends:
                break
            self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.job.on_text(text[len(self.sent):])
            self.sent = text


class _StatsSeen:
    """Turns the batch's running totals into metric increments (the batch keeps totals, the metrics count)."""

    def __init__(self, stats: Any) -> None:
        self.forward_passes, self.row_steps = stats.forward_passes, stats.row_steps
        self.predict_seconds, self.other_seconds = stats.predict_seconds, stats.other_seconds

    def record(self, stats: Any, metrics: Metrics) -> None:
        metrics.add("constrained_forward_passes_total", stats.forward_passes - self.forward_passes)
        metrics.add("constrained_row_steps_total", stats.row_steps - self.row_steps)
        metrics.add("constrained_model_seconds_total", stats.predict_seconds - self.predict_seconds)
        metrics.add("constrained_step_other_seconds_total", stats.other_seconds - self.other_seconds)
        self.forward_passes, self.row_steps = stats.forward_passes, stats.row_steps
        self.predict_seconds, self.other_seconds = stats.predict_seconds, stats.other_seconds
