"""The automaton build's passes: token columns hashed (equal iff the columns are), the table filled, equivalent
states found, the searches of a minimization, distinct rows, and the product of two tables."""

from __future__ import annotations

import numpy as np
import pytest
from constrained._table_passes import (
    breadth_first,
    coarsest_blocks,
    column_signatures,
    distinct_rows,
    fill_table,
    live_states,
    product_table,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained.dfa_minimization import row_mixers, trim_table, unique_rows
from constrained.token_dfa import DEAD

N_IDS, VOCAB = 6, 5  # Index state ids 0..5, tokens 0..4; tokens 5 and 6 stand for the synthetic markers
RENUMBER = np.array([0, DEAD, 1, 2, DEAD, 3], dtype=np.int32)  # ids 1 and 4 are not ours (a final, the pre-start)
N_STATES = 4


def _weights(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(rng.integers(1, 2**63, size=(N_STATES, 2), dtype=np.uint64) | np.uint64(1))


transition_lists = st.dictionaries(st.tuples(st.integers(0, N_IDS - 1), st.integers(0, VOCAB + 1)),
                                   st.integers(0, N_IDS - 1), max_size=30)


def _columns(transitions: dict, token_ok: np.ndarray) -> tuple[np.ndarray, ...]:
    sources = np.array([q for q, _ in transitions], dtype=np.int32)
    tokens = np.array([t for _, t in transitions], dtype=np.int32)
    targets = np.array(list(transitions.values()), dtype=np.int32)
    return sources, tokens, targets, RENUMBER, token_ok


def _kept_columns(transitions: dict, token_ok: np.ndarray) -> dict[int, frozenset]:
    """Per token, its column over our states: the reference the signatures must agree with."""
    columns = {t: set() for t in range(VOCAB)}
    for (q, t), n in transitions.items():
        if t < VOCAB and token_ok[t] and RENUMBER[q] != DEAD and RENUMBER[n] != DEAD:
            columns[t].add((int(RENUMBER[q]), int(RENUMBER[n])))
    return {t: frozenset(column) for t, column in columns.items()}


@settings(max_examples=300, deadline=None)
@given(transitions=transition_lists, banned=st.sets(st.integers(0, VOCAB - 1), max_size=2), seed=st.integers(0, 99))
def test_tokens_share_a_signature_exactly_when_their_columns_are_equal(transitions, banned, seed):
    token_ok = np.ones(VOCAB, dtype=np.uint8)
    token_ok[list(banned)] = 0
    signature = np.frombuffer(column_signatures(*_columns(transitions, token_ok), _weights(seed)), dtype=np.uint64)
    signature = signature.reshape(VOCAB, 2)
    columns = _kept_columns(transitions, token_ok)
    for a in range(VOCAB):
        for b in range(VOCAB):
            assert (columns[a] == columns[b]) == bool((signature[a] == signature[b]).all())


@settings(max_examples=200, deadline=None)
@given(transitions=transition_lists)
def test_the_table_holds_every_kept_transition_and_nothing_else(transitions):
    token_ok = np.array([1, 1, 0, 1, 1], dtype=np.uint8)
    token_class = np.array([0, 1, 2, 1, 0], dtype=np.int32)  # classes need not be exact for the fill
    table = np.full((N_STATES, 3), DEAD, dtype=np.int32)
    fill_table(*_columns(transitions, token_ok), token_class, table, 3)
    expected = np.full((N_STATES, 3), DEAD, dtype=np.int32)
    for (q, t), n in transitions.items():  # in the list's order: a later transition into one cell wins
        if t < VOCAB and token_ok[t] and RENUMBER[q] != DEAD and RENUMBER[n] != DEAD:
            expected[RENUMBER[q], token_class[t]] = RENUMBER[n]
    assert np.array_equal(table, expected)


def test_arrays_of_unequal_length_are_refused():
    sources, tokens, targets, renumber, token_ok = _columns({(0, 0): 2, (2, 1): 3}, np.ones(VOCAB, np.uint8))
    with pytest.raises(ValueError, match="one length"):
        column_signatures(sources, tokens[:1], targets, renumber, token_ok, _weights(0))


def test_a_state_outside_the_renumbering_is_refused():
    columns = _columns({(0, 0): N_IDS}, np.ones(VOCAB, np.uint8))
    with pytest.raises(ValueError, match="outside the renumbering"):
        column_signatures(*columns, _weights(0))
    with pytest.raises(ValueError, match="outside the renumbering"):
        fill_table(*columns, np.zeros(VOCAB, np.int32), np.full((N_STATES, 1), DEAD, np.int32), 1)


def test_a_table_too_small_for_a_transition_is_refused():
    columns = _columns({(5, 0): 0}, np.ones(VOCAB, np.uint8))  # state 3, class 1
    with pytest.raises(ValueError, match="outside the table"):
        fill_table(*columns, np.ones(VOCAB, np.int32), np.full((N_STATES, 1), DEAD, np.int32), 1)
    with pytest.raises(ValueError, match="outside the table"):
        fill_table(*columns, np.zeros(VOCAB, np.int32), np.full((2, 1), DEAD, np.int32), 1)


def test_arrays_of_another_item_type_are_refused_not_misread():
    """An int64 table would read as twice as many int32 cells; a wrong type is a TypeError instead."""
    with pytest.raises(TypeError, match="4-byte items"):
        fill_table(*_columns({(0, 0): 2}, np.ones(VOCAB, np.uint8)), np.zeros(VOCAB, np.int32),
                   np.full((N_STATES, 1), DEAD, np.int64), 1)
    sources, tokens, targets, renumber, token_ok = _columns({(0, 0): 2}, np.ones(VOCAB, np.uint8))
    with pytest.raises(TypeError, match="1-byte items"):
        column_signatures(sources, tokens, targets, renumber, token_ok.astype(np.int32), _weights(0))
    with pytest.raises(TypeError, match="8-byte items"):
        column_signatures(sources, tokens, targets, renumber, token_ok, _weights(0).astype(np.int64))


def _equivalent_pairs(table: np.ndarray, accepting: np.ndarray) -> set[tuple[int, int]]:
    """The reference: states p and q are equivalent unless some word leads one into acceptance and the other
    not (a missing transition leads to a rejecting sink), found by marking distinguishable pairs to a fixpoint."""
    n, k = table.shape
    sink = n
    full = np.vstack([np.where(table == DEAD, sink, table), np.full((1, k), sink)])
    accept = np.append(accepting, False)
    apart = accept[:, None] != accept[None, :]
    while True:
        step = apart.copy()
        for symbol in range(k):
            step |= apart[full[:, symbol][:, None], full[:, symbol][None, :]]
        if (step == apart).all():
            break
        apart = step
    return {(p, q) for p in range(n) for q in range(n) if not apart[p, q]}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9), st.integers(1, 3), st.data())
def test_coarsest_blocks_put_states_together_exactly_when_they_are_equivalent(n, k, data):
    """Over trimmed tables, Moore's blocks are the classes of the language equivalence."""
    table = np.array(data.draw(st.lists(st.lists(st.integers(-1, n - 1), min_size=k, max_size=k), min_size=n,
                                        max_size=n)), dtype=np.int32)
    accepting = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    trim_table(table, accepting)  # as minimal_table gets it: no transition into a state that cannot accept
    sources, classes = np.nonzero(table != DEAD)
    targets = table[sources, classes]
    starts = np.searchsorted(sources, np.arange(n + 1)).astype(np.int64)
    blocks = np.frombuffer(coarsest_blocks(starts, classes.astype(np.int32), targets.astype(np.int32),
                                           accepting.astype(np.int32)), dtype=np.int32)
    together = {(p, q) for p in range(n) for q in range(n) if blocks[p] == blocks[q]}
    assert together == _equivalent_pairs(table, accepting)
    assert list(np.unique(blocks)) == list(range(blocks.max() + 1))
    assert list(dict.fromkeys(blocks)) == sorted(set(blocks))  # numbered in order of their first state


def test_coarsest_blocks_refuse_a_target_outside_the_states():
    with pytest.raises(ValueError, match="target lies outside"):
        coarsest_blocks(np.array([0, 1], dtype=np.int64), np.array([0], dtype=np.int32),
                        np.array([1], dtype=np.int32), np.array([0], dtype=np.int32))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_product_table_reads_both_tables_at_every_reachable_pair(data):
    """Every reachable pair's row is its two states' cells read through the class pairs, and the pairs are
    numbered breadth-first, each level in order of codes."""
    def table(n: int, columns: int) -> np.ndarray:
        cells = data.draw(st.lists(st.integers(-1, n - 1), min_size=n * columns, max_size=n * columns))
        return np.array(cells, dtype=np.int32).reshape(n, columns)
    first, second = table(data.draw(st.integers(1, 5)), 2), table(data.draw(st.integers(1, 5)), 3)
    pairs = data.draw(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2)), min_size=1, max_size=4))
    first_class, second_class = (np.array(side, dtype=np.int32) for side in zip(*pairs))
    rows, codes = product_table(first, 2, second, 3, first_class, second_class, 0, 0)
    codes = np.frombuffer(codes, dtype=np.int64)
    rows = np.frombuffer(rows, dtype=np.int32).reshape(len(codes), len(pairs))
    width = len(second)
    level, expected = [0], [0]
    while level:
        reached = {int(a) * width + int(b) for code in level for a, b in
                   zip(first[code // width, first_class], second[code % width, second_class]) if a >= 0 and b >= 0}
        level = sorted(reached - set(expected))
        expected += level
    assert codes.tolist() == expected
    for row, code in zip(rows, codes):
        a, b = first[code // width, first_class], second[code % width, second_class]
        assert [-1 if x < 0 or y < 0 else expected.index(x * width + y) for x, y in zip(a, b)] == row.tolist()


def test_the_product_table_refuses_a_class_outside_its_table():
    table = np.zeros((1, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="outside its table"):
        product_table(table, 2, table, 2, np.array([2], np.int32), np.array([0], np.int32), 0, 0)


tables = st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-1, n - 1), min_size=3, max_size=3), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n), st.integers(0, n - 1), st.randoms(use_true_random=False)))


@settings(max_examples=200, deadline=None)
@given(tables)
def test_live_states_are_those_from_which_an_accepting_state_is_reachable(drawn):
    """Over the live transitions of a table, given in any order."""
    rows, accepting, _, shuffler = drawn
    transitions = [(q, n) for q, row in enumerate(rows) for n in row if n != DEAD]
    shuffler.shuffle(transitions)
    sources = np.array([q for q, _ in transitions], dtype=np.int32)
    targets = np.array([n for _, n in transitions], dtype=np.int32)
    live = set(np.flatnonzero(accepting))
    while True:  # the reference: a state is live once one of its transitions leads to a live state
        grown = live | {q for q, row in enumerate(rows) if any(n in live for n in row)}
        if grown == live:
            break
        live = grown
    found = np.frombuffer(live_states(sources, targets, np.array(accepting, dtype=np.uint8)), dtype=np.uint8)
    assert set(np.flatnonzero(found)) == live


def test_live_states_refuse_a_state_outside_the_states():
    with pytest.raises(ValueError, match="outside the states"):
        live_states(np.array([0], dtype=np.int32), np.array([2], dtype=np.int32), np.array([0, 1], dtype=np.uint8))


@settings(max_examples=200, deadline=None)
@given(tables)
def test_breadth_first_visits_the_reachable_states_level_by_level_in_order_of_first_appearance(drawn):
    rows, _, initial, _ = drawn
    table = np.array(rows, dtype=np.int32)
    sources, classes = np.nonzero(table != DEAD)
    starts = np.searchsorted(sources, np.arange(len(rows) + 1)).astype(np.int64)
    order = list(np.frombuffer(breadth_first(starts, table[sources, classes], initial), dtype=np.int32))
    level, expected = [initial], [initial]
    while level:  # the reference: each level's successors, in order along the level's transitions, new ones once
        level = [n for q in level for n in rows[q] if n != DEAD and n not in expected]
        level = list(dict.fromkeys(level))
        expected += level
    assert order == expected


def test_breadth_first_refuses_a_target_outside_the_states():
    with pytest.raises(ValueError, match="target lies outside"):
        breadth_first(np.array([0, 1], dtype=np.int64), np.array([1], dtype=np.int32), 0)


row_lists = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1) | st.integers(0, 2)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(row_lists)
def test_distinct_rows_are_numbered_in_order_of_their_first_occurrence(rows):
    array = np.array(rows, dtype=np.uint64).reshape(-1, 2)
    first, inverse = (np.frombuffer(found, dtype=np.int64) for found in distinct_rows(array, 2))
    expected = list(dict.fromkeys(rows))
    assert [rows[i] for i in first] == expected
    assert [expected[k] for k in inverse] == rows


def test_distinct_rows_refuse_rows_of_no_width():
    with pytest.raises(ValueError, match="width at least 1"):
        distinct_rows(np.zeros(4, dtype=np.uint64), 0)


@settings(max_examples=200, deadline=None)
@given(row_lists, st.randoms(use_true_random=False))
def test_unique_rows_number_the_distinct_rows_by_their_values_whatever_order_the_rows_come_in(rows, shuffler):
    """An automaton's classes are numbered so: two lists of the same rows get the same numbering."""
    shuffled = rows.copy()
    shuffler.shuffle(shuffled)
    numbered = []
    for given_rows in (rows, shuffled):
        array = np.array(given_rows, dtype=np.uint64).reshape(-1, 2)
        first, inverse = unique_rows(array)
        assert np.array_equal(array[first][inverse], array)
        numbered.append([tuple(row) for row in array[first].tolist()])
    assert numbered[0] == numbered[1]


def test_unique_rows_number_distinct_rows_whose_keys_collide_in_the_order_of_their_values():
    """Rows (m1, 0) and (0, m0) share the key m0 * m1 under the multipliers (m0, m1)."""
    m0, m1 = (int(m) for m in row_mixers(2))
    rows = np.array([[m1, 0], [5, 5], [0, m0], [m1, 0]], dtype=np.uint64)
    first, inverse = unique_rows(rows)
    assert [tuple(row) for row in rows[first].tolist()] == [(0, m0), (5, 5), (m1, 0)]
    assert list(first) == [2, 1, 0] and list(inverse) == [2, 1, 0, 2]
