"""The token automaton walked from a pattern's byte automaton accepts exactly the token sequences that
outlines-core's own ``Index`` over the vocabulary's tokens accepts.

The reference here is built the direct way: outlines-core walks every token of the vocabulary from every state
(with the same start and end markers the byte automaton needs, and SentencePiece's opening spellings read as the
start marker followed by the opening bytes). The two are compared state pair by state pair from their initial
states: the same tokens allowed (the mask a canvas position gets), the same verdict on ending there, and so on
for every pair reached. Cases: random small patterns over random small vocabularies (UTF-8 pieces cut mid
character, tokens that spell nothing, opening spellings), patterns with multi-byte characters, MaskBench schemas
and two Spider databases' SQL, on a byte-level BPE tokenizer, a SentencePiece one with byte fallback and a dummy
prefix, and the byte vocabulary. The default run samples; the slow run sweeps more schemas and the built-in
model's vocabulary.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from constrained._token_walk import class_trie
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import constrained
from constrained.byte_automaton import _MARKER_BYTES, _MARKER_PATTERN, _START_BYTES, _START_PATTERN
from constrained.dfa_minimization import minimal_table
from constrained.errors import VocabularyError
from constrained.outlines_index import index_transitions
from constrained.pattern_automaton import patterns_dfa
from constrained.token_dfa import DEAD, TokenDFA
from constrained.vocabulary import TokenVocabulary, as_vocabulary, byte_vocabulary

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TOKENIZERS = DATA / "tokenizers"
MASKBENCH = DATA / "maskbench"
SPIDER = DATA / "spider" / "database"

#: The opening row of the reference, which stands apart from outlines-core's state numbers.
_OPENING = -2


@dataclass
class Reference:
    """outlines-core's token Index read as a token automaton: per state its allowed tokens (those that lead to a
    state from which the text can still end) and their next states, and whether the text may end there."""

    initial: int
    rows: dict[int, tuple[np.ndarray, np.ndarray]]
    accepting: set[int]


class Refused(Exception):
    """outlines-core refuses the vocabulary: some state it reaches has no token out (a piece cut mid character
    with no piece to finish it), although other texts may be spelled. The walk has no such rule, so there is
    no reference to compare with."""


def reference(pattern: str, vocabulary: TokenVocabulary) -> Reference | None:
    """The reference automaton, or ``None`` when no token sequence spells a match.

    Raises:
        Refused: outlines-core refuses the vocabulary.
    """
    import outlines_core

    end_ids = set(vocabulary.end_token_ids)
    marker_id, start_id = vocabulary.size, vocabulary.size + 1
    spelled: dict[bytes, list[int]] = {_MARKER_BYTES: [marker_id], _START_BYTES: [start_id]}
    for token_id, piece in enumerate(vocabulary.token_bytes):
        if piece is not None and token_id not in end_ids and _MARKER_BYTES[0] not in piece:
            spelled.setdefault(piece, []).append(token_id)
    opened_as: dict[int, int] = {}  # the id of an opening spelling's synthetic token -> the token
    for token_id, piece in vocabulary.start_bytes.items():
        if piece is not None and token_id not in end_ids and _MARKER_BYTES[0] not in piece:
            variant = vocabulary.size + 2 + len(opened_as)
            opened_as[variant] = token_id
            spelled.setdefault(_START_BYTES + piece, []).append(variant)
    try:
        index = outlines_core.Index(f"{_START_PATTERN}(?:{pattern}){_MARKER_PATTERN}",
                                    outlines_core.Vocabulary(vocabulary.end_token_ids[0], spelled))
    except ValueError as error:
        assert "incompatible" in str(error)
        raise Refused(str(error)) from None
    sources, tokens, targets = index_transitions(index)
    finals = set(index.get_final_states())
    before_start = index.get_initial_state()
    after_start = int(targets[(sources == before_start) & (tokens == start_id)][0])
    by_marker = tokens == marker_id
    accepting = set(sources[by_marker][np.isin(targets[by_marker], list(finals))].tolist())
    opening = (sources == before_start) & (tokens >= vocabulary.size + 2)
    variants = [(opened_as[int(t)], int(n)) for t, n in zip(tokens[opening], targets[opening])]
    real = tokens < vocabulary.size
    sources, tokens, targets = sources[real], tokens[real], targets[real]
    initial = after_start
    if vocabulary.start_bytes:  # the text's first token read as the tokenizer decodes it there
        plain = (sources == after_start) & ~np.isin(tokens, list(vocabulary.start_bytes))
        sources = np.concatenate([sources, np.full(len(variants) + plain.sum(), _OPENING)])
        tokens = np.concatenate([tokens, [t for t, _ in variants], tokens[plain]]).astype(np.int64)
        targets = np.concatenate([targets, [n for _, n in variants], targets[plain]]).astype(np.int64)
        initial = _OPENING
        if after_start in accepting:
            accepting.add(_OPENING)
    return _trimmed_reference(initial, sources, tokens, targets, accepting)


def _trimmed_reference(initial: int, sources: np.ndarray, tokens: np.ndarray, targets: np.ndarray,
                       accepting: set[int]) -> Reference | None:
    """A reference from its transitions, those into states from which no accepting one is reachable left out;
    ``None`` when the initial state is such a state."""
    live = np.array(sorted(accepting), dtype=np.int64)
    while True:  # the states from which an accepting one is reachable
        grown = np.union1d(live, sources[np.isin(targets, live)])
        if len(grown) == len(live):
            break
        live = grown
    if initial not in live:
        return None
    keep = np.isin(targets, live)
    sources, tokens, targets = sources[keep], tokens[keep], targets[keep]
    order = np.argsort(sources, kind="stable")
    sources, tokens, targets = sources[order], tokens[order], targets[order]
    bounds = np.flatnonzero(np.diff(sources)) + 1
    rows = {int(row_sources[0]): (row_tokens, row_targets) for row_sources, row_tokens, row_targets
            in zip(*(np.split(a, bounds) for a in (sources, tokens, targets))) if len(row_sources)}
    return Reference(initial, rows, accepting)


def reference_product(first: Reference, second: Reference) -> Reference | None:
    """The reference of the texts both references accept: their product over reachable pairs of states, then
    the pairs from which both can end together kept (``None`` when the start pair is not one of them)."""
    number = {(first.initial, second.initial): 0}
    frontier = [(first.initial, second.initial)]
    sources, tokens, targets, accepting = [], [], [], set()
    while frontier:
        pair = frontier.pop()
        if pair[0] in first.accepting and pair[1] in second.accepting:
            accepting.add(number[pair])
        (tokens_a, targets_a), (tokens_b, targets_b) = (reference.rows.get(state, (np.zeros(0, np.int64),) * 2)
                                                        for reference, state in zip((first, second), pair))
        common, at_a, at_b = np.intersect1d(tokens_a, tokens_b, assume_unique=True, return_indices=True)
        for token, next_pair in zip(common.tolist(), zip(targets_a[at_a].tolist(), targets_b[at_b].tolist())):
            if next_pair not in number:
                number[next_pair] = len(number)
                frontier.append(next_pair)
            sources.append(number[pair])
            tokens.append(token)
            targets.append(number[next_pair])
    return _trimmed_reference(0, np.array(sources, np.int64), np.array(tokens, np.int64),
                              np.array(targets, np.int64), accepting)


def assert_same_language(dfa: TokenDFA, expected: Reference, vocabulary: TokenVocabulary) -> None:
    """Every pair of states reached together from the initial ones allows the same tokens and agrees on
    whether the text may end (the end tokens allowed)."""
    end_ids = list(vocabulary.end_token_ids)
    pairs = {(dfa.initial, expected.initial)}
    frontier = list(pairs)
    while frontier:
        state, reference_state = frontier.pop()
        tokens, targets = expected.rows.get(reference_state, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        allowed = np.zeros(vocabulary.size, dtype=bool)
        allowed[tokens] = True
        following = dfa.table[state][dfa.token_class]
        walked = following != DEAD
        walked[end_ids] = False
        assert np.array_equal(walked, allowed), (
            f"tokens allowed by one only: {np.flatnonzero(walked != allowed)[:10].tolist()}")
        assert (dfa.table[state, dfa.end_class] != DEAD) == (reference_state in expected.accepting)
        for pair in set(zip(following[tokens].tolist(), targets.tolist())):
            if pair not in pairs:
                pairs.add(pair)
                frontier.append(pair)


def assert_walk_matches_reference(pattern: str, vocabulary: TokenVocabulary) -> None:
    expected = reference(pattern, vocabulary)
    if expected is None:
        with pytest.raises(VocabularyError):
            patterns_dfa((pattern,), vocabulary)
    else:
        assert_same_language(patterns_dfa((pattern,), vocabulary), expected, vocabulary)


@cache
def real_vocabulary(name: str) -> TokenVocabulary:
    if name == "bytes":
        return byte_vocabulary()
    if not (TOKENIZERS / name).is_dir():
        pytest.skip(f"tokenizer {name} not present")
    from transformers import AutoTokenizer

    return as_vocabulary(AutoTokenizer.from_pretrained(str(TOKENIZERS / name)))


def maskbench_patterns(splits: tuple[str, ...], per_split: int, longest: int) -> list[tuple[str, str]]:
    """The first ``per_split`` schemas of each split whose pattern is at most ``longest`` characters."""
    if not MASKBENCH.is_dir():
        return []
    chosen = []
    for split in splits:
        count = 0
        with gzip.open(MASKBENCH / f"{split}.jsonl.gz", "rt") as lines:
            for line in lines:
                row = json.loads(line)
                try:
                    patterns = constrained.json_schema(row["schema"]).patterns
                except constrained.ConstrainedError:
                    continue
                if len(patterns) == 1 and len(patterns[0]) <= longest:
                    chosen.append((row["id"], patterns[0]))
                    count += 1
                    if count == per_split:
                        break
    return chosen


# -------------------------------------------------------------------------------- small vocabularies

VOCAB = {"a": 0, "b": 1, "ab": 2, "é": 3, "</s>": 4, "✓": 5, "ba": 6, "a✓": 7, '"': 8, "{": 9, "}": 10}

#: Pieces random vocabularies draw from: ASCII, two- and three-byte characters, and UTF-8 cut mid character.
_PIECES = [b"a", b"b", b"ab", b"ba", b"aab", b'"', b"{", b" ", b" a", "é".encode(), "✓".encode(), "a✓".encode(),
           "é".encode()[:1], "é".encode()[1:], "✓".encode()[:2], "✓".encode()[2:], b"b\xc3", b"\xa9a", b""]

_ATOMS = st.sampled_from(["a", "b", "é", "✓", "[ab]", "[^a]", ".", "[a-é]", '"', " ", "\\{"])


def _regexes() -> st.SearchStrategy[str]:
    return st.recursive(_ATOMS, lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]}|{pair[1]})"),
        inner.map(lambda r: f"({r})*"), inner.map(lambda r: f"({r})?"), inner.map(lambda r: f"({r}){{1,2}}")),
        max_leaves=6)


@st.composite
def _vocabularies(draw) -> TokenVocabulary:
    """A vocabulary of random pieces (some repeated, some spelling nothing), an end token, and maybe opening
    spellings for some tokens (SentencePiece's dummy prefix: spelled otherwise, or not at all, at the start)."""
    pieces = draw(st.lists(st.one_of(st.sampled_from(_PIECES), st.none()), min_size=1, max_size=12))
    token_bytes = (*pieces, None)
    start_bytes = {}
    if draw(st.booleans()):
        for token_id in draw(st.sets(st.integers(0, len(pieces) - 1), max_size=4)):
            start_bytes[token_id] = draw(st.one_of(st.sampled_from(_PIECES), st.none()))
    return TokenVocabulary(token_bytes, (len(pieces),), start_bytes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_regexes(), vocabulary=_vocabularies())
def test_random_patterns_over_random_vocabularies(pattern, vocabulary):
    """Any small pattern over any small vocabulary: the walk allows what outlines-core's token Index allows
    (where outlines-core takes the vocabulary at all)."""
    try:
        assert_walk_matches_reference(pattern, vocabulary)
    except Refused:
        assume(False)


@pytest.mark.parametrize("pattern", ["(a|é)+✓", "[^a]{1,3}b", '\\{"(é|✓|a)*"\\}', "(a✓|ba)*é?", ".(ab)+"])
def test_multibyte_patterns_over_a_small_vocabulary(pattern):
    assert_walk_matches_reference(pattern, as_vocabulary(VOCAB))


def test_opening_spellings_are_read_at_the_text_start_only():
    """A token spelled ``x`` at the start and `` x`` elsewhere: ``x x`` is two such tokens, ``x`` alone one."""
    vocabulary = TokenVocabulary((b" x", b"x", None), (2,), {0: b"x"})
    for pattern in ["x x", "x", " x", "xx", "x( x)*"]:
        assert_walk_matches_reference(pattern, vocabulary)
    dfa = patterns_dfa(("x x",), vocabulary)
    assert dfa.walk([0, 0]) != DEAD and dfa.accepting[dfa.walk([0, 0])]
    assert dfa.walk([1, 0]) != DEAD and dfa.accepting[dfa.walk([1, 0])]


@st.composite
def _byte_complete_vocabularies(draw) -> TokenVocabulary:
    """Every single byte a token, random longer pieces, an end token, and maybe opening spellings: where the walk
    starts its minimization from the rows it knows distinct."""
    pieces = [bytes([byte]) for byte in range(256)] + draw(st.lists(st.sampled_from(_PIECES), max_size=6))
    start_bytes = {}
    if draw(st.booleans()):
        for token_id in draw(st.sets(st.sampled_from([*b'ab" ', 0xC3, 256, 257, 258]), max_size=4)):
            if token_id < len(pieces):
                start_bytes[token_id] = draw(st.one_of(st.sampled_from(_PIECES), st.none()))
    return TokenVocabulary((*pieces, None), (len(pieces),), start_bytes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_regexes(), vocabulary=_byte_complete_vocabularies())
def test_the_walked_automaton_is_minimal(pattern, vocabulary):
    """Minimizing the walked automaton again merges nothing, and it reads what outlines-core's token Index reads."""
    try:
        dfa = patterns_dfa((pattern,), vocabulary)
    except VocabularyError:
        assume(False)
    again, _, _ = minimal_table(dfa.table.copy(), dfa.accepting, dfa.initial)
    assert again.shape == dfa.table.shape
    try:
        assert_same_language(dfa, reference(pattern, vocabulary), vocabulary)
    except Refused:
        pass


def test_a_token_holding_the_markers_lead_byte_spells_no_accepted_text():
    """Plane-16 characters (lead byte 0xF4) are where the markers live: a token with that byte is never allowed,
    as in the reference, and a pattern only such tokens could spell has no token sequence at all."""
    plane_16 = "\U00100000"
    vocabulary = TokenVocabulary((b"a", plane_16.encode(), None), (2,))
    assert_walk_matches_reference(f"a*{plane_16}?", vocabulary)
    with pytest.raises(VocabularyError):
        patterns_dfa((plane_16,), vocabulary)


@settings(max_examples=200, deadline=None)
@given(spellings=st.lists(st.one_of(st.none(), st.binary(max_size=5).map(lambda b: bytes(x % 4 for x in b))),
                          max_size=12),
       classes=st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_the_class_trie_holds_each_distinct_class_sequence_once_in_their_order(spellings, classes):
    """The trie merged from the vocabulary's byte trie is the one of the spellings mapped through the classes:
    its nodes are the root and the prefixes of the distinct class sequences in their order (a preorder), each
    spelling's group the rank of its sequence among them."""
    class_of_byte = np.zeros(256, dtype=np.uint8)
    class_of_byte[:4] = classes
    vocabulary = TokenVocabulary((*spellings, None), (len(spellings),))
    packed = vocabulary.packed_spellings
    group, symbol, parent, skip, node_group, group_node = (
        list(np.frombuffer(array, dtype=np.uint8 if i == 1 else np.int32)) for i, array in
        enumerate(class_trie(packed.trie_symbol, packed.trie_skip, packed.trie_group, packed.spelling_group,
                             class_of_byte)))
    mapped = [None if piece is None else bytes(class_of_byte[list(piece)]) for piece in (*spellings, None)]
    sequences = sorted({piece for piece in mapped if piece is not None})
    prefixes = sorted({b""} | {piece[:length] for piece in sequences for length in range(len(piece) + 1)})
    assert group == [-1 if piece is None else sequences.index(piece) for piece in mapped]
    assert symbol == [prefix[-1] if prefix else 0 for prefix in prefixes]
    assert parent == [prefixes.index(prefix[:-1]) if prefix else -1 for prefix in prefixes]
    assert skip == [next((j for j in range(i + 1, len(prefixes)) if not prefixes[j].startswith(prefix)),
                         len(prefixes)) for i, prefix in enumerate(prefixes)]
    assert node_group == [sequences.index(prefix) if prefix in sequences else -1 for prefix in prefixes]
    assert group_node == [prefixes.index(sequence) for sequence in sequences]


# -------------------------------------------------------------------------------- real data

_REAL = ("deepseek-coder", "llama-spm", "bytes")


@pytest.mark.parametrize("name", _REAL)
@pytest.mark.parametrize("pattern", ["[a-zé✓]{1,4}", '"(ü|ö|[a-c])*"', "(日本|語)+[0-9]?"])
def test_multibyte_patterns_over_real_vocabularies(name, pattern):
    assert_walk_matches_reference(pattern, real_vocabulary(name))


@pytest.mark.parametrize("name", _REAL)
@pytest.mark.parametrize("schema_id, pattern", maskbench_patterns(("Github_easy", "Glaiveai2K", "BFCL"), 1, 1000))
def test_maskbench_schemas(name, schema_id, pattern):
    assert_walk_matches_reference(pattern, real_vocabulary(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", ("deepseek-llm", *_REAL))
@pytest.mark.parametrize("schema_id, pattern", maskbench_patterns(
    ("Github_easy", "Github_medium", "Glaiveai2K", "Snowplow", "JME", "BFCL"), 2, 20_000))
def test_maskbench_schemas_sweep(name, schema_id, pattern):
    assert_walk_matches_reference(pattern, real_vocabulary(name))


def _sql_patterns(database: str) -> tuple[str, ...]:
    path = SPIDER / database / f"{database}.sqlite"
    if not path.exists():
        pytest.skip("Spider databases not present")
    from constrained.text_to_sql import sql

    return sql(path).patterns


def assert_sql_matches_reference(database: str, vocabulary: TokenVocabulary) -> None:
    """Each of a database's SQL patterns alone, and the constraint whole (the product of its patterns, which the
    library takes at byte level and the reference at token level)."""
    patterns = _sql_patterns(database)
    for pattern in patterns:
        assert_walk_matches_reference(pattern, vocabulary)
    expected = reference(patterns[0], vocabulary)
    for pattern in patterns[1:]:
        expected = reference_product(expected, reference(pattern, vocabulary))
    assert_same_language(patterns_dfa(patterns, vocabulary), expected, vocabulary)


@pytest.mark.parametrize("database", ["concert_singer", "pets_1"])
def test_spider_sql_over_bytes(database):
    assert_sql_matches_reference(database, byte_vocabulary())


@pytest.mark.slow
@pytest.mark.parametrize("database", ["concert_singer", "pets_1"])
def test_spider_sql_over_the_builtin_vocabulary(database):
    from constrained.default_model import load_default

    assert_sql_matches_reference(database, as_vocabulary(load_default()[1]))


def test_an_intersection_matches_the_product_of_references():
    """Two patterns over a small vocabulary: the byte-level product, walked, is the token-level product."""
    vocabulary = as_vocabulary(VOCAB)
    patterns = ("(a|b|é)*✓?", "[^é]*(ab|ba)+.?")
    expected = reference_product(reference(patterns[0], vocabulary), reference(patterns[1], vocabulary))
    assert_same_language(patterns_dfa(patterns, vocabulary), expected, vocabulary)


def test_the_reference_can_fail():
    """The comparison tells automata apart: a pattern's automaton is not the reference of a wider pattern."""
    vocabulary = as_vocabulary(VOCAB)
    with pytest.raises(AssertionError):
        assert_same_language(patterns_dfa(("(a|b)+",), vocabulary), reference("(a|b|é)+", vocabulary), vocabulary)
