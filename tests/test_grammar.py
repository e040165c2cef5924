"""``constrained.grammar``: any Lark grammar as a constraint, judged against Lark's own parser.

The masks generate only texts Lark parses (sampled from the token automaton), every text the grammar derives
within the depth bound is in the masks (drawn by a random expander of the grammar written here, independently
of the compiler), ``accepts`` is Lark's membership test even past the bound, what the compiler cannot honour
is a typed error naming the rule or terminal, and generation on the tiny random models returns texts that parse.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark, Token, Tree
from lark.grammar import NonTerminal, Terminal
from lark.load_grammar import load_grammar

import constrained
from constrained.cli import main
from constrained.errors import CompileTimeout, ConstraintUnsatisfiable, GrammarError
from constrained.generation import generate
from constrained.grammar import shipped_grammar
from constrained.grammar_regex import regular_equivalents
from constrained.testing import byte_tokenizer, diffusion_gemma, masked_lm

torch.set_num_threads(1)
SHIPPED = ["arithmetic", "c_like", "json"]
DEPTH = 1
MAX_WHITESPACE = 2


@cache
def constraint(name: str, depth: int = DEPTH, parser: str = "earley") -> constrained.Constraint:
    return constrained.grammar(shipped_grammar(name), depth=depth, max_whitespace=MAX_WHITESPACE, parser=parser)


@cache
def tokenizer():
    return byte_tokenizer(320)


@cache
def bound(name: str, parser: str = "earley") -> constrained.BoundConstraint:
    return constraint(name, parser=parser).bind(tokenizer())


@cache
def lark(name: str, parser: str = "earley") -> Lark:
    """Lark's own parser (its defaults, or LALR), built here from the grammar text alone."""
    return Lark(shipped_grammar(name), parser=parser)


def parses(name: str, text: str, parser: str = "earley") -> bool:
    try:
        lark(name, parser).parse(text)
    except Exception:
        return False
    return True


# ------------------------------------------------------------------------------------------- soundness


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(SHIPPED), parser=st.sampled_from(["earley", "lalr"]), length=st.integers(3, 40),
       seed=st.integers(0, 2**31 - 1), sharpness=st.sampled_from([0.0, 2.0, 6.0]))
def test_every_text_the_masks_generate_parses(name, parser, length, seed, sharpness):
    masks = bound(name, parser)
    generator = torch.Generator().manual_seed(seed)
    logprobs = torch.log_softmax(torch.randn(length, masks.vocab_size, generator=generator) * sharpness, dim=-1)
    tokens = masks.canvas(length).sample_decode(logprobs, generator)
    text = masks.decode(tokens)
    assert parses(name, text, parser), text
    assert masks.accepts_tokens(tokens)


# ------------------------------------------------------------------------------------------- completeness


class Expander:
    """Random derivations of a Lark grammar, nesting at most ``depth`` levels, written out with whitespace.

    Depth as the constraint counts it: entering a rule already open since the last re-entry (or the start)
    costs one level and starts the count of open rules afresh. Between two tokens goes a run of 0 to
    ``MAX_WHITESPACE`` characters of the ``%ignore`` class, at least one where the tokens would otherwise read
    as one (two word characters, ``-`` ``-``, ``/`` ``*``): the spelling the masks use.
    """

    GLUE = {("w", "w"), ("-", "-"), ("/", "*")}

    def __init__(self, text: str, data: st.DataObject) -> None:
        definitions, _ = load_grammar(text, "<grammar>", [], False)
        self.rules = {name: tree for name, _params, tree, _options in definitions.rule_defs}
        self.terminals = {t.name: t for t in Lark(text).terminals}
        self.data = data

    def text(self, depth: int) -> str | None:
        tokens = self.rule("start", depth, frozenset())
        if tokens is None:
            return None
        out = ""
        for token in tokens:
            gap = self.data.draw(st.text(" \t\n", max_size=MAX_WHITESPACE))
            if out and (self.kind(out[-1]), self.kind(token[0])) in self.GLUE and not gap:
                gap = " "
            out += (gap if out else "") + token
        return out

    @staticmethod
    def kind(char: str) -> str:
        return "w" if char.isalnum() or char == "_" else char

    def rule(self, name: str, budget: int, stack: frozenset[str]) -> list[str] | None:
        if name in stack:
            if budget == 0:
                return None
            budget, stack = budget - 1, frozenset()
        return self.node(self.rules[name], budget, stack | {name})

    def node(self, node, budget: int, stack: frozenset[str]) -> list[str] | None:
        if isinstance(node, NonTerminal):
            return self.rule(node.name, budget, stack)
        if isinstance(node, Terminal):
            return [self.terminal(self.terminals[node.name].pattern.to_regexp())]
        assert isinstance(node, Tree), node
        if node.data == "expansions":  # pick alternatives in a random order until one fits the budget
            order = self.data.draw(st.permutations(range(len(node.children))))
            for index in order:
                tokens = self.node(node.children[index], budget, stack)
                if tokens is not None:
                    return tokens
            return None
        if node.data == "expansion":
            tokens: list[str] = []
            for child in node.children:
                part = self.node(child, budget, stack)
                if part is None:
                    return None
                tokens += part
            return tokens
        if node.data in ("value", "alias"):
            return self.node(node.children[0], budget, stack)
        if node.data == "literal":
            return [self.literal(node.children[0])]
        if node.data in ("maybe", "expr"):
            op = "?" if node.data == "maybe" else str(node.children[1])
            low, high = {"?": (0, 1), "*": (0, 3), "+": (1, 3)}[op]
            tokens = []
            for _ in range(self.data.draw(st.integers(low, high))):
                part = self.node(node.children[0], budget, stack)
                if part is None:
                    return None if low else tokens
                tokens += part
            return tokens
        raise AssertionError(f"unexpected grammar node {node.data}")

    def literal(self, token: Token) -> str:
        text = str(token)
        if token.type == "STRING":
            return eval(text)  # a Lark string literal is a Python one
        return self.terminal(text[1:text.rindex("/")])

    def terminal(self, pattern: str) -> str:
        if pattern in regular_equivalents():  # hypothesis cannot draw from lookbehinds; the test below checks it
            pattern = regular_equivalents()[pattern]
        printable = st.characters(min_codepoint=32, max_codepoint=126)
        return self.data.draw(st.from_regex(re.compile(pattern), fullmatch=True, alphabet=printable))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(SHIPPED), data=st.data())
def test_every_text_within_the_depth_is_in_the_masks(name, data):
    text = Expander(shipped_grammar(name), data).text(DEPTH)
    assert text is not None
    assert parses(name, text), text  # the expander writes the grammar's texts
    assert constraint(name).matches_pattern(text), text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(SHIPPED), data=st.data(), cut=st.integers(0, 200))
def test_accepts_is_the_grammars_membership_past_the_depth_too(name, data, cut):
    text = Expander(shipped_grammar(name), data).text(DEPTH + 2)
    for candidate in (text, text[:cut] + text[cut + 1:]):
        assert constraint(name).accepts(candidate) == parses(name, candidate), candidate


def test_the_depth_bound_is_exact_and_declared():
    arithmetic = constraint("arithmetic")
    nested = [("(" * level) + "x" + (")" * level) for level in range(4)]
    assert [arithmetic.matches_pattern(text) for text in nested] == [True, True, False, False]
    assert all(arithmetic.accepts(text) for text in nested)  # the grammar's texts, deep ones included
    assert not arithmetic.accepts("(x") and not arithmetic.accepts("x +")
    assert any("nesting deeper than depth 1" in entry for entry in arithmetic.beyond_masks)
    assert arithmetic.kind == "grammar" and arithmetic.post_checked == ("the grammar (Lark earley parse)",)
    flat = constrained.grammar('start: "a" ("," "a")*')  # nothing recursive, no whitespace: masks cover it
    assert flat.beyond_masks == () and flat.accepts("a,a") and not flat.accepts("a,")


def test_comments_and_wide_characters_are_declared_beyond_the_masks():
    c_like = constraint("c_like")
    assert c_like.accepts("int x = 1; // one\nx += 2;") and not c_like.matches_pattern("int x = 1; // one\n")
    assert any("CPP_COMMENT" in entry for entry in c_like.beyond_masks)
    json_text = constraint("json")
    assert json_text.accepts('"caf\u00e9"') and not json_text.matches_pattern('"caf\u00e9"')
    assert any("beyond ASCII" in entry and "STRING" in entry for entry in json_text.beyond_masks)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='a"\\\n', max_size=12))
def test_escaped_string_equivalent_matches_as_larks_lexer_does(tail):
    (lark_pattern, equivalent), = regular_equivalents().items()
    text = '"' + tail
    first, second = re.match(lark_pattern, text), re.match(equivalent, text)
    assert (first and first.group(0)) == (second and second.group(0))


def test_escaped_string_from_common_compiles():
    strings = constrained.grammar('start: ESCAPED_STRING ("," ESCAPED_STRING)*\n'
                                  "%import common.ESCAPED_STRING\n%import common.WS\n%ignore WS")
    assert strings.matches_pattern(r'"a\"b", "c\\"') and not strings.matches_pattern('"a"b"')


def test_lalr_parser_is_the_applications_language():
    json_text = constraint("json", parser="lalr")
    assert json_text.accepts('{"a": [1, 2.5e3, null]}') and not json_text.accepts('{"a": 01}')
    assert json_text.post_checked == ("the grammar (Lark lalr parse)",)


# ------------------------------------------------------------------------------------------- typed errors


@pytest.mark.parametrize("text, named, what", [
    ('start: W\nW: /(?=a)[a-z]+/', "W", "lookahead"),
    ('start: W\nW: /(?<=a)b/', "W", "lookahead or lookbehind"),
    ('start: W\nW: /(a)\\1/', "W", "backreference"),
    ('start: W\nW: /".*?"/', "W", "lazy repetition"),
    ('start: "a" /b(?!c)d/', "anonymous", "negative lookahead"),
    ('%declare INDENT\nstart: INDENT "a"', "INDENT", "%declare"),
    ('_pair{x}: x "," x\nstart: _pair{"a"}', "_pair", "template"),
])
def test_what_the_masks_cannot_honour_is_a_named_error(text, named, what):
    with pytest.raises(GrammarError, match=re.escape(named)) as raised:
        constrained.grammar(text)
    assert what in str(raised.value)


def test_bad_grammars_and_bounds_are_typed_errors(tmp_path: Path):
    with pytest.raises(GrammarError, match="does not load"):
        constrained.grammar("start: (")
    with pytest.raises(GrammarError, match="does not load"):
        constrained.grammar('start: "a"', start="missing")
    with pytest.raises(GrammarError, match="not LALR"):
        constrained.grammar('start: a | b\na: "x"\nb: "x"', parser="lalr")
    with pytest.raises(GrammarError, match="parser must be"):
        constrained.grammar('start: "a"', parser="cyk")
    with pytest.raises(GrammarError, match="exceeds 5000 characters"):
        constrained.grammar(shipped_grammar("arithmetic"), depth=6, max_regex_chars=5_000)
    with pytest.raises(CompileTimeout, match="ran out of time"):
        constrained.grammar(shipped_grammar("c_like"), depth=3, compile_timeout_s=0.0)
    with pytest.raises(GrammarError, match="cannot read"):
        constrained.grammar(tmp_path / "absent.lark")
    with pytest.raises(GrammarError, match="no shipped grammar 'cobol'.*arithmetic, c_like, json, sql"):
        shipped_grammar("cobol")


def test_overrides_tie_a_rule_to_listed_spellings():
    text = 'start: name "=" NUMBER\nname: /(?!let)[a-z]+/\n%import common.NUMBER\n%ignore " "'
    with pytest.raises(GrammarError, match="override"):  # a keyword-excluding lookahead has no regular form
        constrained.grammar(text)
    tied = constrained.grammar(text, overrides={"name": ["width", "height"]})
    assert tied.matches_pattern("width = 3") and not tied.matches_pattern("depth = 3")
    assert tied.accepts("depth = 3")  # the grammar's text, which the masks leave out, and say so
    assert "rule name spelled other than its 2 listed spellings" in tied.beyond_masks


def test_a_grammar_file_and_loops_with_counts(tmp_path: Path):
    path = tmp_path / "pins.lark"
    path.write_text('start: DIGIT ~ 4 ("-" "a".."c" ~ 1..2)?\n%import common.DIGIT\n')
    pins = constrained.grammar(path)
    assert pins.matches_pattern("1234") and pins.matches_pattern("1234-ab")
    assert not pins.matches_pattern("123") and not pins.matches_pattern("1234-abc")


# ------------------------------------------------------------------------------------------- generation

OPTIONS = {"gemma": {"steps": 4}, "bert": {"steps": 4, "canvas_length": 16, "temperature": 1.0}}


@cache
def model(kind: str):
    if kind == "gemma":
        return diffusion_gemma(len(tokenizer()), canvas_length=16)
    return masked_lm(len(tokenizer()))


@pytest.mark.parametrize("kind", ["gemma", "bert"])
@pytest.mark.parametrize("name", SHIPPED)
def test_generation_on_random_models_returns_texts_that_parse(kind, name):
    texts = []
    for seed in range(3):
        try:
            result = generate(constraint(name), "write one", model=model(kind), tokenizer=tokenizer(),
                              max_new_tokens=32, seed=seed, **OPTIONS[kind])
        except ConstraintUnsatisfiable as failure:  # a random model may exhaust its retries; never a wrong text
            assert failure.partial is not None
            continue
        assert parses(name, result.text), result.text
        assert constraint(name).accepts(result.text) and len(result.token_ids) <= 32
        texts.append(result.text)
    assert texts, "no seed produced a text"


def test_cli_grammar_command_writes_a_text_of_the_grammar(capsys, tmp_path: Path):
    path = tmp_path / "sums.lark"
    path.write_text('start: INT ("+" INT)*\n%import common.INT\n')
    assert main(["grammar", "--grammar", str(path), "--max-new-tokens", "12", "--json", "two plus two"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["command"] == "grammar" and re.fullmatch(r"[0-9]+(\+[0-9]+)*", report["text"]), report
    assert main(["grammar", "--grammar", "nonesuch", "--json", "x"]) == 1
    assert "GrammarError" in capsys.readouterr().out
