"""The compiled state-set kernel against the definitions it implements, on random automata.

``post(S, c)`` is ``{δ(q, c) : q ∈ S}``, ``pre(S, c)`` is ``{q : δ(q, c) ∈ S}``, and ``-1`` means "some
class". The kernel computes them two ways (neighbour bitsets for automata up to about 8,000 states, arc
walks above), so both sizes are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from constrained._state_sets import Kernel
from hypothesis import given, settings
from hypothesis import strategies as st

DEAD = -1


def random_automaton(seed: int, n_states: int, n_classes: int, density: float, forward: bool = False) -> np.ndarray:
    """A random table; ``forward`` ones step at most 3 states ahead around a ring, as a text's automaton
    mostly moves on, so a state is reachable at some positions only (sets that neither fill up nor settle)."""
    rng = np.random.default_rng(seed)
    if forward:
        steps = rng.integers(0, 4, size=(n_states, n_classes))
        table = ((np.arange(n_states)[:, None] + steps) % n_states).astype(np.int32)
    else:
        table = rng.integers(0, n_states, size=(n_states, n_classes), dtype=np.int32)
    table[rng.random((n_states, n_classes)) > density] = DEAD
    return table


def transitions_of(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's form of a table: its live cells by state, then class, and where each state's start."""
    states, classes = np.nonzero(table != DEAD)
    offsets = np.searchsorted(states, np.arange(table.shape[0] + 1))
    return offsets.astype(np.int32), classes.astype(np.int32), table[states, classes].astype(np.int32)


def kernel_of(table: np.ndarray, vocab_size: int = 40) -> Kernel:
    token_class = (np.arange(vocab_size) % table.shape[1]).astype(np.int32)
    accepting = np.zeros(table.shape[0], dtype=bool)
    accepting[-1] = True
    return Kernel(*transitions_of(table), table.shape[1], token_class, accepting)


def members(kernel: Kernel, set_id: int, n_states: int) -> set[int]:
    bits = np.unpackbits(np.frombuffer(kernel.members(set_id), dtype=np.uint8), count=n_states, bitorder="little")
    return set(np.flatnonzero(bits).tolist())


def expected_post(table: np.ndarray, states: set[int], c: int) -> set[int]:
    columns = range(table.shape[1]) if c == -1 else [c]
    return {int(table[q, k]) for q in states for k in columns if table[q, k] != DEAD}


def expected_pre(table: np.ndarray, states: set[int], c: int) -> set[int]:
    columns = range(table.shape[1]) if c == -1 else [c]
    return {q for q in range(table.shape[0]) for k in columns if table[q, k] in states}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_states=st.sampled_from([1, 7, 64, 65, 300]),
       n_classes=st.integers(1, 9), density=st.floats(0.05, 0.9),
       walk=st.lists(st.tuples(st.booleans(), st.integers(-1, 8)), min_size=1, max_size=12))
def test_post_and_pre_are_their_definitions(seed, n_states, n_classes, density, walk):
    table = random_automaton(seed, n_states, n_classes, density)
    kernel = kernel_of(table)
    set_id, states = kernel.single(0), {0}
    for forward, c in walk:
        c = min(c, n_classes - 1)
        set_id = kernel.post(set_id, c) if forward else kernel.pre(set_id, c)
        states = expected_post(table, states, c) if forward else expected_pre(table, states, c)
        assert members(kernel, set_id, n_states) == states
        if not states:
            break


def test_large_automata_take_the_arc_walk_and_agree():
    n_states = 9000  # past the neighbour-bitset limit
    table = random_automaton(7, n_states, 3, 0.5)
    kernel = kernel_of(table)
    set_id = kernel.pre(kernel.single(0), -1)
    assert members(kernel, set_id, n_states) == expected_pre(table, {0}, -1)
    for c in (-1, 0, 2):
        reached = kernel.post(kernel.post(kernel.single(17), -1), c)
        assert members(kernel, reached, n_states) == expected_post(table, expected_post(table, {17}, -1), c)
    assert members(kernel, kernel.post(kernel.single(8999), -1), n_states) == expected_post(table, {8999}, -1)


def test_equal_sets_get_equal_numbers():
    table = random_automaton(3, 50, 4, 0.6)
    kernel = kernel_of(table)
    a = kernel.post(kernel.post(kernel.single(1), -1), -1)
    b = kernel.post(kernel.post(kernel.single(1), -1), -1)
    assert a == b
    assert kernel.single(5) == kernel.single(5) != kernel.single(6)
    assert members(kernel, kernel.live, 50) == set(range(50))
    assert members(kernel, kernel.empty, 50) == set()
    assert members(kernel, kernel.accepting, 50) == {49}


def test_sweeps_and_rows_follow_the_canvas_arrays():
    """Forward sets reach as the table says; rows are rewritten only where a key changed."""
    table = np.array([[1, DEAD], [DEAD, 2], [2, 2]], dtype=np.int32)  # class 0 then class 1, then anything
    kernel = kernel_of(table, vocab_size=4)
    length = 3
    tokens = np.full(length, -1, dtype=np.int32)
    forward = np.full(length + 1, -1, dtype=np.int32)
    backward = np.full(length + 1, -1, dtype=np.int32)
    forward[0], backward[length] = kernel.single(0), kernel.single(2)
    kernel.sweep(forward, tokens, np.array([0], dtype=np.int32), True)
    kernel.sweep(backward, tokens, np.array([length - 1], dtype=np.int32), False)
    assert [members(kernel, f, 3) for f in forward] == [{0}, {1}, {2}, {2}]
    assert kernel.intersects(int(forward[0]), int(backward[0]))
    rows = np.zeros((length, 4), dtype=bool)
    keys = np.full((length, 3), -1, dtype=np.int64)
    kernel.fill_rows(rows, keys, forward, backward, tokens, False)
    # token t has class t % 2: position 0 takes class 0, position 1 class 1, position 2 either
    assert rows.tolist() == [[True, False, True, False], [False, True, False, True], [True] * 4]
    rows[2] = False  # a row whose key did not change is left as it is
    kernel.fill_rows(rows, keys, forward, backward, tokens, False)
    assert not rows[2].any()


def expected_rows(table: np.ndarray, token_class: np.ndarray, tokens: list[int], start: int, end: set[int]):
    """Each open position's allowed tokens by definition: some state reachable from the left takes the token
    into a state from which the right side can still be completed."""
    length, n_classes = len(tokens), table.shape[1]
    classes_at = [range(n_classes) if t == -1 else [int(token_class[t])] for t in tokens]
    forward = [{start}]
    for i in range(length):
        forward.append({int(table[q, c]) for q in forward[i] for c in classes_at[i] if table[q, c] != DEAD})
    backward = [set()] * length + [end]
    for i in reversed(range(length)):
        backward[i] = {q for q in range(table.shape[0]) for c in classes_at[i] if table[q, c] in backward[i + 1]}
    return {i: {t for t in range(len(token_class))
                if any(table[q, token_class[t]] in backward[i + 1] for q in forward[i])}
            for i in range(length) if tokens[i] == -1}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_states=st.sampled_from([5, 64, 300, 9000]), density=st.floats(0.1, 0.9),
       length=st.integers(1, 24), data=st.data())
def test_rows_are_the_tokens_between_reachable_and_completing_states(seed, n_states, density, length, data):
    """Every row the kernel writes, whichever way it finds the classes between two sets (the union tables,
    the arcs of either side, the risky states next to the stranded or the unreached ones), on canvases with
    random decided positions. Many classes make each one rare, so a class missed anywhere shows."""
    n_classes = data.draw(st.integers(1, 6 if n_states > 1000 else 40), label="classes")
    table = random_automaton(seed, n_states, n_classes, density, forward=data.draw(st.booleans(), label="forward"))
    vocab_size = 3 * n_classes
    kernel = kernel_of(table, vocab_size=vocab_size)
    token_class = np.arange(vocab_size) % n_classes
    end = set(range(n_states)) if data.draw(st.booleans(), label="any end") else {n_states - 1}
    tokens = np.array(data.draw(st.lists(st.integers(-1, vocab_size - 1), min_size=length, max_size=length)),
                      dtype=np.int32)
    tokens[tokens % 2 == 0] = -1  # about half the positions open
    forward = np.full(length + 1, -1, dtype=np.int32)
    backward = np.full(length + 1, -1, dtype=np.int32)
    forward[0] = kernel.single(0)
    backward[length] = kernel.live if len(end) == n_states else kernel.single(n_states - 1)
    kernel.sweep(forward, tokens, np.array([0], dtype=np.int32), True)
    kernel.sweep(backward, tokens, np.array([length - 1], dtype=np.int32), False)
    rows = np.zeros((length, vocab_size), dtype=bool)
    kernel.fill_rows(rows, np.full((length, 3), -1, dtype=np.int64), forward, backward, tokens, False)
    expected = expected_rows(table, token_class, tokens.tolist(), 0, end)
    assert {i: set(np.flatnonzero(rows[i]).tolist()) for i in expected} == expected


@pytest.mark.parametrize("call", [
    lambda k: k.post(10**6, 0),
    lambda k: k.pre(k.single(0), 99),
    lambda k: k.single(-1),
    lambda k: k.members(-5),
    lambda k: k.sweep(np.zeros(3, np.int32), np.full(3, -1, np.int32), np.array([0], np.int32), True),
    lambda k: k.sweep(np.zeros(4, np.int32), np.full(3, -1, np.int32), np.array([3], np.int32), True),
    lambda k: k.sweep(np.zeros(4, np.int32), np.array([-1, 999, -1], np.int32), np.array([1], np.int32), True),
    lambda k: k.sweep(np.zeros(4, np.int32), np.full(3, -1, np.int32), np.array([2, 1], np.int32), False),
])
def test_bad_arguments_raise_instead_of_reading_out_of_bounds(call):
    kernel = kernel_of(random_automaton(1, 10, 3, 0.5))
    with pytest.raises((ValueError, IndexError)):
        call(kernel)


def test_a_table_pointing_outside_its_states_is_refused():
    table = np.array([[0, 5]], dtype=np.int32)
    with pytest.raises(ValueError, match="in range"):
        kernel_of(table)


def _two_states(offsets: list[int], classes: list[int], targets: list[int], n_classes: int = 3) -> Kernel:
    return Kernel(np.array(offsets, np.int32), np.array(classes, np.int32), np.array(targets, np.int32), n_classes,
                  np.zeros(4, np.int32), np.array([False, True]))


@pytest.mark.parametrize(("offsets", "classes", "targets", "n_classes"), [
    ([0, 2, 3], [1, 0, 2], [0, 1, 1], 3),  # a state's classes out of order: its look-ups would miss
    ([0, 2, 3], [1, 1, 2], [0, 1, 1], 3),  # a class twice from one state: not deterministic
    ([0, 2, 3], [0, 1, 3], [0, 1, 1], 3),  # a class past the classes
    ([0, 2, 3], [0, 1, 2], [0, -1, 1], 3),  # a dead target listed as a transition
    ([0, 2, 2], [0, 1, 2], [0, 1, 1], 3),  # offsets that end before the transitions do
    ([0, 3, 2], [0, 1, 2], [0, 1, 1], 3),  # offsets that fall
    ([1, 2, 3], [0, 1, 2], [0, 1, 1], 3),  # offsets that do not start at 0
    ([0, 2], [0, 1], [0, 1], 3),  # one offset short of the states
    ([0, 2, 3], [0, 1, 2], [0, 1], 3),  # classes and targets of different lengths
])
def test_malformed_transitions_are_refused(offsets, classes, targets, n_classes):
    _two_states([0, 2, 3], [0, 1, 2], [0, 1, 1])  # the well-formed one they break
    with pytest.raises(ValueError):
        _two_states(offsets, classes, targets, n_classes)
