"""``generate_sql`` around the generation loop: what it asks of the loop, and what it does when that fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from constrained.errors import ConstraintUnsatisfiable
from constrained.text_to_sql import generate as generate_module
from constrained.text_to_sql import generate_sql

DDL = "CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);"
NESTED = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"
FLAT = "SELECT name FROM singer WHERE age > 30"


class ScriptedLoop:
    """Stands in for the generation loop: raises for the first ``failures`` calls, then answers ``FLAT``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.constraints = []

    def __call__(self, constraint, prompt, **kwargs):
        self.constraints.append(constraint)
        if len(self.constraints) <= self.failures:
            raise ConstraintUnsatisfiable("every admissible draw failed the commit check")
        return SimpleNamespace(text=FLAT)


def test_a_failed_run_is_retried_without_the_loosened_brackets(monkeypatch):
    loop = ScriptedLoop(failures=1)
    monkeypatch.setattr(generate_module, "generate", loop)
    assert generate_sql("who is older than average?", DDL).sql == FLAT
    loose, tight = loop.constraints
    assert loose.accepts(NESTED) and loose.accepts(FLAT)
    assert not tight.accepts(NESTED) and tight.accepts(FLAT)


def test_a_run_that_fails_both_ways_raises(monkeypatch):
    loop = ScriptedLoop(failures=2)
    monkeypatch.setattr(generate_module, "generate", loop)
    with pytest.raises(ConstraintUnsatisfiable):
        generate_sql("who is older than average?", DDL)
    assert len(loop.constraints) == 2
