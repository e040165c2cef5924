"""A pattern's automaton over bytes, as a dense table over byte classes.

Why bytes first: determinizing a pattern is done once, at byte level, whatever the vocabulary; walking the
vocabulary through it (:mod:`.pattern_automaton`) is then the only per-vocabulary work. A pattern in the syntax
the compilers mostly write (ASCII classes, literals, groups, quantifiers) is determinized here, over the byte
classes it tells apart (:mod:`._byte_determinize`, in C); any other goes through outlines-core, whose ``Index``
over a vocabulary of the single bytes lists every byte transition of every state.

Two synthetic marker tokens work around how outlines-core reports matches and starts its search (see the
markers below); they are read here and do not leave this module: what comes out is the table, which states
accept, and the state where the text starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ._byte_determinize import determinize
from ._table_passes import fill_table
from .dfa_minimization import minimal_table, signatures, trim_table, unique_rows
from .errors import RegexError, VocabularyError
from .outlines_index import index_transitions
from .token_dfa import DEAD

#: A marker appended to every pattern: U+10FFFF (private use, plane 16), spelled by one synthetic token.
#: outlines-core 0.2.x drops a token's transition whenever the token's last byte is read from an accepting
#: position (regex-automata reports matches one byte late), so ``(ab)+`` would refuse a second ``ab``. With
#: the marker appended, the only accepting positions follow the marker and nothing is lost; a state is
#: accepting for us iff the marker leads from it to the end. The marker's lead byte (0xF4: only plane-16
#: private-use characters) is left out of the byte vocabulary, so that no state sits inside the marker: a token
#: holding that byte never spells an accepted text.
_MARKER_PATTERN = "\\x{10FFFF}"
_MARKER_BYTES = "\U0010ffff".encode("utf-8")

#: A marker prepended to every pattern (U+10FFFE, spelled by a second synthetic token); the text starts in the
#: state after it. regex-automata determinizes an unanchored start as well as the anchored one, running the
#: pattern from every position of the text at once; in a pattern whose middle can contain its own beginning (a
#: subquery loosened to free text, a JSON string holding ``{``), those threads multiply the states. Starting with
#: a character found nowhere else kills every thread but the anchored one, and the automaton stays the same.
_START_PATTERN = "\\x{10FFFE}"
_START_BYTES = "\U0010fffe".encode("utf-8")

#: The byte vocabulary's ids: each byte its own value, then the two markers and the end token.
_MARKER_ID, _START_ID, _END_ID = 256, 257, 258


@dataclass(frozen=True)
class ByteAutomaton:
    """A deterministic automaton over byte classes.

    ``table[q, class_of_byte[b]]`` is the state after byte ``b`` in state ``q`` (``DEAD`` if it breaks the
    pattern); bytes share a class when they lead alike from every state. ``accepting[q]`` says a text may end
    in ``q``; ``start`` is the state of the empty text.
    """

    table: np.ndarray  # int32 [states, byte classes]
    class_of_byte: np.ndarray  # uint8 [256]
    accepting: np.ndarray  # bool [states]
    start: int

    @property
    def n_classes(self) -> int:
        return self.table.shape[1]


@lru_cache(maxsize=1)
def _byte_vocabulary() -> Any:
    """outlines-core's vocabulary of the single bytes (but the marker's lead byte) and the two markers."""
    import outlines_core

    spelled = {bytes([byte]): [byte] for byte in range(256) if byte != _MARKER_BYTES[0]}
    spelled[_MARKER_BYTES] = [_MARKER_ID]
    spelled[_START_BYTES] = [_START_ID]
    return outlines_core.Vocabulary(_END_ID, spelled)


def load_in_parent() -> None:
    """Import outlines-core and numpy's random generators, and make the byte vocabulary, in this process.

    Why: a build runs in a forked child (:mod:`.token_dfa_build`), which would otherwise import and make them
    again on every build and throw them away; made once in the parent, every later child finds them.
    """
    import numpy.random  # noqa: F401 - numpy imports it lazily, at the first hash of a build

    _byte_vocabulary()


def byte_automaton(pattern: str) -> ByteAutomaton:
    """The automaton of ``pattern`` over bytes: determinized here (:mod:`._byte_determinize`) when the pattern
    keeps to the syntax read there (ASCII classes, literals, groups, alternation, quantifiers: what the SQL
    compiler writes), otherwise through outlines-core, which reads the whole syntax.

    Parameters:
        pattern: a regular expression in outlines-core's syntax, matched against the whole text.

    Returns:
        Its minimal form (states that cannot reach the end cut, equivalent ones merged), over byte classes.

    Raises:
        RegexError: outlines-core cannot compile the pattern.
        VocabularyError: no text the pattern matches can be spelled (every one holds a plane-16 character).
    """
    determinized = determinize(pattern.encode("utf-8"))
    if determinized is not None:
        class_of_byte, table, accepting, n_classes = determinized
        return minimal_byte_automaton(np.frombuffer(table, dtype=np.int32).reshape(-1, n_classes).copy(),
                                      np.frombuffer(class_of_byte, dtype=np.uint8),
                                      np.frombuffer(accepting, dtype=np.bool_).copy(), 0)
    return _outlines_byte_automaton(pattern)


def _outlines_byte_automaton(pattern: str) -> ByteAutomaton:
    """:func:`byte_automaton` through outlines-core's ``Index`` over the single bytes."""
    import outlines_core

    try:
        index = outlines_core.Index(f"{_START_PATTERN}(?:{pattern}){_MARKER_PATTERN}", _byte_vocabulary())
    except (ValueError, RuntimeError, TypeError) as error:
        if "vocabulary provided is incompatible" in str(error):
            raise VocabularyError(f"no text the constraint accepts can be spelled: {error}") from None
        raise RegexError(f"cannot compile pattern {pattern[:200]!r}: {error}") from None
    sources, tokens, targets = index_transitions(index)
    finals = np.array(sorted(index.get_final_states()), dtype=np.int64)
    before_start = index.get_initial_state()
    start = int(targets[(sources == before_start) & (tokens == _START_ID)][0])
    by_marker = tokens == _MARKER_ID
    accepting_ids = sources[by_marker][np.isin(targets[by_marker], finals)]
    kept = np.zeros(max(int(sources.max()), int(targets.max()), int(finals.max(initial=0))) + 1, dtype=bool)
    kept[sources] = True
    kept[targets] = True
    kept[finals] = False
    state_ids = np.flatnonzero(kept)
    renumber = np.full(len(kept), DEAD, dtype=np.int32)
    renumber[state_ids] = np.arange(len(state_ids))
    byte_ok = np.ones(256, dtype=np.uint8)  # the markers' ids lie past its end
    byte_ok[_MARKER_BYTES[0]] = 0
    columns = (sources, tokens, targets, renumber, byte_ok)
    class_of_byte = unique_rows(signatures(columns, len(state_ids), 0xB7E5))[1].astype(np.int32)
    n_classes = int(class_of_byte.max()) + 1
    table = np.full((len(state_ids), n_classes), DEAD, dtype=np.int32)
    fill_table(*columns, class_of_byte, table, n_classes)
    accepting = np.zeros(len(state_ids), dtype=bool)
    accepting_states = renumber[accepting_ids]
    accepting[accepting_states[accepting_states != DEAD]] = True
    # minimal: regex-automata leaves many equivalent states, and each would be walked by the whole vocabulary
    return minimal_byte_automaton(table, class_of_byte, accepting, int(renumber[start]))


def minimal_byte_automaton(table: np.ndarray, class_of_byte: np.ndarray, accepting: np.ndarray,
                           start: int) -> ByteAutomaton:
    """The minimal automaton of a table over byte classes (trimmed in place first): states that cannot reach
    the end cut, equivalent states and columns merged, ``start`` numbered 0."""
    trim_table(table, accepting)
    table, accepting, class_of_column = minimal_table(table, accepting, start)
    return ByteAutomaton(table, class_of_column[class_of_byte].astype(np.uint8), accepting, 0)
