"""``generate_sql`` around the generation loop: what it asks of the loop, and what it does when that fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from constrained.errors import ConstraintUnsatisfiable
from constrained.text_to_sql import generate as generate_module
from constrained.text_to_sql import generate_sql

DDL = """CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER, title TEXT, singer_id INTEGER, year INTEGER);"""
JOIN = "FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
SCOPED = f"SELECT T2.title {JOIN} WHERE T1.age > 30"
OUT_OF_SCOPE = f"SELECT T3.title {JOIN}"  # what a schema-wide run can end in: T3 is declared nowhere


class ScriptedLoop:
    """Stands in for the generation loop: the first ``failures`` calls raise, as a run whose every admissible
    draw failed the commit check does (with ``partial``); later calls answer ``answer``."""

    def __init__(self, failures: int, partial: str | None, answer: str = SCOPED) -> None:
        self.failures = failures
        self.partial = partial
        self.answer = answer
        self.constraints = []
        self.options = []

    def __call__(self, constraint, prompt, **kwargs):
        self.constraints.append(constraint)
        self.options.append(kwargs)
        if len(self.constraints) <= self.failures:
            raise ConstraintUnsatisfiable("every admissible draw failed the commit check", partial=self.partial)
        return SimpleNamespace(text=self.answer)


def test_a_failed_run_is_retried_with_its_own_from_clause_decided(monkeypatch):
    loop = ScriptedLoop(failures=1, partial=OUT_OF_SCOPE)
    monkeypatch.setattr(generate_module, "generate", loop)
    assert generate_sql("which concerts had singers over 30?", DDL).sql == SCOPED
    schema_wide, scoped = loop.constraints
    assert schema_wide.matches_pattern(OUT_OF_SCOPE)  # the schema-wide masks allow it; the check refuses it
    assert scoped.matches_pattern(SCOPED) and not scoped.matches_pattern(OUT_OF_SCOPE)


def test_without_a_usable_from_clause_single_tables_follow_by_relevance(monkeypatch):
    loop = ScriptedLoop(failures=2, partial="SELECT T3.title FROM", answer="SELECT title FROM concert")
    monkeypatch.setattr(generate_module, "generate", loop)
    assert generate_sql("which concert titles are there?", DDL).sql == "SELECT title FROM concert"
    _, first_table, second_table = loop.constraints
    assert first_table.matches_pattern("SELECT title FROM concert")
    assert second_table.matches_pattern("SELECT name FROM singer")


def test_a_run_that_fails_every_attempt_raises(monkeypatch):
    loop = ScriptedLoop(failures=99, partial=OUT_OF_SCOPE)
    monkeypatch.setattr(generate_module, "generate", loop)
    with pytest.raises(ConstraintUnsatisfiable, match="3 attempts"):
        generate_sql("which concerts?", DDL, attempts=3)
    assert len(loop.constraints) == 3
    with pytest.raises(ValueError):
        generate_sql("which concerts?", DDL, attempts=0)


def test_the_schema_wide_run_draws_no_fallback_blocks_unless_asked(monkeypatch):
    """Its draws each cost a pass over the large automaton; the FROM-first runs after it keep the sampler's own."""
    loop = ScriptedLoop(failures=1, partial=OUT_OF_SCOPE)
    monkeypatch.setattr(generate_module, "generate", loop)
    generate_sql("which concerts had singers over 30?", DDL, seed=3)
    schema_wide, scoped = loop.options
    assert schema_wide["fallback_draws"] == 0 and "fallback_draws" not in scoped and scoped["seed"] == 3
    loop = ScriptedLoop(failures=1, partial=OUT_OF_SCOPE)
    monkeypatch.setattr(generate_module, "generate", loop)
    generate_sql("which concerts had singers over 30?", DDL, fallback_draws=8)
    assert [options["fallback_draws"] for options in loop.options] == [8, 8]
