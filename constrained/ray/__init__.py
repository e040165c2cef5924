"""Scale-out on Ray (``pip install 'constrained[ray]'``): the server on N replicas, and offline extraction.

* :mod:`.serve`: ``constrained serve``'s app as a Ray Serve deployment, one engine per replica
  (``constrained serve --ray --replicas N``, or ``serve run constrained.ray.serve:build replicas=N``);
* :mod:`.data`: :func:`extract`, a Ray Data dataset of texts and one JSON Schema in, validated JSON out.

``import constrained.ray`` loads neither Ray nor the model: each name imports its module on first use, as
``constrained`` itself does.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: The response header naming the replica that answered (set by :mod:`.serve`; read by clients and benchmarks).
REPLICA_HEADER = "x-constrained-replica"

#: Public name -> the submodule that defines it, imported on first access.
_LAZY = {
    "extract": ".data",
    "ConstrainedServer": ".serve",
    "application": ".serve",
    "build": ".serve",
    "run": ".serve",
}

if TYPE_CHECKING:
    from .data import extract
    from .serve import ConstrainedServer, application, build, run


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'constrained.ray' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["REPLICA_HEADER", "ConstrainedServer", "application", "build", "extract", "run"]
