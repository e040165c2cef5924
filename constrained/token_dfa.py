"""The token-level automaton of one (pattern, vocabulary) pair, compacted by token classes.

outlines-core's ``Index`` determinizes the pattern and walks every token through it. We keep what the
canvas lattice needs in a compact, array form:

* the minimal automaton at token level: only states reachable from the start and from which acceptance is
  still reachable (live), equivalent states merged, plus ``DONE``, the state after the first end token
  (merged with any state that, like it, can only be followed by end tokens);
* tokens grouped into *classes* of identical behaviour in every state (all letter-only tokens inside a
  string, say): the table is ``[S, C]`` instead of ``[S, V]``, usually a few hundred columns rather than
  tens of thousands;
* end tokens (EOS, pad) form one class leading from accepting states to ``DONE`` and from ``DONE`` to itself,
  so a canvas can hold the text followed by padding, and nothing after the padding.

The build runs in a child process under a time and memory bound (determinization can blow up), and the
result is cached on disk keyed by pattern and vocabulary fingerprint.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import resource
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ._outlines_binary import read_index
from ._table_passes import column_signatures, fill_table, relabel
from .errors import CompileTimeout, RegexError, VocabularyError
from .vocabulary import TokenVocabulary

#: Bumped whenever the tables change (their layout, or how states are numbered), so stale cache files are never read.
FORMAT_VERSION = 5
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_BYTES = 8 << 30
DEAD = -1
#: Notes a first-use build (seconds to a minute on a large constraint) so a waiting user knows what runs.
_LOG = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where compiled automata are kept: ``$CONSTRAINED_CACHE`` or ``~/.cache/constrained``."""
    return Path(os.environ.get("CONSTRAINED_CACHE", Path.home() / ".cache" / "constrained"))


@dataclass(frozen=True)
class TokenDFA:
    """A deterministic automaton over token classes.

    ``table[q, c]`` is the state after a token of class ``c`` in state ``q`` (``DEAD`` if it breaks the
    pattern); ``token_class[t]`` maps a token id to its class; ``accepting[q]`` says a text may end in ``q``.
    """

    table: np.ndarray  # int32 [S, C]
    token_class: np.ndarray  # int32 [V]
    accepting: np.ndarray  # bool [S]
    initial: int
    end_class: int

    @cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The live transitions as ``(source, token class, target)`` arrays sorted by target, and per state
        the offset of its incoming edges (``offsets[q]:offsets[q + 1]``). Tables are sparse (a few percent of
        ``table`` is live on a SQL automaton), so dynamic programmes over edges beat ones over the table."""
        return _incoming_edges(self.table)

    @property
    def n_states(self) -> int:
        """States including ``DONE``."""
        return self.table.shape[0]

    @property
    def n_classes(self) -> int:
        return self.table.shape[1]

    @property
    def vocab_size(self) -> int:
        return self.token_class.shape[0]

    def step(self, state: int, token_id: int) -> int:
        """The state after one token, or ``DEAD``."""
        return DEAD if state == DEAD else int(self.table[state, self.token_class[token_id]])

    def walk(self, token_ids: list[int], state: int | None = None) -> int:
        """The state after a token sequence, or ``DEAD`` as soon as it leaves the language."""
        state = self.initial if state is None else state
        for token_id in token_ids:
            state = self.step(state, token_id)
            if state == DEAD:
                break
        return state

    def save(self, path: Path) -> None:
        """Only the live transitions are written: a few percent of a SQL automaton's table."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        states, classes = np.nonzero(self.table != DEAD)
        np.savez(tmp, states=states.astype(np.int32), classes=classes.astype(np.int32),
                 targets=self.table[states, classes], token_class=self.token_class, accepting=self.accepting,
                 scalars=np.array([self.initial, self.end_class, *self.table.shape]))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> TokenDFA:
        with np.load(path) as data:
            initial, end_class, n_states, n_classes = (int(x) for x in data["scalars"])
            table = np.full((n_states, n_classes), DEAD, dtype=np.int32)
            table[data["states"], data["classes"]] = data["targets"]
            return cls(table, data["token_class"], data["accepting"], initial, end_class)


def _incoming_edges(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The live transitions of ``table`` as ``(source, class, target)`` sorted by target, and per state the
    offset of its incoming ones (``offsets[q]:offsets[q + 1]``)."""
    sources, classes = np.nonzero(table != DEAD)
    targets = table[sources, classes].astype(np.int64)
    order = np.argsort(targets, kind="stable")
    offsets = np.searchsorted(targets[order], np.arange(table.shape[0] + 1))
    return sources[order], classes[order], targets[order], offsets


def _live_states(table: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """States from which an accepting state is reachable: a backward search from the accepting states over
    the live transitions, each state expanded once (a scan of the whole table per round costs as many
    rounds as the longest path, which on a SQL automaton is hundreds)."""
    sources, _classes, _targets, offsets = _incoming_edges(table)
    live = accepting.copy()
    frontier = np.flatnonzero(live)
    while len(frontier):
        starts, lengths = offsets[frontier], offsets[frontier + 1] - offsets[frontier]
        ends = np.cumsum(lengths)
        predecessors = sources[np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths - starts, lengths)]
        frontier = np.unique(predecessors[~live[predecessors]])
        live[frontier] = True
    return live


def _signatures(columns: tuple[np.ndarray, ...], n_states: int, seed: int) -> np.ndarray:
    """Two independent random linear hashes (128 bits) of each column of a transition table given as a list
    (``_table_passes.column_signatures``: per column, the sum over its kept entries of a random odd weight of
    the state times the next state + 1): ``[columns, 2]``. Equal columns get equal signatures and distinct
    ones collide with probability far below ``2**-100``, so sorting signatures stands in for sorting whole
    columns of ``S`` entries, and the dense table is never needed."""
    weights = np.random.default_rng(seed).integers(1, 2**63, size=(2, n_states), dtype=np.uint64) | np.uint64(1)
    signature = column_signatures(*columns, np.ascontiguousarray(weights.T))
    return np.frombuffer(signature, dtype=np.uint64).reshape(-1, 2)


def _token_classes(columns: tuple[np.ndarray, ...], n_states: int) -> np.ndarray:
    """Token classes: tokens with the same transition in every state share a class (by their columns'
    signatures)."""
    _, classes = np.unique(_signatures(columns, n_states, 0x5EED), axis=0, return_inverse=True)
    return classes.reshape(-1).astype(np.int32)


#: A marker appended to every pattern: U+10FFFF (private use, plane 16), spelled by one synthetic token.
#: outlines-core 0.2.x drops a token's transition whenever the token's last byte is read from an accepting
#: position (regex-automata reports matches one byte late), so ``(ab)+`` would refuse a second ``ab``. With
#: the marker appended, the only accepting positions follow the marker and nothing is lost; a state is
#: accepting for us iff the marker leads from it to the end. Real tokens with the marker's lead byte (0xF4:
#: only plane-16 private-use characters) are left out of the index so that no state sits inside the marker.
_MARKER_PATTERN = "\\x{10FFFF}"
_MARKER_BYTES = "\U0010ffff".encode("utf-8")

#: A marker prepended to every pattern (U+10FFFE, spelled by a second synthetic token); our initial state is
#: the state after it. regex-automata determinizes an unanchored start as well as the anchored one, running
#: the pattern from every position of the text at once; in a pattern whose middle can contain its own
#: beginning (a subquery loosened to free text, a JSON string holding ``{``), those threads multiply the
#: states. Starting with a character found nowhere else kills every thread but the anchored one: measured
#: on a SQL pattern loosened one level, the build went from 39 s to 0.1 s for the same automaton.
_START_PATTERN = "\\x{10FFFE}"
_START_BYTES = "\U0010fffe".encode("utf-8")


def _compile_tables(pattern: str, vocabulary: TokenVocabulary) -> TokenDFA:
    """Determinize through outlines-core and compact the result (runs inside the bounded child)."""
    import outlines_core

    end_ids = set(vocabulary.end_token_ids)
    marker_id, start_id = vocabulary.size, vocabulary.size + 1
    spelled: dict[bytes, list[int]] = {_MARKER_BYTES: [marker_id], _START_BYTES: [start_id]}
    for token_id, piece in enumerate(vocabulary.token_bytes):
        if piece is not None and token_id not in end_ids and _MARKER_BYTES[0] not in piece:
            spelled.setdefault(piece, []).append(token_id)
    try:
        index = outlines_core.Index(
            f"{_START_PATTERN}(?:{pattern}){_MARKER_PATTERN}",
            outlines_core.Vocabulary(vocabulary.end_token_ids[0], spelled),
        )
    except (ValueError, RuntimeError, TypeError) as error:
        if "vocabulary provided is incompatible" in str(error):
            raise VocabularyError(f"the vocabulary cannot spell any text the constraint accepts: {error}") from None
        raise RegexError(f"cannot compile pattern {pattern[:200]!r}: {error}") from None
    sources, tokens, targets = _transitions(index)
    finals = np.array(sorted(index.get_final_states()), dtype=np.int64)
    before_start = index.get_initial_state()
    initial = int(targets[(sources == before_start) & (tokens == start_id)][0])
    by_marker = tokens == marker_id
    accepting_ids = sources[by_marker][np.isin(targets[by_marker], finals)]
    kept = np.zeros(max(sources.max(), targets.max(), finals.max(initial=0), initial) + 1, dtype=bool)
    kept[sources] = True
    kept[initial] = True
    kept[finals] = kept[before_start] = False
    state_ids = np.flatnonzero(kept)
    renumber = np.full(len(kept), DEAD, dtype=np.int32)  # finals and the state before the start: DEAD
    renumber[state_ids] = np.arange(len(state_ids))
    token_ok = np.ones(vocabulary.size, dtype=np.uint8)  # the markers' ids lie past its end
    token_ok[list(end_ids)] = 0
    columns = (sources, tokens, targets, renumber, token_ok)

    token_class = _token_classes(columns, len(state_ids))
    end_class = int(token_class.max(initial=-1)) + 1
    token_class[list(end_ids)] = end_class
    n_states = len(state_ids) + 1  # + DONE
    done = n_states - 1
    table = np.full((n_states, end_class + 1), DEAD, dtype=np.int32)
    fill_table(*columns, token_class, table, end_class + 1)
    accepting = np.zeros(n_states, dtype=bool)
    accepting[renumber[accepting_ids]] = True
    table[accepting, end_class] = done
    table[done, end_class] = done
    accepting[done] = True

    return _minimal(_trimmed(TokenDFA(table, token_class, accepting, int(renumber[initial]), end_class)))


def _pickled_bytes(index) -> bytes | None:
    """The bytes an outlines-core ``Index`` pickles itself to, or None if it pickles some other way."""
    reduced = index.__reduce__()
    arguments = reduced[1] if isinstance(reduced, tuple) and len(reduced) > 1 else ()
    return arguments[0] if len(arguments) == 1 and isinstance(arguments[0], bytes) else None


def _transitions(index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every transition of an outlines-core ``Index`` as (state, token, next state) int32 arrays.

    Read from the bytes the Index pickles to (``_outlines_binary``: about 1 s where ``get_transitions``
    takes 5 s for 14.5M transitions, and more to turn its dicts into arrays). That layout is outlines-core's
    own, so the read is used only when it agrees with the Index's accessors (initial and final states, and
    the next state of a spread of transitions); otherwise the dicts are read instead.
    """
    data = _pickled_bytes(index)
    read = read_index(data) if data is not None else None
    if read is not None:
        initial, finals, *arrays, _, _ = read
        sources, tokens, targets = (np.frombuffer(array, dtype=np.int32) for array in arrays)
        spread = range(0, len(sources), max(1, len(sources) // 256))
        if (initial == index.get_initial_state() and set(finals) == set(index.get_final_states())
                and all(index.get_next_state(int(sources[i]), int(tokens[i])) == targets[i] for i in spread)):
            return sources, tokens, targets
    transitions = index.get_transitions()
    sizes = [len(row) for row in transitions.values()]
    return (np.repeat(np.fromiter(transitions.keys(), dtype=np.int32, count=len(sizes)), sizes),
            np.fromiter((t for row in transitions.values() for t in row.keys()), dtype=np.int32, count=sum(sizes)),
            np.fromiter((q for row in transitions.values() for q in row.values()), dtype=np.int32, count=sum(sizes)))


def _trimmed(dfa: TokenDFA) -> TokenDFA:
    """The same automaton with every transition into or out of a state that cannot reach acceptance removed
    (in place), so that a canvas never offers a token after which the text can no longer be completed."""
    live = _live_states(dfa.table, dfa.accepting)
    dfa.table[~live] = DEAD
    dfa.table[np.isin(dfa.table, np.flatnonzero(~live))] = DEAD
    return dfa


#: Product states expanded per vectorized step of :func:`intersection` (bounds its scratch memory).
_PRODUCT_CHUNK = 256


def intersection(first: TokenDFA, second: TokenDFA) -> TokenDFA:
    """The minimal automaton of the texts both automata accept (both over the same vocabulary).

    Why: some constraints are far smaller as two automata than as one pattern. A SQL query must follow the
    grammar *and* keep word tokens apart; written as one regex, the second rule would copy the rest of the
    query once per kind of previous token. The product is built over reachable state pairs only, one
    frontier at a time, with token classes refined to the pairs of classes that occur together.
    """
    pairs, token_class = np.unique(np.column_stack([first.token_class, second.token_class]), axis=0,
                                   return_inverse=True)
    token_class = token_class.reshape(-1).astype(np.int32)
    first_class, second_class = pairs[:, 0], pairs[:, 1]
    width = np.int64(second.n_states)
    known = np.array([first.initial * width + second.initial], dtype=np.int64)  # pair codes, sorted
    known_ids = np.array([0], dtype=np.int64)
    codes = [known[0]]
    rows: list[np.ndarray] = []
    frontier = known.copy()
    while len(frontier):
        targets = []
        for begin in range(0, len(frontier), _PRODUCT_CHUNK):
            chunk = frontier[begin:begin + _PRODUCT_CHUNK]
            a = first.table[chunk // width][:, first_class].astype(np.int64)
            b = second.table[chunk % width][:, second_class].astype(np.int64)
            targets.append(np.where((a == DEAD) | (b == DEAD), DEAD, a * width + b))
        level = np.concatenate(targets)
        reached = np.unique(level[level != DEAD])
        position = np.minimum(np.searchsorted(known, reached), len(known) - 1)
        fresh = reached[known[position] != reached]
        codes.extend(fresh.tolist())
        merged = np.concatenate([known, fresh])
        order = np.argsort(merged, kind="stable")
        known = merged[order]
        known_ids = np.concatenate([known_ids, np.arange(len(codes) - len(fresh), len(codes))])[order]
        live = level != DEAD
        ids = np.full(level.shape, DEAD, dtype=np.int32)
        ids[live] = known_ids[np.searchsorted(known, level[live])]
        rows.append(ids)
        frontier = fresh
    table = np.concatenate(rows)
    states = np.array(codes, dtype=np.int64)
    accepting = first.accepting[states // width] & second.accepting[states % width]
    end_class = int(token_class[np.flatnonzero(first.token_class == first.end_class)[0]])
    return _minimal(_trimmed(TokenDFA(table, token_class, accepting, 0, end_class)))


def _reachable_states(table: np.ndarray, initial: int) -> np.ndarray:
    """States reachable from ``initial`` (forward closure, one frontier at a time)."""
    reached = np.zeros(table.shape[0] + 1, dtype=bool)
    reached[DEAD] = True  # the extra last slot: DEAD never joins a frontier (table[DEAD] is a real row)
    frontier = np.array([initial])
    while len(frontier):
        reached[frontier] = True
        successors = np.unique(table[frontier])
        frontier = successors[~reached[successors]]
    return reached[:-1]


def _equivalent_states(table: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """Per state, its block of the coarsest partition where equivalent states share a future (Moore).

    Starting from accepting / not accepting, states are split while the blocks their classes lead to
    differ. Each round sums two independent random linear hashes (128 bits) of each row over its live
    transitions only (dead ones add nothing), so a round costs the transitions, not the table, and sorts
    three numbers per state rather than whole rows; a collision (merging two distinct rows) has
    probability far below ``2**-100`` per round.
    """
    n_states, n_classes = table.shape
    sources, classes = np.nonzero(table != DEAD)  # sorted by source
    targets = table[sources, classes]
    weights = np.random.default_rng(0xB10C).integers(1, 2**63, size=(n_classes, 2), dtype=np.uint64) | 1
    edge_weights = weights[classes]
    starts = np.searchsorted(sources, np.arange(n_states))
    with_edges = np.flatnonzero(np.diff(np.append(starts, len(sources))) > 0)
    blocks = accepting.astype(np.int64)
    count = len(np.unique(blocks))
    while True:
        sums = np.zeros((n_states, 2), dtype=np.uint64)
        if len(with_edges):
            terms = edge_weights * (blocks[targets] + 1).astype(np.uint64)[:, None]
            sums[with_edges] = np.add.reduceat(terms, starts[with_edges], axis=0)
        _, refined = np.unique(np.column_stack([blocks.astype(np.uint64), sums]), axis=0, return_inverse=True)
        refined = refined.reshape(-1)
        refined_count = int(refined.max()) + 1
        if refined_count == count:
            return refined
        blocks, count = refined, refined_count


def _column_signatures(table: np.ndarray) -> np.ndarray:
    """The signatures of the columns of a dense ``table``: merging its classes then sorts ``C`` pairs of
    numbers instead of ``C`` whole columns of ``S`` entries."""
    states, classes = (index.astype(np.int32) for index in np.nonzero(table != DEAD))
    n_states, n_classes = table.shape
    every_state, every_class = np.arange(n_states, dtype=np.int32), np.ones(n_classes, dtype=np.uint8)
    return _signatures((states, classes, table[states, classes], every_state, every_class), n_states, 0xC01)


def _minimal(dfa: TokenDFA) -> TokenDFA:
    """The minimal automaton of the same language: reachable states only, equivalent states merged, and
    classes merged where their columns became equal.

    Why: every set operation of the canvas lattice costs in proportion to the states (and their arcs), and
    the byte-level determinization leaves many token-level twins (the same string tail reached through
    different properties, say): on MaskBench schemas with a 32K vocabulary this keeps 1/11 to 1/2 of them.
    """
    kept = np.flatnonzero(_reachable_states(dfa.table, dfa.initial))
    renumber = np.full(dfa.n_states, DEAD, dtype=np.int32)
    renumber[kept] = np.arange(len(kept))
    table = dfa.table[kept]
    relabel(table, renumber)  # in place: a SQL product's table holds tens of millions of cells
    blocks = _equivalent_states(table, dfa.accepting[kept])
    _, representatives = np.unique(blocks, return_index=True)
    merged = table[representatives]
    relabel(merged, blocks.astype(np.int32))
    _, first_column, class_of_column = np.unique(_column_signatures(merged), axis=0, return_index=True,
                                                 return_inverse=True)
    class_of_column = class_of_column.reshape(-1)
    table = merged[:, first_column]
    initial = int(blocks[renumber[dfa.initial]])
    order = _breadth_first(table, initial)
    table = table[order]
    relabel(table, np.argsort(order).astype(np.int32))  # each old number to its new one
    return TokenDFA(
        table=table,
        token_class=class_of_column[dfa.token_class].astype(np.int32),
        accepting=dfa.accepting[kept][representatives][order],
        initial=0,
        end_class=int(class_of_column[dfa.end_class]),
    )


def _breadth_first(table: np.ndarray, initial: int) -> np.ndarray:
    """The states in breadth-first order from ``initial`` (every state must be reachable), a level at a time,
    each level in order of first appearance along its predecessors' rows.

    Why: numbered this way, a state's successors and predecessors lie close to it, so their bitsets span a
    few machine words instead of the whole set (about a third as many on MaskBench automata), which is
    what the canvas lattice's set unions pay for.
    """
    seen = np.zeros(table.shape[0] + 1, dtype=bool)
    seen[DEAD] = True  # the extra last slot: DEAD is never visited
    seen[initial] = True
    levels = [np.array([initial])]
    while len(levels[-1]):
        successors = table[levels[-1]].reshape(-1)
        successors = successors[~seen[successors]]
        _, first = np.unique(successors, return_index=True)
        level = successors[np.sort(first)]
        seen[level] = True
        levels.append(level)
    order = np.concatenate(levels)
    if len(order) != table.shape[0]:
        raise ValueError("every state must be reachable from the initial one")
    return order


def _compile_all(patterns: tuple[str, ...], vocabulary: TokenVocabulary) -> TokenDFA:
    """The automaton of the texts that every pattern matches."""
    dfa = _compile_tables(patterns[0], vocabulary)
    for pattern in patterns[1:]:
        dfa = intersection(dfa, _compile_tables(pattern, vocabulary))
    return dfa


def _child(patterns: tuple[str, ...], vocabulary: TokenVocabulary, memory_bytes: int, conn) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ok", _compile_all(patterns, vocabulary)))
    except MemoryError:
        conn.send(("memory", None))
    except (RegexError, VocabularyError) as error:
        conn.send(("error", error))
    finally:
        conn.close()


def _build_bounded(patterns: tuple[str, ...], vocabulary: TokenVocabulary, timeout_s: float,
                   memory_bytes: int) -> TokenDFA:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(patterns, vocabulary, memory_bytes, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise CompileTimeout(f"building the token automaton took longer than {timeout_s:g} s")
        status, payload = receiver.recv()
    except EOFError:
        raise CompileTimeout(f"building the token automaton exceeded {memory_bytes >> 20} MiB of memory") from None
    finally:
        process.kill()
        process.join()
        receiver.close()
    if status == "memory":
        raise CompileTimeout(f"building the token automaton exceeded {memory_bytes >> 20} MiB of memory")
    if status == "error":
        raise payload
    return payload


_MEMORY_CACHE: dict[str, TokenDFA] = {}


def build_token_dfa(
    pattern: str,
    vocabulary: TokenVocabulary,
    *,
    also: tuple[str, ...] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    cached: bool = True,
) -> TokenDFA:
    """The compacted token automaton of ``pattern`` (intersected with each pattern of ``also``) over
    ``vocabulary``: from memory, disk, or a bounded build. ``cached=False`` builds it and keeps it nowhere
    (a one-off constraint, such as one grounded in a single text).

    Raises :class:`VocabularyError` when no token sequence of this vocabulary spells an accepted text.
    """
    patterns = (pattern, *also)
    key = hashlib.sha256("\0".join([str(FORMAT_VERSION), vocabulary.fingerprint, *patterns]).encode()).hexdigest()
    if cached and key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    path = cache_dir() / "token_dfa" / key[:2] / f"{key}.npz"
    dfa = None
    if cached and path.exists():
        try:
            dfa = TokenDFA.load(path)
        except (OSError, ValueError, KeyError):
            dfa = None  # a truncated or foreign file: rebuild it
    if dfa is None:
        # a one-off build (a constraint grounded in one text) happens on every call: not worth a note
        level = logging.INFO if cached else logging.DEBUG
        if cached:
            _LOG.info("building the token automaton of a constraint not seen before with this vocabulary "
                      "(cached afterwards in %s)", cache_dir())
        else:
            _LOG.debug("building a one-off token automaton")
        started = time.perf_counter()
        dfa = _build_bounded(patterns, vocabulary, timeout_s, memory_bytes)
        _LOG.log(level, "built it in %.1f s: %d states, %d token classes", time.perf_counter() - started,
                 dfa.n_states, dfa.n_classes)
        if cached:
            try:
                dfa.save(path)
            except OSError:
                pass  # a read-only home is no reason to fail; the next run rebuilds
    if (dfa.table[dfa.initial] == DEAD).all() and not dfa.accepting[dfa.initial]:
        raise VocabularyError("the vocabulary cannot spell any text the constraint accepts")
    if cached:
        _MEMORY_CACHE[key] = dfa
    return dfa
