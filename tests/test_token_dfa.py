"""The token automaton: exactly the pattern's language over token sequences, in its minimal form."""

from __future__ import annotations

import itertools
import re

import pytest

import constrained
from constrained.errors import VocabularyError
from constrained.token_dfa import DEAD

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
