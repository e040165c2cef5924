"""Every transition of an outlines-core ``Index`` as three arrays, read fast and checked.

Why not its accessors alone: ``get_transitions`` hands out one dict per state, which on a large pattern takes
several times as long to list (and more to turn into arrays) as reading the bytes the ``Index`` pickles itself
to (:mod:`._outlines_binary`, in C). That layout is outlines-core's own and may change with its version, so what
the bytes read into is used only when it agrees with the ``Index``'s accessors; otherwise the dicts are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._outlines_binary import read_index

#: How many transitions, spread over the whole read, are checked against the Index's own ``get_next_state``.
_CHECKED_TRANSITIONS = 256


def pickled_bytes(index: Any) -> bytes | None:
    """The bytes an outlines-core ``Index`` pickles itself to, or ``None`` if it pickles some other way."""
    reduced = index.__reduce__()
    arguments = reduced[1] if isinstance(reduced, tuple) and len(reduced) > 1 else ()
    return arguments[0] if len(arguments) == 1 and isinstance(arguments[0], bytes) else None


def index_transitions(index: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every transition of an outlines-core ``Index``.

    Parameters:
        index: an ``outlines_core.Index``.

    Returns:
        ``(state, token, next state)`` as three int32 arrays of one length: from the pickled bytes when they
        read into what the Index's accessors say (its initial and final states, and the next state of a
        spread of transitions), otherwise from ``get_transitions``.
    """
    data = pickled_bytes(index)
    read = read_index(data) if data is not None else None
    if read is not None:
        initial, finals, *arrays, _, _ = read
        sources, tokens, targets = (np.frombuffer(array, dtype=np.int32) for array in arrays)
        spread = range(0, len(sources), max(1, len(sources) // _CHECKED_TRANSITIONS))
        if (initial == index.get_initial_state() and set(finals) == set(index.get_final_states())
                and all(index.get_next_state(int(sources[i]), int(tokens[i])) == targets[i] for i in spread)):
            return sources, tokens, targets
    transitions = index.get_transitions()
    sizes = [len(row) for row in transitions.values()]
    return (np.repeat(np.fromiter(transitions.keys(), dtype=np.int32, count=len(sizes)), sizes),
            np.fromiter((t for row in transitions.values() for t in row.keys()), dtype=np.int32, count=sum(sizes)),
            np.fromiter((q for row in transitions.values() for q in row.values()), dtype=np.int32, count=sum(sizes)))
