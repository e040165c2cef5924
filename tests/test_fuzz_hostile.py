"""Hostile input, generated: schemas, patterns, SQL scripts and puzzles that try to blow up, hang or escape.

Each input runs in a forked child under a wall-clock bound and an address-space bound (``MEMORY_HEADROOM`` above
the parent's), with its working folder, ``HOME`` and automaton cache in a fresh temporary folder. The property,
for every input: the child comes back in time with a result or a typed :class:`ConstrainedError`; never a crash
(a signal, ``MemoryError``), a hang, an untyped exception, or a file left in its folder.

The default run tries a few inputs of each kind (``FAST_EXAMPLES``); ``-m slow`` runs ``SLOW_EXAMPLES`` each.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import resource
import string
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST_EXAMPLES = 12
SLOW_EXAMPLES = 300
#: Address space a child may add to what it inherits from the parent.
MEMORY_HEADROOM = 2 << 30
#: Wall-clock bounds (seconds) per kind of input: the library's own bound plus the child's start and margin.
SCHEMA_S = 15.0  # the compiler's time budget is 5 s; the meta-schema check comes before it
PATTERN_S = 15.0  # automaton builds are bounded to BUILD_S below
SCRIPT_S = 10.0  # scripts are bounded to SCRIPT_BOUND_S below
PUZZLE_S = 30.0
BUILD_S = 5.0
SCRIPT_BOUND_S = 2.0


# ---- the bounded child


def _child(target: Callable[[Any], str], argument: Any, folder: str, sender: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + MEMORY_HEADROOM
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.chdir(folder)
    os.environ.update(HOME=folder, TMPDIR=folder, CONSTRAINED_CACHE=str(Path(folder) / ".cache"))
    try:
        sender.send(("result", target(argument)))
    except MemoryError:
        sender.send(("crash", "MemoryError"))
    except Exception as error:  # noqa: BLE001 -- judged by the parent, which knows the typed family
        from constrained.errors import ConstrainedError

        kind = "typed" if isinstance(error, ConstrainedError) else "untyped"
        sender.send((kind, f"{type(error).__name__}: {error}"[:500] + "\n" + traceback.format_exc()[-1500:]))
    finally:
        sender.close()


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def run_bounded(target: Callable[[Any], str], argument: Any, seconds: float) -> tuple[str, str]:
    """``target(argument)`` in a bounded child: ``("result" | "typed", detail)``; fails the test otherwise."""
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as folder:
        receiver, sender = context.Pipe(duplex=False)
        # not a daemon: the automaton build forks a bounded child of its own (this one is killed below anyway)
        process = context.Process(target=_child, args=(target, argument, folder, sender))
        started = time.monotonic()
        process.start()
        sender.close()
        try:
            finished = receiver.poll(seconds)
            outcome = receiver.recv() if finished else ("hang", f"no answer within {seconds} s")
        except EOFError:
            outcome = ("crash", f"the child died (exit code {process.exitcode})")
        finally:
            process.kill()
            process.join()
            receiver.close()
        elapsed = time.monotonic() - started
        left = sorted(path.name for path in Path(folder).iterdir() if path.name != ".cache")
    kind, detail = outcome
    assert kind in ("result", "typed"), f"{kind} on {argument!r} after {elapsed:.1f} s: {detail}"
    assert not left, f"{argument!r} left files in its folder: {left}"
    return kind, detail


# ---- targets (run in the child)


def compile_schema(schema: Any) -> str:
    from constrained.json_schema import json_schema
    from constrained.prompts import json_prompt

    constraint = json_schema(schema)
    prompt = json_prompt(schema, "some text")
    assert len(prompt) < 2200, f"a prompt of {len(prompt)} characters"
    return repr(constraint)


def compile_pattern(pattern: str) -> str:
    """What :func:`constrained.regex` does, with the automaton build bounded to ``BUILD_S``."""
    from constrained.constraint import Constraint
    from constrained.regex_screen import screen

    constraint = Constraint(screen(pattern), compile_timeout_s=BUILD_S).compile()
    constraint.accepts("abc")
    return repr(constraint)


def load_sql(script: str) -> str:
    """What ``constrained sql --db script.sql`` does, with the script's time bounded to ``SCRIPT_BOUND_S``."""
    from constrained.text_to_sql import database

    database.SCRIPT_TIMEOUT_S = SCRIPT_BOUND_S
    connection = database.load_script(script.replace("{dir}", os.getcwd()))
    try:
        return repr(database.load_schema(connection).table_names)
    finally:
        connection.close()


def solve_puzzle(puzzle: str) -> str:
    from constrained.puzzles.solver import UniformScorer
    from constrained.puzzles.sudoku import solve_sudoku

    side = math.isqrt(len(puzzle)) or 9
    return solve_sudoku(puzzle, scorer=UniformScorer(side, seed=0), max_passes=200).text


# ---- strategies

_NAMES = st.text(alphabet=string.ascii_letters + "_-$/~\"\\é", min_size=0, max_size=6)
_COUNTS = st.one_of(st.integers(0, 3), st.integers(0, 10**6), st.sampled_from([-1, 2**63]))
_JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                  st.lists(st.integers(), max_size=3))
_PATTERN_PIECES = st.sampled_from([
    "a", "b", ".", "\\d", "\\w", "[^\"]", "[a-z]", "(", ")", "(?:", "|", "*", "+", "?", "{2}", "{0,100}", "{1000}",
    "{100000}", "^", "$", "\\A", "\\z", "\\b", "\\1", "(?P<x>", "(?P=x)", "(?=", "(?!", "(?<=", "[", "]", "\\",
    "\\x{10FFFF}", "\\p{Greek}", "(?i)", "(?m)", "é", "{", "}", ",",
])


def _pattern() -> st.SearchStrategy[str]:
    return st.one_of(st.lists(_PATTERN_PIECES, max_size=12).map("".join), st.text(max_size=12))


def _schema() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.booleans(),
        st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array", "any"]),
            "minLength": _COUNTS, "maxLength": _COUNTS, "minimum": st.integers(-10**30, 10**30),
            "maximum": st.integers(-10**30, 10**30), "multipleOf": st.sampled_from([1, 0.5, 3, 0]),
            "pattern": _pattern(), "format": st.sampled_from(["date", "email", "uuid", "nonsense"]),
            "enum": st.one_of(st.lists(_JUNK, max_size=4), st.integers(0, 6000).map(lambda n: list(range(n)))),
            "const": _JUNK, "$ref": st.sampled_from(["#", "#/$defs/a", "#/$defs/missing", "other.json", "#/x/~2"]),
        }),
        _JUNK,
    )

    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["object", "array", ["object", "array", "null"]]),
            "properties": st.dictionaries(_NAMES, children, max_size=4),
            "required": st.lists(_NAMES, max_size=3), "additionalProperties": children,
            "patternProperties": st.dictionaries(_pattern(), children, max_size=2),
            "items": st.one_of(children, st.lists(children, max_size=3)), "prefixItems": st.lists(children, max_size=2),
            "minItems": _COUNTS, "maxItems": _COUNTS, "anyOf": st.lists(children, max_size=3),
            "oneOf": st.lists(children, max_size=3), "allOf": st.lists(children, max_size=3), "not": children,
            "$defs": st.fixed_dictionaries({"a": children}), "if": children, "then": children,
        })

    schema = st.recursive(leaves, containers, max_leaves=12)
    nested = st.builds(_nest, schema, st.integers(1, 60), st.sampled_from(["items", "properties", "anyOf", "$ref"]))
    return st.one_of(schema, nested, schema.map(lambda s: __import__("json").dumps(s)))


def _nest(inner: Any, depth: int, how: str) -> Any:
    """``inner`` wrapped ``depth`` times: deep nesting is where sizes multiply. The document itself stays small
    (no subtree is shared twice, which would make it exponential for every reader): the doubling is the
    references' (``x`` and ``y`` both name the level below)."""
    schema = inner
    defs: dict = {}
    for level in range(depth):
        if how == "items":
            schema = {"type": "array", "maxItems": 2, "items": schema}
        elif how == "properties":
            schema = {"type": "object", "properties": {"a": schema, "b": {"type": "string"}}}
        elif how == "anyOf":
            schema = {"anyOf": [schema, {"type": "array", "items": {"type": "integer"}}]}
        else:
            defs[f"d{level}"] = schema
            schema = {"type": "object", "properties": {"x": {"$ref": f"#/$defs/d{level}"},
                                                       "y": {"$ref": f"#/$defs/d{level}"}}}
    return {**schema, "$defs": defs} if defs and isinstance(schema, dict) else schema


_SQL_STATEMENTS = st.sampled_from([
    "CREATE TABLE t(a INTEGER, b TEXT)", "CREATE TABLE IF NOT EXISTS u(x)", "INSERT INTO t VALUES (1, 'x')",
    "CREATE VIEW v AS SELECT * FROM t", "CREATE INDEX i ON t(a)", "DROP TABLE t", "BEGIN", "COMMIT", "ROLLBACK",
    "ATTACH 'evil.db' AS e", "ATTACH '{dir}/evil.db' AS e", "ATTACH 'file:evil.db?mode=rwc' AS e",
    "CREATE TABLE e.x(y)", "VACUUM", "VACUUM INTO 'copy.db'", "VACUUM INTO '{dir}/copy.db'", "DETACH e",
    "PRAGMA journal_mode=WAL", "PRAGMA table_info(t)", "PRAGMA foreign_keys=ON", "PRAGMA writable_schema=1",
    "PRAGMA temp_store_directory='{dir}'", "PRAGMA mmap_size=1000000", "SELECT load_extension('x')",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
    "CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 100000) "
    "SELECT randomblob(3000) AS b FROM c",
    "CREATE TRIGGER g AFTER INSERT ON t BEGIN INSERT INTO t VALUES (NEW.a + 1, 'y'); END",
    "SELECT zeroblob(1000000000)", "CREATE VIRTUAL TABLE f USING fts5(x)", "REINDEX", "ANALYZE",
])
_SQL = st.one_of(st.lists(st.one_of(_SQL_STATEMENTS, st.text(max_size=20)), min_size=1, max_size=6).map(";\n".join),
                 st.text(max_size=40))
_PUZZLE = st.one_of(
    st.text(alphabet="123456789.", min_size=81, max_size=81),
    st.text(alphabet="1234.", min_size=16, max_size=16),
    st.lists(st.sampled_from("123456789" + "." * 9), min_size=81, max_size=81).map("".join),
    st.text(max_size=90),
)

_CASES = {"schema": (_schema(), compile_schema, SCHEMA_S), "pattern": (_pattern(), compile_pattern, PATTERN_S),
          "sql": (_SQL, load_sql, SCRIPT_S), "puzzle": (_PUZZLE, solve_puzzle, PUZZLE_S)}
#: What each target imports, imported once in the parent so that a forked child starts in milliseconds.
_MODULES = {"schema": ["constrained.json_schema", "constrained.prompts"], "pattern": ["constrained.constraint"],
            "sql": ["constrained.text_to_sql.database"],
            "puzzle": ["constrained.puzzles.solver", "constrained.puzzles.sudoku"]}


def _fuzz(kind: str, examples: int) -> None:
    strategy, target, seconds = _CASES[kind]
    for module in _MODULES[kind]:
        importlib.import_module(module)

    # no shrinking: each try costs a child process, and the failing input is reported whole
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def property_holds(argument: Any) -> None:
        run_bounded(target, argument, seconds)

    property_holds()


@pytest.mark.parametrize("kind", sorted(_CASES))
def test_hostile_inputs_get_a_result_or_a_typed_error_in_bounds(kind):
    _fuzz(kind, FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(_CASES))
def test_many_hostile_inputs_get_a_result_or_a_typed_error_in_bounds(kind):
    _fuzz(kind, SLOW_EXAMPLES)


def test_the_child_reports_what_it_must():
    """The harness itself: an untyped error, a hang and a stray file each fail the property."""
    with pytest.raises(AssertionError, match="untyped"):
        run_bounded(_raise_untyped, None, 10)
    with pytest.raises(AssertionError, match="hang"):
        run_bounded(time.sleep, 5, 0.5)
    with pytest.raises(AssertionError, match="left files"):
        run_bounded(_write_file, None, 10)


def _raise_untyped(_: Any) -> str:
    raise KeyError("untyped")


def _write_file(_: Any) -> str:
    Path("stray.txt").write_text("x")
    return "wrote"
