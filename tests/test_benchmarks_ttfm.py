"""Smoke test of benchmarks/ttfm.py: one schema on the 32K DeepSeek Coder tokenizer, cold, with the peers that
are installed, gives the summary the issue asks for (p50/p99 per engine, phases, ratios, targets only where set).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

pytestmark = pytest.mark.skipif(not (DATA / "tokenizers" / "deepseek-coder").is_dir()
                                or not (DATA / "maskbench" / "Github_easy.jsonl.gz").is_file(),
                                reason="real tokenizers or MaskBench data not present")


@pytest.fixture(scope="module")
def run():
    from benchmarks import ttfm

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = ttfm.main(["--tokenizers", "deepseek-coder", "--splits", "Github_easy", "--per-split", "1",
                             "--canvas", "8", "--json"])
    return summary, printed.getvalue().strip().splitlines()


def test_last_line_is_the_json_summary(run):
    summary, lines = run
    assert json.loads(lines[-1]) == json.loads(json.dumps(summary))


def test_ours_is_timed_cold_by_phase(run):
    summary, _ = run
    figures = summary["tokenizers"]["deepseek-coder"]
    assert figures["vocabulary_size"] == 32_259
    ours = figures["ours"]
    assert ours["n"] == 1 and ours["failed"] == 0
    assert ours["p50"] >= ours["bind_ms_p50"] > 0
    assert "targets" not in figures  # the issue sets targets for deepseek-llm and the 262K vocabulary only


def test_installed_peers_are_timed_beside_ours(run):
    summary, _ = run
    figures = summary["tokenizers"]["deepseek-coder"]
    for peer in ("llguidance", "xgrammar"):
        try:
            __import__(peer)
        except ImportError:
            continue
        assert figures[peer]["n"] + figures[peer]["failed"] == 1
        if figures[peer]["n"]:
            assert figures["p50_ratio_ours_over"][peer] > 0
