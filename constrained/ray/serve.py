"""``constrained serve``'s app on Ray Serve: N replicas, each a Ray actor with its own model and engine.

::

    constrained serve --ray --replicas 2 --port 8000              # a local Ray instance, or the one RAY_ADDRESS names
    serve run constrained.ray.serve:build replicas=2 db=shop=shop.sqlite

Why one engine per replica: the engine batches the requests it holds into shared forward passes, and a model
pass cannot span processes, so each replica batches what Ray's proxy sends it and replicas share no state (each
binds and keeps its own constraints in memory, though replicas on one machine share the disk cache of automata;
``/metrics`` and ``/health`` describe the replica that answers). The app is
the one :func:`constrained.server.app.create_app` builds, made inside the replica after its engine (Serve's
late-bound ingress), so routes, limits and error shapes are the plain server's. Every answer names its replica
in the ``x-constrained-replica`` header.

A replica may hold as many requests as its engine's queue (``max_ongoing_requests = max_queue``; Ray's default
of 5 would cap its batch at 5 rows), so the engine, not Ray, answers 429 when it is full, as the plain server does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConstrainedError
from ..server import build_engine, open_databases
from ..server.app import DEFAULT_MAX_BODY_BYTES, create_app
from . import REPLICA_HEADER

#: The Serve application's name (``serve status``, ``serve.delete``).
APP_NAME = "constrained"


class _ReplicaHeader:
    """ASGI middleware: each response names the replica that made it, so load spreading can be seen."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app, self.header = app, (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, tagged if scope["type"] == "http" else send)


@serve.deployment
@serve.ingress()
class ConstrainedServer:
    """One replica: loads the model, starts an :class:`~constrained.server.engine.Engine`, serves its app.

    Parameters:
        checkpoint: a DiffusionGemma checkpoint directory, or ``None`` for the built-in model.
        databases: SQL outputs' databases by name, as schemas (read once by :func:`application`).
        threads: torch threads of this replica (its CPU reservation).
        max_body_bytes: the app's body limit (413 above it).
        engine_options: :class:`~constrained.server.engine.Engine`'s limits (``max_queue``, ``max_batch``,
            ``request_timeout_s``).
    """

    def __init__(self, checkpoint: str | None, databases: Mapping[str, Any], threads: int, max_body_bytes: int,
                 engine_options: Mapping[str, Any]) -> None:
        import torch

        torch.set_num_threads(threads)
        self.engine = build_engine(checkpoint, databases=databases, **engine_options)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.max_body_bytes = max_body_bytes

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """Serve's hook for an app made per replica (after ``__init__``): the plain server's app on this engine."""
        app = create_app(self.engine, max_body_bytes=self.max_body_bytes)
        app.add_middleware(_ReplicaHeader, replica=self.replica)
        return app


def application(checkpoint: str | Path | None = None, *, databases: Mapping[str, Any] | None = None,
                replicas: int = 2, cpus_per_replica: float = 1.0, max_queue: int = 256, max_batch: int = 16,
                request_timeout_s: float = 300.0, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The Serve application: ``replicas`` copies of :class:`ConstrainedServer`, ready for ``serve.run``.

    Parameters:
        checkpoint: a DiffusionGemma checkpoint directory (each replica loads it), ``None`` for the built-in model.
        databases: ``name -> SQLite path, connection or Schema`` for SQL outputs; their schemas are read here, so
            a bad database fails before any replica starts, and replicas receive the schemas, not the files.
        replicas: how many replicas (processes), each batching its own requests.
        cpus_per_replica: Ray CPUs each replica reserves; also its torch threads (at least one).
        max_queue, max_batch, request_timeout_s, max_body_bytes: the plain server's limits, per replica.

    Returns:
        A ``ray.serve.Application``.

    Raises:
        RequestError: ``replicas`` below one.
        DatabaseError: a database's schema cannot be read.
    """
    from ..errors import RequestError
    from ..text_to_sql.database import load_schema

    if replicas < 1:
        raise RequestError(f"replicas must be at least 1, got {replicas}", param="replicas")
    schemas = {name: load_schema(db) for name, db in (databases or {}).items()}
    where = str(Path(checkpoint).resolve()) if checkpoint is not None else None  # replicas may run elsewhere
    engine_options = {"max_queue": max_queue, "max_batch": max_batch, "request_timeout_s": request_timeout_s}
    deployment = ConstrainedServer.options(num_replicas=replicas, max_ongoing_requests=max_queue,
                                           ray_actor_options={"num_cpus": cpus_per_replica})
    return deployment.bind(where, schemas, max(1, int(cpus_per_replica)), max_body_bytes, engine_options)


#: ``serve run`` arguments (all text) -> (:func:`application`'s keyword, how to read it).
_BUILD_ARGUMENTS = {
    "checkpoint": ("checkpoint", str), "replicas": ("replicas", int), "cpus_per_replica": ("cpus_per_replica", float),
    "max_queue": ("max_queue", int), "max_batch": ("max_batch", int), "timeout": ("request_timeout_s", float),
}


def build(args: Mapping[str, str]) -> Any:
    """The application builder ``serve run constrained.ray.serve:build key=value ...`` calls.

    Keys: ``checkpoint``, ``replicas`` (default 2), ``cpus_per_replica``, ``max_queue``, ``max_batch``,
    ``timeout`` (seconds), and ``db``: ``NAME=PATH`` entries separated by commas, as ``--db`` takes them.

    Raises:
        ConstrainedError: an unknown key or a value that does not read as its type.
    """
    unknown = set(args) - set(_BUILD_ARGUMENTS) - {"db"}
    if unknown:
        raise ConstrainedError(f"unknown arguments {sorted(unknown)} (known: {sorted([*_BUILD_ARGUMENTS, 'db'])})")
    options: dict[str, Any] = {}
    for key, text in args.items():
        if key == "db":
            continue
        name, read = _BUILD_ARGUMENTS[key]
        try:
            options[name] = read(text)
        except ValueError:
            raise ConstrainedError(f"{key}={text!r} does not read as {read.__name__}") from None
    databases = open_databases([entry for entry in args.get("db", "").split(",") if entry])
    return application(databases=databases, **options)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: Ray's own handler exits from inside the wait, and its shutdown then aborts, leaving
    the local instance's agents behind."""
    raise KeyboardInterrupt


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Deploy ``app`` on Ray and serve it on ``host:port`` until interrupted, then take it down.

    Ray is the one this process already joined, else what ``ray.init()`` finds (``RAY_ADDRESS``, the machine's
    running instance) or a new local instance. Only this application is deleted on the way out, and this
    process leaves Ray (a local instance it started stops).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop takes Ctrl-C's way out
    deployed = False
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name=APP_NAME, route_prefix="/")
        deployed = True
        print(f"serving on http://{host}:{port} with Ray Serve (Ctrl-C stops)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if deployed:
                serve.delete(APP_NAME)
        finally:
            if started_here:
                ray.shutdown()  # a local instance started here stops with its driver
