"""The product of two byte automata: the texts both accept, built over reachable state pairs only and kept
minimal, for constraints that are small as two automata but huge as one pattern."""

from __future__ import annotations

import numpy as np

from ._table_passes import product_table
from .byte_automaton import ByteAutomaton, minimal_byte_automaton
from .dfa_minimization import unique_rows


def intersection(first: ByteAutomaton, second: ByteAutomaton) -> ByteAutomaton:
    """The minimal automaton of the texts both automata accept.

    Why: some constraints are far smaller as two automata than as one pattern. A SQL query must follow the
    grammar *and* keep word tokens apart; written as one regex, the second rule would copy the rest of the
    query once per kind of previous token. The product is built over reachable state pairs only (in C,
    ``_table_passes.product_table``), with byte classes refined to the pairs of classes that occur together. Why at byte
    level: its table has a column per byte class (tens), where a token automaton's has one per token class
    (hundreds), and the vocabulary is then walked once, through the product.

    Parameters:
        first, second: the two automata.

    Returns:
        The minimal automaton of their intersection (its start state may have no way out when it is empty).
    """
    both = np.column_stack([first.class_of_byte, second.class_of_byte]).astype(np.int64)
    pair_byte, class_of_byte = unique_rows(both)
    table, codes = product_table(first.table, first.n_classes, second.table, second.n_classes,
                                 both[pair_byte, 0].astype(np.int32), both[pair_byte, 1].astype(np.int32),
                                 first.start, second.start)
    states = np.frombuffer(codes, dtype=np.int64)
    table = np.frombuffer(table, dtype=np.int32).reshape(len(states), len(pair_byte)).copy()
    width = len(second.table)
    accepting = first.accepting[states // width] & second.accepting[states % width]
    return minimal_byte_automaton(table, class_of_byte, accepting, 0)
