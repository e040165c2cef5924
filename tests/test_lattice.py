"""The canvas lattice, specified against brute force: masks are exactly the tokens of admissible canvases."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import constrained
from constrained import ConstraintUnsatisfiable

VOCAB = {"a": 0, "b": 1, "ab": 2, "c": 3, "</s>": 4, "bc": 5, "ca": 6, "{": 7, "}": 8, '"': 9}
END = VOCAB["</s>"]
PATTERNS = ["a(b|a)*c", "(ab|c)+", "(ab)+c?", '\\{"(a|b)*"\\}', "a?b?c?", "(a|b){2,4}c"]
LENGTH = 5


def admissible_canvases(bound: constrained.BoundConstraint, length: int, final: bool) -> list[tuple[int, ...]]:
    """Every canvas of the given length the constraint admits, by enumeration."""
    result = []
    for tokens in itertools.product(range(len(VOCAB)), repeat=length):
        text_end = tokens.index(END) if END in tokens else length
        if any(t != END for t in tokens[text_end:]):
            continue
        state = bound.dfa.walk(list(tokens))
        if state == -1:
            continue
        if final and not bound.dfa.accepting[state]:
            continue
        result.append(tokens)
    return result


@pytest.fixture(scope="module")
def bound_patterns():
    return {pattern: constrained.regex(pattern).bind(VOCAB) for pattern in PATTERNS}


@pytest.fixture(scope="module")
def enumerated(bound_patterns):
    return {
        (pattern, final): admissible_canvases(bound, LENGTH, final)
        for pattern, bound in bound_patterns.items()
        for final in (True, False)
    }


@settings(max_examples=120, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    final=st.booleans(),
    decided=st.dictionaries(st.integers(0, LENGTH - 1), st.integers(0, len(VOCAB) - 1), max_size=3),
)
def test_masks_equal_brute_force(bound_patterns, enumerated, pattern, final, decided):
    bound = bound_patterns[pattern]
    canvas = bound.canvas(LENGTH, final=final)
    canvas.decide(decided)
    consistent = [c for c in enumerated[(pattern, final)] if all(c[i] == t for i, t in decided.items())]
    expected = torch.zeros(LENGTH, len(VOCAB), dtype=torch.bool)
    for tokens in consistent:
        expected[range(LENGTH), list(tokens)] = True
    assert canvas.feasible() == bool(consistent)
    assert torch.equal(canvas.masks(), expected)
    for position in range(LENGTH):
        assert torch.equal(canvas.allowed(position), expected[position])


@settings(max_examples=60, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), order=st.permutations(range(LENGTH)), data=st.data())
def test_any_reveal_order_of_allowed_tokens_ends_accepted(bound_patterns, pattern, order, data):
    """Soundness: deciding positions one by one, each with any allowed token, never strands the canvas."""
    bound = bound_patterns[pattern]
    canvas = bound.canvas(LENGTH)
    if not canvas.feasible():
        return
    for position in order:
        choices = torch.nonzero(canvas.allowed(position)).flatten().tolist()
        assert choices, "a feasible canvas offers a token at every open position"
        canvas.decide({position: data.draw(st.sampled_from(choices))})
        assert canvas.feasible()
    assert canvas.complete()
    assert bound.accepts_tokens(canvas.tokens)
    assert bound.constraint.accepts(bound.decode(canvas.tokens))


@settings(max_examples=80, deadline=None)
@given(pattern=st.sampled_from(PATTERNS),
       batches=st.lists(st.dictionaries(st.integers(0, LENGTH - 1), st.none() | st.integers(0, 2**16),
                                        min_size=1, max_size=3), min_size=1, max_size=6))
def test_incremental_updates_match_a_fresh_canvas(bound_patterns, enumerated, pattern, batches):
    """Whatever positions are decided, redecided or reopened, in whatever batches, the canvas kept up to date
    (sweeps resumed at the changes, rows rewritten only where their key and content changed) has the
    masks of a canvas built afresh, in both layouts. Decided tokens come from admissible canvases, so that
    most steps stay feasible and have rows to compare."""
    bound = bound_patterns[pattern]
    admissible = enumerated[(pattern, True)]
    canvas = bound.canvas(LENGTH)
    for batch in batches:
        canvas.decide({i: None if pick is None else admissible[pick % len(admissible)][i] for i, pick in batch.items()})
        fresh = bound.canvas_from(canvas.tokens)
        assert canvas.feasible() == fresh.feasible()
        assert torch.equal(canvas.packed_masks(copy=False), fresh.packed_masks())
        assert torch.equal(canvas.masks(), fresh.masks())


#: A vocabulary of every 1- to 3-character string over a small alphabet: 820 tokens, so that rows span many
#: words and token classes range from one token to hundreds (small classes are spread token by token, large
#: ones by their own precomputed rows).
WIDE_VOCAB = {text: i for i, text in enumerate(
    "".join(chars) for n in (1, 2, 3) for chars in itertools.product('ab01"{}: ', repeat=n))}
WIDE_VOCAB["</s>"] = len(WIDE_VOCAB)
WIDE_PATTERN = '\\{"[ab]{1,5}": [01]{1,4}(, "[ab]{1,5}": [01]{1,4}){0,2}\\}'


@pytest.fixture(scope="module")
def wide_bindings():
    """The same constraint bound twice: two kernels, so that one's memoized rows cannot mask the other's."""
    constraint = constrained.regex(WIDE_PATTERN)
    return constraint.bind(WIDE_VOCAB), constraint.bind(WIDE_VOCAB)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 23), st.integers(0, 2**16)), min_size=1, max_size=12))
def test_rows_kept_up_to_date_equal_rows_built_afresh(wide_bindings, steps):
    """A row rewritten after a decision (built from its previous row where that is cheaper) is the row a
    separate kernel builds from nothing for the same canvas. Each step decides one position to one of its
    allowed tokens, so the canvas stays feasible and every step has rows to compare."""
    kept, afresh = wide_bindings
    canvas = kept.canvas(24)
    for position, pick in steps:
        allowed = canvas.masks()[position].nonzero().flatten().tolist()
        if canvas.tokens[position] is None:
            canvas.decide({position: allowed[pick % len(allowed)]})
        assert torch.equal(canvas.packed_masks(copy=False), afresh.canvas_from(canvas.tokens).packed_masks())


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), st.integers(0, 23), st.integers(0, 2**16)), min_size=1, max_size=16))
def test_canvases_stay_exact_when_their_kernel_forgets_its_sets(wide_bindings, steps):
    """With no memory to spare, the kernel forgets every set at each decision; two
    canvases decided in turn then hold void numbers half the time, and must sweep again before answering.
    Their masks, feasibility and rows equal those of canvases on a kernel that never forgets."""
    bound, reference = wide_bindings
    forgetful = constrained.lattice.StateSets(bound.dfa, memory_limit=0)
    canvases = [constrained.lattice.Canvas(forgetful, 24) for _ in range(2)]
    epoch = forgetful.epoch
    for second, position, pick in steps:
        canvas = canvases[second]
        allowed = canvas.allowed(position).nonzero().flatten().tolist()
        if canvas.tokens[position] is None:
            canvas.decide({position: allowed[pick % len(allowed)]})
        for each in canvases:
            fresh = reference.canvas_from(each.tokens)
            assert each.feasible() == fresh.feasible()
            assert torch.equal(each.packed_masks(copy=False), fresh.packed_masks())
    assert forgetful.epoch > epoch


def test_reclaim_hands_back_what_the_kernel_held_past_its_limit():
    """Under its limit a kernel keeps its sets; past it, ``reclaim`` drops them to the footprint of a kernel
    just bound (the all-open canvases' memos), in a new epoch."""
    bound = constrained.regex(WIDE_PATTERN).bind(WIDE_VOCAB)
    sets = constrained.lattice.StateSets(bound.dfa)
    sets.precompute_open_canvases()
    just_bound = sets.held_bytes
    canvas = constrained.lattice.Canvas(sets, 24)
    for position in range(24):
        canvas.decide({position: int(canvas.allowed(position).nonzero()[-1])})
    grown = sets.held_bytes
    assert grown > just_bound
    sets.memory_limit = grown
    sets.reclaim()
    assert (sets.held_bytes, sets.epoch) == (grown, 0)
    sets.memory_limit = grown - 1
    sets.reclaim()
    assert (sets.held_bytes, sets.epoch) == (just_bound, 1)
    assert canvas.complete() and bound.accepts_tokens(canvas.tokens)


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    decided=st.dictionaries(st.integers(0, LENGTH - 1), st.integers(0, len(VOCAB) - 1), max_size=2),
    seed=st.integers(0, 2**16),
)
def test_map_decode_is_the_best_admissible_canvas(bound_patterns, enumerated, pattern, decided, seed):
    bound = bound_patterns[pattern]
    logprobs = torch.randn(LENGTH, len(VOCAB), generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    canvas = bound.canvas(LENGTH)
    canvas.decide(decided)
    consistent = [c for c in enumerated[(pattern, True)] if all(c[i] == t for i, t in decided.items())]
    if not consistent:
        with pytest.raises(ConstraintUnsatisfiable):
            canvas.map_decode(logprobs)
        return
    best = canvas.map_decode(logprobs)
    assert tuple(best) in consistent

    def score(tokens):
        return sum(float(logprobs[i, t]) for i, t in enumerate(tokens) if i not in decided)

    assert score(best) == pytest.approx(max(score(c) for c in consistent))


@pytest.mark.parametrize("one_pass", [False, True], ids=["a pass per draw", "draws from one pass"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_sample_decode_draws_admissible_canvases_in_proportion(bound_patterns, enumerated, pattern, one_pass):
    """Every draw is admissible and consistent with the decided token; frequencies follow the product of the
    token probabilities renormalised over admissible canvases (total variation under 0.08 in 2,000 draws),
    whether each draw has its own forward pass or all are traced back from one (``sample_decodes``)."""
    bound = bound_patterns[pattern]
    decided = {0: enumerated[(pattern, True)][0][0]}
    consistent = [c for c in enumerated[(pattern, True)] if c[0] == decided[0]]
    logprobs = (2 * torch.randn(LENGTH, len(VOCAB), generator=torch.Generator().manual_seed(7))).log_softmax(-1)
    canvas = bound.canvas(LENGTH)
    canvas.decide(decided)
    weights = torch.tensor([sum(float(logprobs[i, t]) for i, t in enumerate(c) if i) for c in consistent]).exp()
    expected = dict(zip(consistent, (weights / weights.sum()).tolist()))
    generator = torch.Generator().manual_seed(0)
    if one_pass:
        draws = [tuple(d) for d in itertools.islice(canvas.sample_decodes(logprobs, generator), 2000)]
    else:
        draws = [tuple(canvas.sample_decode(logprobs, generator)) for _ in range(2000)]
    assert set(draws) <= set(consistent)
    observed = {c: draws.count(c) / len(draws) for c in consistent}
    assert sum(abs(observed[c] - expected[c]) for c in consistent) / 2 < 0.08


def test_sample_decode_on_an_infeasible_canvas_raises(bound_patterns):
    canvas = bound_patterns["(ab)+c?"].canvas(LENGTH)
    canvas.decide({0: VOCAB["c"]})
    with pytest.raises(ConstraintUnsatisfiable):
        canvas.sample_decode(torch.zeros(LENGTH, len(VOCAB)))


def test_non_final_blocks_chain_through_end_state(bound_patterns):
    bound = bound_patterns["a(b|a)*c"]
    first = bound.canvas(3, final=False)
    first.decide({0: 0, 1: 1, 2: 0})  # "aba": not accepted yet, but live
    assert first.feasible()
    second = bound.canvas(2, start=first.end_state())
    assert torch.nonzero(second.allowed(0)).flatten().tolist() == [0, 1, 2, 3, 5]  # a, b, ab, c, bc
    second.decide({0: 3, 1: END})
    assert second.complete()


def test_padding_only_after_the_text(bound_patterns):
    canvas = bound_patterns["a?b?c?"].canvas(3)
    canvas.decide({0: END})
    assert canvas.masks()[1:].nonzero()[:, 1].unique().tolist() == [END]


@pytest.mark.parametrize("final", [True, False], ids=["final", "not final"])
@pytest.mark.parametrize("length", [1, 3, LENGTH, 40])
def test_precomputed_open_canvases_change_no_mask(bound_patterns, length, final):
    """Binding fills the memos with the all-open canvas; any canvas's masks, all open or partly decided, are
    the same as from a kernel that never did."""
    for bound in bound_patterns.values():
        warm_canvas = bound.canvas(length, final=final)
        cold_canvas = constrained.lattice.Canvas(constrained.lattice.StateSets(bound.dfa), length, final=final)
        assert torch.equal(warm_canvas.packed_masks(), cold_canvas.packed_masks())
        for canvas in (warm_canvas, cold_canvas):
            canvas.decide({0: VOCAB["a"]})
        assert torch.equal(warm_canvas.masks(), cold_canvas.masks())


def test_packed_masks_round_trip(bound_patterns):
    """Packed and bool masks agree on a fresh canvas and after every incremental change, decided rows too."""
    canvas = bound_patterns["(ab|c)+"].canvas(LENGTH)

    def unpacked() -> torch.Tensor:
        packed = canvas.packed_masks()
        assert packed.dtype == torch.int32 and packed.shape == (LENGTH, 1)
        by_bits = torch.tensor([[(int(word) >> b) & 1 for b in range(len(VOCAB))] for word in packed[:, 0]],
                               dtype=torch.bool)
        assert torch.equal(constrained.lattice.unpack_masks(packed, len(VOCAB)), by_bits)
        return by_bits

    for changes in ({}, {1: VOCAB["ab"]}, {3: VOCAB["c"], 4: END}, {1: None}, {0: VOCAB["a"]}):
        canvas.decide(changes)
        assert torch.equal(unpacked(), canvas.masks())


@pytest.mark.parametrize("bad, error", [
    ({LENGTH: VOCAB["a"]}, IndexError), ({-1: VOCAB["a"]}, IndexError),
    ({2: len(VOCAB)}, ValueError), ({2: -1}, ValueError), ({"2": VOCAB["a"]}, TypeError),
])
def test_a_bad_change_is_refused_and_leaves_the_canvas_as_it_was(bound_patterns, bad, error):
    """Every change is checked before any applies: the good change beside the bad one is not made either."""
    canvas = bound_patterns["(ab|c)+"].canvas(LENGTH)
    canvas.decide({0: VOCAB["ab"]})
    before = canvas.tokens.copy(), canvas.masks()
    with pytest.raises(error):
        canvas.decide({1: VOCAB["c"], **bad})
    assert canvas.tokens == before[0] and torch.equal(canvas.masks(), before[1])


def test_decide_takes_any_mapping_of_integer_like_keys(bound_patterns):
    """numpy integers (as a sampler's tensors give them) and read-only mappings decide like plain ints."""
    import types

    import numpy as np

    by_numpy, by_int = (bound_patterns["(ab|c)+"].canvas(LENGTH) for _ in range(2))
    by_numpy.decide(types.MappingProxyType({np.int64(1): np.int32(VOCAB["ab"]), np.int16(3): None}))
    by_int.decide({1: VOCAB["ab"]})
    assert by_numpy.tokens == by_int.tokens and all(type(t) in (int, type(None)) for t in by_numpy.tokens)
    assert torch.equal(by_numpy.masks(), by_int.masks())


def test_masks_in_place_are_the_canvas_buffer_kept_current(bound_patterns):
    """``copy=False`` hands out the canvas's own buffer: equal to a copy, rewritten in place by the next call."""
    canvas = bound_patterns["(ab|c)+"].canvas(LENGTH)
    view = canvas.packed_masks(copy=False)
    assert torch.equal(view, canvas.packed_masks())
    for changes in ({1: VOCAB["ab"]}, {3: VOCAB["c"]}, {1: None}):
        canvas.decide(changes)
        assert canvas.packed_masks(copy=False).data_ptr() == view.data_ptr()
        assert torch.equal(view, canvas.packed_masks())
    copied = canvas.packed_masks()
    canvas.decide({0: VOCAB["a"]})
    canvas.packed_masks(copy=False)
    assert not torch.equal(copied, view)  # the copy kept the old masks


def test_unpacking_covers_every_bit_of_a_word():
    """Bit 31 (the sign bit of an int32 word) and tokens past the first word unpack like any other."""
    packed = torch.tensor([[-(2**31) | 1, 2]], dtype=torch.int32)
    mask = constrained.lattice.unpack_masks(packed, 40)
    assert mask.shape == (1, 40) and mask[0].nonzero().flatten().tolist() == [0, 31, 33]


def test_batch_masks_stack_canvases(bound_patterns):
    bound = bound_patterns["(ab|c)+"]
    canvases = [bound.canvas(LENGTH), bound.canvas_from([3, None, None, None, None])]
    batch = constrained.lattice.batch_masks(canvases)
    assert batch.shape == (2, LENGTH, len(VOCAB))
    assert torch.equal(batch[1], canvases[1].masks())


_DECODE_PEAK_SCRIPT = """
import ctypes
ctypes.CDLL("libc.so.6").mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD at the most glibc's own rule raises it to
import numpy as np, torch
torch.set_num_threads(1)
from constrained.lattice import Canvas, StateSets
from constrained.token_dfa import TokenDFA
states, classes, per_state, length = 10_000, 300, 16, 160
rng = np.random.default_rng(0)
dfa = TokenDFA(np.repeat(np.arange(states, dtype=np.int32), per_state),
               np.concatenate([rng.choice(classes, per_state, replace=False) for _ in range(states)]).astype(np.int32),
               rng.integers(0, states, states * per_state, dtype=np.int32), np.arange(classes, dtype=np.int32),
               np.ones(states, dtype=bool), 0, 0, states, classes)
canvas = Canvas(StateSets(dfa), length)
logprobs = torch.from_numpy(rng.standard_normal((length, classes)))
dfa.edges
before = int(open("/proc/self/statm").read().split()[1]) * 4096
canvas.map_decode(logprobs)
# VmHWM, this process's own peak: ru_maxrss after an exec starts from the parent's size
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
print(peak - before, length * (states + classes) * 8)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's allocator and /proc")
def test_a_decode_holds_about_its_scores_not_the_heap_its_temporaries_leave():
    """The decode keeps a row of scores per position while it makes and frees edge-sized temporaries; kept in
    many small tensors between them, those rows fragment the heap to several times their size (gigabytes on a SQL
    automaton). Its peak resident growth stays within a few times the scores it keeps."""
    run = subprocess.run([sys.executable, "-c", _DECODE_PEAK_SCRIPT], capture_output=True, text=True, timeout=120,
                         check=True)
    grown, kept = map(int, run.stdout.split())
    assert grown < 6 * kept, f"the decode grew the process by {grown >> 20} MB for {kept >> 20} MB of scores"
