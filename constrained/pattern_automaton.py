"""A pattern's token automaton: the vocabulary walked through the pattern's byte automaton, compacted by token
classes.

Why not walk every token from every state of the determinized pattern (what outlines-core's token ``Index``
does): the byte automaton is made minimal first (:mod:`.byte_automaton`), which on a large schema leaves a tenth
of the states to start from; bytes that lead alike from every state form one class, so tokens spelling the same
sequence of byte classes lead alike from every state and are walked once (on a JSON schema, whose property
names keep most letters apart, 102K tokens still make about 65K sequences; far fewer where a pattern tells few
bytes apart); and the sequences are laid out as a trie, merged from the vocabulary's byte trie (made once per
vocabulary), so that a prefix that dies prunes every sequence below it, and walked by every state at once, states
that meet at a node going on as one (:mod:`._token_walk`, in C). Every byte state gets a row, whether or not a
token boundary reaches it (with a vocabulary that spells every byte, all do); the minimization drops the rows no
token reaches. Tokens whose columns agree in every state then share a class, and the transitions are listed by
walking, from each row, only the trie's paths to one group per class; the end tokens get a class of their own,
and the result is made minimal (:mod:`.dfa_minimization`). Several patterns make one byte automaton through
their product (:mod:`.dfa_intersection`), walked once.

A vocabulary whose decoder spells some tokens otherwise when they open the text (SentencePiece's dummy prefix:
``▁{`` spells ``{`` there and `` {`` elsewhere) gets an initial state of its own, whose row reads each token as
it opens a text, and which no token leads back to.
"""

from __future__ import annotations

import numpy as np

from ._token_walk import class_trie, row_transitions, walk_states
from .byte_automaton import ByteAutomaton, byte_automaton
from .dfa_intersection import intersection
from .dfa_minimization import minimal_transitions, trimmed_transitions, unique_rows
from .errors import VocabularyError
from .token_dfa import DEAD, TokenDFA
from .vocabulary import TokenVocabulary

#: The uses of a group of spellings (a bit set): read in the middle of a text, read as the text's first token.
_IN_MIDDLE, _AT_OPENING = 1, 2


def patterns_dfa(patterns: tuple[str, ...], vocabulary: TokenVocabulary) -> TokenDFA:
    """The minimal token automaton of the texts that every pattern matches (in the caller's process:
    :mod:`.token_dfa_build` runs it in the build helper, which hands it back).

    Parameters:
        patterns: regular expressions in outlines-core's syntax, each matched against the whole text.
        vocabulary: the tokens (their bytes) and the end tokens.

    Returns:
        The minimal automaton, its states numbered breadth-first.

    Raises:
        RegexError: outlines-core cannot compile a pattern.
        VocabularyError: the vocabulary cannot spell any text every pattern matches.
    """
    automaton = byte_automaton(patterns[0])
    for pattern in patterns[1:]:
        automaton = intersection(automaton, byte_automaton(pattern))
    return walked_dfa(automaton, vocabulary)


def _spells_every_class_read(automaton: ByteAutomaton, node_symbol: np.ndarray, node_parent: np.ndarray,
                             group_node: np.ndarray, use: np.ndarray) -> bool:
    """Whether every byte class some transition of ``automaton`` reads is spelled, alone, by a token read in the
    middle of a text (a group whose trie node hangs from the root)."""
    nodes = group_node[(use & _IN_MIDDLE) > 0]
    spelled = np.zeros(automaton.n_classes, dtype=bool)
    spelled[node_symbol[nodes[(nodes > 0) & (node_parent[np.maximum(nodes, 0)] == 0)]]] = True
    return bool(spelled[np.nonzero(automaton.table != DEAD)[1]].all())


def _opening_block(rows: np.ndarray, columns: np.ndarray, targets: np.ndarray, accepting: np.ndarray,
                   block: np.ndarray, n_columns: int) -> int:
    """The block of the opening row (row 0), every other row's block being final: that of a row that accepts
    alike and whose transitions lead, column by column, into the same blocks; else its own. (No token leads back
    to the opening row, so nothing else decides whether it is equivalent to another.)"""
    from_opening = rows == 0
    opening = np.full(n_columns, DEAD, dtype=np.int64)
    opening[columns[from_opening]] = block[targets[from_opening]]
    count = np.bincount(rows, minlength=len(accepting))
    unlike = np.bincount(rows, weights=opening[columns] != block[targets], minlength=len(accepting))
    alike = (count == count[0]) & (unlike == 0) & (accepting == accepting[0])
    alike[0] = False
    found = np.flatnonzero(alike)
    return int(block[found[0]]) if len(found) else int(block[0])


def walked_dfa(automaton: ByteAutomaton, vocabulary: TokenVocabulary) -> TokenDFA:
    """The minimal token automaton of the texts ``automaton`` (minimal, as :func:`.byte_automaton.byte_automaton`
    and :func:`.dfa_intersection.intersection` make them) accepts, spelled with ``vocabulary``'s tokens, as its
    live transitions.

    Why equivalent rows are found fast where the vocabulary has a one-byte token for every byte class the automaton
    reads (byte fallback, byte-level BPE): two middle rows hold distinct byte states; the byte automaton being
    minimal, some text ends from one and not from the other, and every byte of it, read on a live path, is a
    one-byte token, so the same tokens tell the rows apart. A row that can only be followed by end tokens is
    equivalent to DONE, and an opening row (no token leads to it) to a row whose transitions it repeats. For
    the same reason every row is live (the byte automaton is trimmed), so there is nothing to trim. Moore's rounds
    then start from that partition and confirm it in one round (the hundreds they take from accepting / not
    accepting are most of a SQL automaton's minimization).

    Raises:
        VocabularyError: the vocabulary cannot spell any text the automaton accepts.
    """
    packed = vocabulary.packed_spellings
    group, *trie, group_node = (np.frombuffer(array, dtype=np.uint8 if i == 1 else np.int32) for i, array in
                                enumerate(class_trie(packed.trie_symbol, packed.trie_skip, packed.trie_group,
                                                     packed.spelling_group, automaton.class_of_byte)))
    middle = group[:vocabulary.size]
    opens_otherwise = len(packed.opening_ids) > 0
    opening = middle.copy()
    opening[packed.opening_ids] = group[vocabulary.size:]
    use = np.zeros(len(group_node), dtype=np.uint8)
    use[middle[middle >= 0]] |= _IN_MIDDLE
    if opens_otherwise:
        use[opening[opening >= 0]] |= _AT_OPENING
    walked = walk_states(automaton.table, automaton.n_classes, *trie, use, automaton.start, opens_otherwise, 0x5EED)
    states, number = (np.frombuffer(array, dtype=np.int32) for array in walked[:2])
    # group -1 (no spelling) indexes the last entry: no transition anywhere
    group_signature = np.vstack([np.frombuffer(walked[2], dtype=np.uint64).reshape(-1, 2), np.zeros((1, 2), np.uint64)])
    opening_next = np.append(np.frombuffer(walked[3], dtype=np.int32), np.int32(DEAD))

    # tokens behave alike when their columns agree: the hashes of their groups' columns over the middle rows,
    # and with an opening row, their opening spelling's next row from it (a row of its own weight in the hashes)
    if opens_otherwise:  # a kind of token: a pair of groups
        kind_token, token_kind = unique_rows(np.column_stack([middle, opening]))
        kind_middle, kind_opening = middle[kind_token], opening[kind_token]
    else:  # a kind of token: its group, or none
        kind_middle = kind_opening = np.arange(-1, len(group_node), dtype=np.int32)
        token_kind = middle + 1
    column = group_signature[kind_middle]
    if opens_otherwise:
        opening_weight = np.random.default_rng(0x0BE7).integers(1, 2**63, size=2, dtype=np.uint64) | np.uint64(1)
        column += (opening_next[kind_opening] + 1).astype(np.uint64)[:, None] * opening_weight
    representative, class_of_kind = unique_rows(column)
    token_class = class_of_kind[token_kind].astype(np.int32)
    end_class = len(representative)
    token_class[list(vocabulary.end_token_ids)] = end_class

    n_states = len(states) + 1  # + DONE
    done = n_states - 1
    rows, columns, targets = (np.frombuffer(array, dtype=np.int32) for array in row_transitions(
        automaton.table, automaton.n_classes, *trie, group_node, states, number,
        kind_middle[representative].astype(np.int32)))
    if opens_otherwise:  # the opening row (0, which the walk left out) reads each token as it opens a text
        opened = opening_next[kind_opening[representative]]
        first_columns = np.flatnonzero(opened != DEAD).astype(np.int32)
        rows = np.concatenate([np.zeros(len(first_columns), dtype=np.int32), rows])
        columns = np.concatenate([first_columns, columns])
        targets = np.concatenate([opened[first_columns], targets])
    accepting = np.zeros(n_states, dtype=bool)
    accepting[:-1] = automaton.accepting[np.where(states >= 0, states, automaton.start)]
    accepting[done] = True
    # the end class, the last column, leads from every accepting row (DONE's own included) to DONE
    ending = np.flatnonzero(accepting).astype(np.int32)
    at = np.searchsorted(rows, ending, side="right")
    rows, columns, targets = (np.insert(rows, at, ending), np.insert(columns, at, np.int32(end_class)),
                              np.insert(targets, at, np.int32(done)))
    distinct = None
    if _spells_every_class_read(automaton, trie[0], trie[1], group_node, use):
        # then each middle row is a byte state of its own, every one live, and a minimal byte automaton has no two
        # equivalent: rows are equivalent only where, like DONE, they can be followed by end tokens alone, and the
        # opening row to one whose row it repeats
        distinct = np.arange(n_states)
        distinct[accepting & (np.bincount(rows[columns != end_class], minlength=n_states) == 0)] = done
        if opens_otherwise and distinct[0] == 0:
            distinct[0] = _opening_block(rows, columns, targets, accepting, distinct, end_class + 1)
    else:
        rows, columns, targets = trimmed_transitions(rows, columns, targets, accepting)
    if not (len(rows) and rows[0] == 0) and not accepting[0]:
        raise VocabularyError("the vocabulary cannot spell any text the constraint accepts")
    rows, columns, targets, accepting, class_of_column = minimal_transitions(rows, columns, targets, end_class + 1,
                                                                             accepting, 0, distinct)
    return TokenDFA(rows, columns, targets, class_of_column[token_class].astype(np.int32), accepting, 0,
                        int(class_of_column[end_class]), len(accepting), int(class_of_column.max()) + 1)
