"""The byte automaton determinized here (``_byte_determinize``) is outlines-core's, and what it does not read is
left to outlines-core.

Two automata are compared as languages: each is read breadth-first from its start over the 256 bytes, states
numbered as found, so equal languages give equal tables whatever the numbering (both are minimal). Cases:
random patterns in the syntax read here (quantifiers with bounds, lazy ones, escapes, ranges, empty branches,
multi-byte literals), the constructs it leaves to outlines-core, and a SQL constraint's two patterns.
"""

from __future__ import annotations

import numpy as np
import pytest
from constrained._byte_determinize import determinize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained.byte_automaton import ByteAutomaton, _outlines_byte_automaton, byte_automaton
from constrained.text_to_sql import sql


def canonical(automaton: ByteAutomaton) -> tuple[np.ndarray, np.ndarray]:
    """The table over bytes and the accepting flags, states numbered breadth-first from the start."""
    over_bytes = automaton.table[:, automaton.class_of_byte.astype(np.int64)]
    number, order, rows = {automaton.start: 0}, [automaton.start], []
    for state in order:
        row = []
        for target in over_bytes[state].tolist():
            if target >= 0 and target not in number:
                number[target] = len(order)
                order.append(target)
            row.append(number.get(target, -1))
        rows.append(row)
    return np.array(rows), automaton.accepting[order]


def assert_same_as_outlines(pattern: str) -> None:
    here, there = canonical(byte_automaton(pattern)), canonical(_outlines_byte_automaton(pattern))
    assert np.array_equal(here[0], there[0]) and np.array_equal(here[1], there[1]), pattern


_ATOMS = st.sampled_from(["a", "b", "é", "✓", "[ab]", "[a-c]", "[-a]", "[a-]", "[]a]", "\\-", "\\.", "\\x41",
                          "\\x{e9}", "\\n", "[\\x09-\\x0a ]", "[\\--.]", '"', " ", "\\{", "()", "(?:a|)"])


def _regexes() -> st.SearchStrategy[str]:
    return st.recursive(_ATOMS, lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda pair: f"(?:{pair[0]}|{pair[1]})"),
        inner.map(lambda r: f"({r})*"), inner.map(lambda r: f"(?:{r})+?"), inner.map(lambda r: f"({r})?"),
        st.tuples(inner, st.integers(0, 3), st.integers(0, 2)).map(lambda t: f"(?:{t[0]}){{{t[1]},{t[1] + t[2]}}}"),
        st.tuples(inner, st.integers(0, 3)).map(lambda t: f"({t[0]}){{{t[1]},}}"),
        st.tuples(inner, st.integers(1, 3)).map(lambda t: f"({t[0]}){{{t[1]}}}")),
        max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_regexes())
def test_random_patterns_determinize_as_outlines_core_does(pattern):
    assert determinize(pattern.encode()) is not None, pattern
    assert_same_as_outlines(pattern)


@pytest.mark.parametrize("pattern", ["[^a]b", "a.b", "\\d+", "\\w", "(?i)ab", "^a", "a$", "[a&&b]", "[a--b]",
                                     "[[:alpha:]]", "[a-é]", "\\x{10FFFF}", "\\p{L}", "(?P<x>a)"])
def test_what_it_does_not_read_is_left_to_outlines_core(pattern):
    assert determinize(pattern.encode()) is None


def accepts(automaton: ByteAutomaton, text: str) -> bool:
    state = automaton.start
    for byte in text.encode():
        state = int(automaton.table[state, automaton.class_of_byte[byte]])
        if state < 0:
            return False
    return bool(automaton.accepting[state])


@pytest.mark.parametrize("pattern, matching, other", [("[^a]b", "éb", "ab"), ("a.b", "a✓b", "a\nb"),
                                                      ("\\d+", "٣4", "x"), ("(?i)ab", "aB", "ac"),
                                                      ("[a-é]+", "bé", "ê")])
def test_byte_automaton_reads_the_rest_through_outlines_core(pattern, matching, other):
    automaton = byte_automaton(pattern)
    assert accepts(automaton, matching) and not accepts(automaton, other)


@pytest.mark.parametrize("pattern", ["(a", "a)", "*a", "a{2,1}", "a{", "[a", "[b-a]", "a**", "\\"])
def test_malformed_patterns_are_left_to_outlines_core(pattern):
    assert determinize(pattern.encode()) is None


def test_a_sql_constraints_patterns_determinize_as_outlines_core_does():
    constraint = sql("CREATE TABLE singer (id INTEGER, name TEXT, country TEXT);"
                     "CREATE TABLE concert (id INTEGER, singer_id INTEGER, year INTEGER)")
    for pattern in constraint.patterns:
        assert determinize(pattern.encode()) is not None
        assert_same_as_outlines(pattern)
