"""An OpenAI-compatible server for diffusion LMs with structured outputs (``pip install 'constrained[serve]'``).

::

    constrained serve --port 8000                      # the built-in model
    constrained serve --checkpoint DIR --db shop=shop.sqlite

Clients use the official ``openai`` package (``base_url="http://127.0.0.1:8000/v1"``); structured outputs come
as ``response_format``, ``tools``, or vLLM's ``structured_outputs`` / ``guided_*`` fields (see
:mod:`.requests`). Concurrent requests share the model's forward passes (:mod:`.engine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def open_databases(entries: Sequence[str]) -> dict[str, Any]:
    """The databases ``--db NAME=PATH`` entries name (a SQLite file, or a ``.sql`` script run in the sandbox of
    :func:`~constrained.text_to_sql.database.open_database`), by name.

    Raises:
        ConstrainedError: an entry is not ``NAME=PATH``.
        DatabaseError: a script cannot be read or is refused.
    """
    from ..errors import ConstrainedError
    from ..text_to_sql.database import open_database

    databases = {}
    for entry in entries:
        name, _, path = entry.partition("=")
        if not name or not path:
            raise ConstrainedError(f"--db takes NAME=PATH, got {entry!r}")
        databases[name] = open_database(Path(path))
    return databases


def build_engine(checkpoint: str | None = None, *, databases: Mapping[str, Any] | None = None,
                 **options: Any) -> Any:
    """An :class:`~.engine.Engine` on the built-in model, or on the DiffusionGemma checkpoint at ``checkpoint``.

    Raises:
        DenoiserError: the checkpoint is missing or incomplete.
    """
    from ..default_model import load, load_default
    from .engine import Engine

    model, tokenizer = load(checkpoint) if checkpoint else load_default()
    name = "constrained-builtin" if checkpoint is None else str(checkpoint).rstrip("/").rsplit("/", 1)[-1]
    return Engine(model, tokenizer, name=name, databases=databases, **options)


def serve(engine: Any, *, host: str = "127.0.0.1", port: int = 8000, **app_options: Any) -> None:
    """Serve ``engine`` with uvicorn until interrupted."""
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(engine, **app_options), host=host, port=port, log_level="warning")
