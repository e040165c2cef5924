"""The token automaton: exactly the pattern's language over token sequences, in its minimal form."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from constrained._outlines_binary import read_index
from hypothesis import given, settings
from hypothesis import strategies as st

import constrained
from constrained import outlines_index, pattern_automaton, token_dfa_build
from constrained.errors import VocabularyError
from constrained.token_dfa import DEAD
from constrained.token_dfa_cache import MemoryCache
from constrained.vocabulary import as_vocabulary

VOCAB = {"a": 0, "b": 1, "ab": 2, "c": 3, "</s>": 4, "x": 5, "y": 6, "ba": 7}
END = VOCAB["</s>"]
PIECES = {token_id: piece for piece, token_id in VOCAB.items() if token_id != END}


@pytest.mark.parametrize("pattern", ["(xa|ya)b", "a(b|a)*c", "(ab|c)+", "(x|y)(ab|ba)*c?", "[ab]{2,3}(xc|yc)"])
def test_accepted_token_sequences_spell_accepted_texts(pattern):
    """Every token sequence up to length 4 ends accepted iff its text matches the pattern."""
    dfa = constrained.regex(pattern).bind(VOCAB).dfa
    for length in range(5):
        for tokens in itertools.product(PIECES, repeat=length):
            state = dfa.walk(list(tokens))
            text = "".join(PIECES[t] for t in tokens)
            accepted = state != DEAD and bool(dfa.accepting[state])
            assert accepted == bool(re.fullmatch(pattern, text)), (pattern, text)


@pytest.mark.parametrize("pattern", ["(xa|ya)b", "a(b|a)*c", "(x|y)(ab|ba)*c?", '\\{"(a|b)*": (x|y)\\}'])
def test_states_are_numbered_breadth_first(pattern):
    """The initial state is 0 and a state's distance from it never decreases with its number: neighbours
    get nearby numbers, so their bitsets span few words (what the lattice's set unions pay for)."""
    dfa = constrained.regex(pattern).bind({**VOCAB, "{": 8, "}": 9, '"': 10, ":": 11, " ": 12}).dfa
    distance, frontier = {dfa.initial: 0}, [dfa.initial]
    while frontier:
        level = distance[frontier[0]] + 1
        reached = (int(t) for q in frontier for t in dfa.table[q] if t != DEAD and t not in distance)
        frontier = list(dict.fromkeys(reached))
        distance.update((t, level) for t in frontier)
    assert dfa.initial == 0
    assert sorted(distance) == list(range(dfa.n_states))
    assert [distance[q] for q in range(dfa.n_states)] == sorted(distance.values())


def test_equivalent_states_are_merged():
    """After ``x`` and after ``y`` the futures are the same, so one state serves both: the start, after
    ``x``/``y``, after ``a``, and the end (the accepted text, merged with the padding state after it)."""
    dfa = constrained.regex("(xa|ya)b").bind(VOCAB).dfa
    assert dfa.n_states == 4
    assert dfa.walk([VOCAB["x"]]) == dfa.walk([VOCAB["y"]])


def test_tokens_of_equal_behaviour_share_a_class():
    """``x`` and ``y`` act alike in every state of the minimal automaton, so they are one column."""
    dfa = constrained.regex("(xa|ya)b").bind(VOCAB).dfa
    assert dfa.token_class[VOCAB["x"]] == dfa.token_class[VOCAB["y"]]
    assert dfa.token_class[VOCAB["a"]] != dfa.token_class[VOCAB["x"]]


@pytest.mark.parametrize("pattern, also", [("(a|b)*c?", "[^c]*(ab)+c?"), ("(x|y)(ab|ba)*", "x.*|.*a"),
                                           ("[abc]*", "a*"), ("a|b", "b|c")])
def test_an_intersection_accepts_what_both_patterns_match(pattern, also):
    """A constraint with ``also_matches`` accepts exactly the token sequences whose text matches both."""
    dfa = constrained.Constraint(pattern, also_matches=(also,)).bind(VOCAB).dfa
    for length in range(5):
        for tokens in itertools.product(PIECES, repeat=length):
            state = dfa.walk(list(tokens))
            text = "".join(PIECES[t] for t in tokens)
            accepted = state != DEAD and bool(dfa.accepting[state])
            assert accepted == bool(re.fullmatch(pattern, text) and re.fullmatch(also, text)), (text, state)


def test_an_empty_intersection_is_an_error():
    with pytest.raises(VocabularyError):
        constrained.Constraint("ab", also_matches=("c",)).bind(VOCAB)


def test_an_intersection_is_minimal():
    """``(xa|ya)b`` intersected with a pattern it already implies is the same 4-state automaton."""
    alone = constrained.regex("(xa|ya)b").bind(VOCAB).dfa
    both = constrained.Constraint("(xa|ya)b", also_matches=("[xy].*",)).bind(VOCAB).dfa
    assert both.n_states == alone.n_states == 4


def _index(pattern: str):
    """An outlines-core Index over VOCAB's pieces, as the compiler builds it (without its markers)."""
    import outlines_core

    pieces = {piece.encode(): [token_id] for piece, token_id in VOCAB.items() if token_id != END}
    return outlines_core.Index(pattern, outlines_core.Vocabulary(END, pieces))


@pytest.mark.parametrize("pattern", ["a(b|a)*c", "(x|y)(ab|ba)*c?", "[ab]{2,3}(xc|yc)"])
def test_the_index_read_from_its_bytes_holds_every_transition(pattern):
    """The transitions read from the Index's binary form are exactly those ``get_transitions`` lists."""
    index = _index(pattern)
    listed = {(q, t, n) for q, row in index.get_transitions().items() for t, n in row.items()}
    sources, tokens, targets = outlines_index.index_transitions(index)
    assert set(zip(sources.tolist(), tokens.tolist(), targets.tolist())) == listed
    assert len(sources) == len(listed)


def _disagreeing(data: bytes):
    """What the reader gives, with every next state off by one: readable, but not the Index's."""
    initial, finals, sources, tokens, targets, end_token, vocab_size = read_index(data)
    shifted = (np.frombuffer(targets, dtype=np.int32) + 1).astype(np.int32).tobytes()
    return initial, finals, sources, tokens, shifted, end_token, vocab_size


@pytest.mark.parametrize("reader", [lambda data: None, _disagreeing], ids=["unreadable", "disagreeing"])
def test_index_bytes_that_do_not_read_true_give_way_to_its_dicts(monkeypatch, reader):
    """When the bytes do not read, or read into transitions the Index's accessors contradict, the
    transitions come from ``get_transitions`` instead, and the automaton is the same."""
    pattern = '\\{"(a|b)*": (x|y)\\}'
    vocabulary = as_vocabulary({**VOCAB, "{": 8, "}": 9, '"': 10, ":": 11, " ": 12}, None)
    read = pattern_automaton.patterns_dfa((pattern,), vocabulary)
    monkeypatch.setattr(outlines_index, "read_index", reader)
    listed = pattern_automaton.patterns_dfa((pattern,), vocabulary)
    for field in ("table", "token_class", "accepting"):
        assert np.array_equal(getattr(read, field), getattr(listed, field))
    assert read.initial == listed.initial


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b[:-1], lambda b: b + b"\xfe",
                                    lambda b: b"\xfd" + b"\xff" * 8 + b[1:], lambda b: b""],
                         ids=["half", "last byte cut", "a byte too many", "huge initial state", "empty"])
def test_damaged_index_bytes_read_as_nothing(damage):
    """Bytes that do not have the layout expected (cut short, trailing, an integer past 32 bits, none) give
    None, and the compiler its fallback."""
    data = outlines_index.pickled_bytes(_index("a(b|a)*c"))
    assert read_index(data) is not None
    assert read_index(damage(data)) is None


@settings(max_examples=300, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8), cut=st.integers(0, 10**6))
def test_corrupted_index_bytes_read_as_nothing_or_as_whole_transitions(flips, cut):
    """Any corruption of real Index bytes (bytes overwritten, the tail cut) reads as nothing or as three
    arrays of one length, never a crash or an exception."""
    data = bytearray(outlines_index.pickled_bytes(_index("(x|y)(ab|ba)*c?")))
    for at, value in flips:
        data[at % len(data)] = value
    read = read_index(bytes(data[: len(data) - cut % len(data)]))
    if read is not None:
        _, _, sources, tokens, targets, _, _ = read
        assert len(sources) == len(tokens) == len(targets)


def test_a_first_use_build_is_noted_and_a_cached_one_is_not(monkeypatch, tmp_path, caplog):
    """Building an automaton can take seconds, so the build (and only a build) says so at INFO level."""
    import logging

    monkeypatch.setenv("CONSTRAINED_CACHE", str(tmp_path))
    monkeypatch.setattr(token_dfa_build, "MEMORY_CACHE", MemoryCache())
    vocabulary = as_vocabulary(VOCAB, END)
    with caplog.at_level(logging.INFO, logger="constrained"):
        token_dfa_build.build_token_dfa("(ab|c)+x", vocabulary)
    notes = [record.getMessage() for record in caplog.records]
    assert any(note.startswith("building the token automaton") and str(tmp_path) in note for note in notes)
    assert any(note.startswith("built it in") for note in notes)
    caplog.clear()
    token_dfa_build.MEMORY_CACHE.clear()  # read from disk this time
    with caplog.at_level(logging.INFO, logger="constrained"):
        token_dfa_build.build_token_dfa("(ab|c)+x", vocabulary)
    assert not caplog.records


def test_a_one_off_build_is_noted_only_when_debugging(monkeypatch, caplog):
    """Constraints built for one call (grounded in one text) are built every time: no note at INFO level."""
    import logging

    monkeypatch.setattr(token_dfa_build, "MEMORY_CACHE", MemoryCache())
    with caplog.at_level(logging.INFO, logger="constrained"):
        token_dfa_build.build_token_dfa("(ab|c)+y", as_vocabulary(VOCAB, END), cached=False)
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="constrained"):
        token_dfa_build.build_token_dfa("(ab|c)+y", as_vocabulary(VOCAB, END), cached=False)
    notes = [record.getMessage().split(" in ")[0] for record in caplog.records]
    assert notes == ["building a one-off token automaton", "built it"]


@pytest.mark.parametrize("route", ["pickle", "disk"])
def test_an_automaton_travels_whole_through_its_live_transitions(route, tmp_path):
    """What a bounded build sends back, and what the disk cache keeps, is the same automaton: every transition,
    class, verdict and the two numbers, and the transitions are the table's live cells alone."""
    import pickle

    from constrained.token_dfa import TokenDFA

    dfa = constrained.regex("(ab|c)+x|y(ba)*").bind(VOCAB | {"x": 5, "y": 6, "c": 3}).dfa
    assert len(dfa.states) == np.count_nonzero(dfa.table != DEAD)
    if route == "pickle":
        copy = pickle.loads(pickle.dumps(dfa))
        assert "table" not in vars(copy)  # the table, made above, stays behind: it is made again where wanted
    else:
        dfa.save(tmp_path / "a.npz")
        copy = TokenDFA.load(tmp_path / "a.npz")
    assert isinstance(copy, TokenDFA)
    for field in ("states", "classes", "targets", "offsets", "table", "token_class", "accepting"):
        assert np.array_equal(getattr(copy, field), getattr(dfa, field))
        assert getattr(copy, field).dtype == getattr(dfa, field).dtype
    assert (copy.initial, copy.end_class, copy.n_states, copy.n_classes) == (
        dfa.initial, dfa.end_class, dfa.n_states, dfa.n_classes)


def _random_table(seed: int, n_states: int, n_classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = rng.integers(0, n_states, size=(n_states, n_classes), dtype=np.int32)
    table[rng.random((n_states, n_classes)) < 0.7] = DEAD
    return table


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_states=st.integers(1, 12), n_classes=st.integers(1, 6))
def test_transitions_given_in_any_order_make_the_automaton_their_table_says(seed, n_states, n_classes):
    """The transitions are put in order (by state, then class) whatever order they come in, and ``step``,
    ``walk``, ``edges`` and ``table`` all read the one automaton they describe."""
    from constrained.token_dfa import TokenDFA

    table = _random_table(seed, n_states, n_classes)
    states, classes = np.nonzero(table != DEAD)
    shuffled = np.random.default_rng(seed + 1).permutation(len(states))
    vocab_size = 2 * n_classes + 1
    token_class = (np.arange(vocab_size) % n_classes).astype(np.int32)
    dfa = TokenDFA(states[shuffled].astype(np.int32), classes[shuffled].astype(np.int32),
                   table[states, classes][shuffled], token_class, np.zeros(n_states, dtype=bool), 0, 0, n_states,
                   n_classes)
    key = dfa.states.astype(np.int64) * n_classes + dfa.classes
    assert (np.diff(key) > 0).all()
    assert np.array_equal(dfa.table, table)
    for q in range(n_states):
        assert np.array_equal(dfa.classes[dfa.offsets[q]:dfa.offsets[q + 1]], np.flatnonzero(table[q] != DEAD))
        for token in range(vocab_size):
            assert dfa.step(q, token) == table[q, token_class[token]]
    assert dfa.step(DEAD, 0) == DEAD
    tokens = np.random.default_rng(seed + 2).integers(vocab_size, size=4).tolist()
    expected = 0
    for token in tokens:
        expected = DEAD if expected == DEAD else int(table[expected, token_class[token]])
    assert dfa.walk(tokens) == expected
    sources, edge_classes, targets, offsets = dfa.edges
    for q in range(n_states):
        incoming = slice(offsets[q], offsets[q + 1])
        assert (targets[incoming] == q).all()
        assert sorted(zip(sources[incoming].tolist(), edge_classes[incoming].tolist())) == [
            (int(p), int(c)) for p, c in zip(*np.nonzero(table == q))]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1)), max_size=30))
def test_unique_rows_finds_each_distinct_row_and_its_first_occurrence(rows):
    """As ``np.unique(axis=0)`` but for the order of the distinct rows: each row maps to an equal distinct
    row, distinct rows are distinct, and each is represented by its first occurrence."""
    from constrained.dfa_minimization import unique_rows

    array = np.array(rows, dtype=np.uint64).reshape(-1, 2)
    first, inverse = unique_rows(array)
    assert np.array_equal(array[first][inverse], array)
    assert len(first) == len({tuple(row) for row in rows})
    assert all(rows.index(rows[i]) == i for i in first.tolist())


@pytest.mark.parametrize("pattern", ["(xa|ya)b", "(ab|c)+", "[ab]{2,3}(xc|yc)"])
def test_an_automaton_weighs_what_it_holds_once_its_edges_and_offsets_are_made(pattern):
    """The memory cache weighs an automaton when it is put there, before decodes make its edges; the weight must
    already count them, or the cache's bound would not bound what the process holds."""
    dfa = constrained.regex(pattern).bind(VOCAB).dfa
    made = [*dfa.edges, dfa.offsets]
    fields = dfa.states, dfa.classes, dfa.targets, dfa.token_class, dfa.accepting
    assert dfa.nbytes == sum(array.nbytes for array in (*fields, *made))
