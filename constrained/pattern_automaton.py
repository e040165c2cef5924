"""A pattern's token automaton, determinized through outlines-core and compacted by token classes.

outlines-core's ``Index`` determinizes the pattern at byte level and walks every token through it; this module
turns its transitions (read by :mod:`.outlines_index`) into the table of a :class:`~.token_dfa.TokenDFA`:
tokens that behave alike in every state share a column, the end tokens get a class of their own, and the
result is made minimal (:mod:`.dfa_minimization`). Several patterns make one automaton through their product
(:mod:`.dfa_intersection`). Two synthetic marker tokens work around how outlines-core reports matches and
starts its search (see the markers below).
"""

from __future__ import annotations

import numpy as np

from ._table_passes import fill_table
from .dfa_intersection import intersection
from .dfa_minimization import minimal, signatures, trimmed
from .errors import RegexError, VocabularyError
from .outlines_index import index_transitions
from .token_dfa import DEAD, TokenDFA
from .vocabulary import TokenVocabulary

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
#: states. Starting with a character found nowhere else kills every thread but the anchored one, and the
#: automaton stays the same.
_START_PATTERN = "\\x{10FFFE}"
_START_BYTES = "\U0010fffe".encode("utf-8")


def pattern_dfa(pattern: str, vocabulary: TokenVocabulary) -> TokenDFA:
    """The minimal token automaton of one pattern, determinized through outlines-core and compacted by token
    classes (in the caller's process: :mod:`.token_dfa_build` runs it in a bounded child).

    Parameters:
        pattern: a regular expression in outlines-core's syntax, matched against the whole text.
        vocabulary: the tokens (their bytes) and the end tokens.

    Returns:
        The minimal automaton, its states numbered breadth-first.

    Raises:
        RegexError: outlines-core cannot compile the pattern.
        VocabularyError: outlines-core finds that the vocabulary cannot spell any accepted text.
    """
    import outlines_core

    end_ids = set(vocabulary.end_token_ids)
    marker_id, start_id = vocabulary.size, vocabulary.size + 1
    spelled: dict[bytes, list[int]] = {_MARKER_BYTES: [marker_id]}
    text_tokens = 0
    for token_id, piece in enumerate(vocabulary.token_bytes):
        if piece is not None and token_id not in end_ids and _MARKER_BYTES[0] not in piece:
            spelled.setdefault(piece, []).append(token_id)
            text_tokens += 1
    opening = [(token_id, piece) for token_id, piece in vocabulary.start_bytes.items()
               if piece is not None and token_id not in end_ids and _MARKER_BYTES[0] not in piece]
    for variant_id, (_, piece) in enumerate(opening, start=start_id + 1):
        spelled.setdefault(_START_BYTES + piece, []).append(variant_id)  # how the token reads at the text start
    if text_tokens > len(vocabulary.start_bytes):  # some token opens a text as it spells elsewhere
        spelled.setdefault(_START_BYTES, []).insert(0, start_id)
    try:
        index = outlines_core.Index(
            f"{_START_PATTERN}(?:{pattern}){_MARKER_PATTERN}",
            outlines_core.Vocabulary(vocabulary.end_token_ids[0], spelled),
        )
    except (ValueError, RuntimeError, TypeError) as error:
        if "vocabulary provided is incompatible" in str(error):
            raise VocabularyError(f"the vocabulary cannot spell any text the constraint accepts: {error}") from None
        raise RegexError(f"cannot compile pattern {pattern[:200]!r}: {error}") from None
    sources, tokens, targets = index_transitions(index)
    finals = np.array(sorted(index.get_final_states()), dtype=np.int64)
    before_start = index.get_initial_state()
    after_start = targets[(sources == before_start) & (tokens == start_id)]
    if vocabulary.start_bytes:
        sources, tokens, targets = _opening_row(sources, tokens, targets, before_start, after_start, vocabulary,
                                                np.array([token_id for token_id, _ in opening], dtype=np.int32))
        initial = before_start
    else:
        initial = int(after_start[0])
    by_marker = tokens == marker_id
    accepting_ids = sources[by_marker][np.isin(targets[by_marker], finals)]
    kept = np.zeros(max(sources.max(), targets.max(), finals.max(initial=0), initial) + 1, dtype=bool)
    kept[sources] = True
    kept[initial] = True
    kept[finals] = False
    kept[before_start] = initial == before_start
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

    return minimal(trimmed(TokenDFA(table, token_class, accepting, int(renumber[initial]), end_class)))


def _opening_row(sources: np.ndarray, tokens: np.ndarray, targets: np.ndarray, before_start: int,
                 after_start: np.ndarray, vocabulary: TokenVocabulary, opening_ids: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transitions with the state before the start marker made the text's initial state, for a vocabulary
    whose decoder spells some tokens otherwise when they open the text (SentencePiece's dummy prefix).

    Why a row of its own: at the text start ``▁{`` spells ``{``, anywhere else `` {``. The Index read each such
    token a second time, as the start marker followed by its opening bytes (ids past the start marker's, in
    the order of ``opening_ids``); from ``before_start`` those are the token's transitions, and every token
    that opens a text as it spells elsewhere keeps its transition from ``after_start`` (the state the start
    marker alone leads to; empty when every token has an opening spelling, and then not in the Index, which
    refuses a state with no way out).
    """
    first_variant = vocabulary.size + 2
    reopened = np.zeros(first_variant, dtype=bool)
    reopened[list(vocabulary.start_bytes)] = True
    from_before = sources == before_start
    variants = from_before & (tokens >= first_variant)
    plain = np.isin(sources, after_start) & (tokens < first_variant)
    plain[plain] = ~reopened[tokens[plain]]
    return (np.concatenate([sources[~from_before], sources[variants], np.full(plain.sum(), before_start, np.int32)]),
            np.concatenate([tokens[~from_before], opening_ids[tokens[variants] - first_variant], tokens[plain]]),
            np.concatenate([targets[~from_before], targets[variants], targets[plain]]))


def _token_classes(columns: tuple[np.ndarray, ...], n_states: int) -> np.ndarray:
    """Token classes: tokens with the same transition in every state share a class (by their columns'
    signatures)."""
    _, classes = np.unique(signatures(columns, n_states, 0x5EED), axis=0, return_inverse=True)
    return classes.reshape(-1).astype(np.int32)


def patterns_dfa(patterns: tuple[str, ...], vocabulary: TokenVocabulary) -> TokenDFA:
    """The minimal token automaton of the texts that every pattern matches (each determinized, then their
    product taken; raises as :func:`pattern_dfa` does)."""
    dfa = pattern_dfa(patterns[0], vocabulary)
    for pattern in patterns[1:]:
        dfa = intersection(dfa, pattern_dfa(pattern, vocabulary))
    return dfa
