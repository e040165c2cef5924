"""Smoke tests of the two MaskBench benchmarks: a tiny run of one split prints the summary each one specifies.

Passing: two schemas of Glaiveai2K at text level. Mask cost: one short, quick-to-bind schema timed on one
instance with the 32K SentencePiece vocabulary that mistral-common ships. The last line each prints is one JSON
object: the passing rate and the invalidation errors; µs per token for ours and each peer, and µs per step.
Skipped when the data or a peer is absent.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "maskbench"

pytestmark = pytest.mark.skipif(not (DATA / "Glaiveai2K.jsonl.gz").exists(), reason="MaskBench data not present")


def _main(module, argv: list[str]) -> tuple[dict, list[str]]:
    """A benchmark's main on ``argv``, with the lines it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = module.main(argv)
    return summary, printed.getvalue().strip().splitlines()


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory):
    from benchmarks import maskbench_passing

    return _main(maskbench_passing, [str(DATA), "--splits", "Glaiveai2K", "--limit", "2", "--compile-timeout", "60",
                                     "--cache", str(tmp_path_factory.mktemp("cache")), "--json"])


@pytest.fixture(scope="module")
def mask_run(tmp_path_factory):
    for module in ("llguidance", "xgrammar", "outlines_core", "sentencepiece", "mistral_common"):
        pytest.importorskip(module)
    from benchmarks import maskbench_mask_cost

    return _main(maskbench_mask_cost, [str(DATA), "--splits", "Glaiveai2K", "--mask-schemas", "1",
                                       "--mask-instances", "1", "--compile-timeout", "60",
                                       "--cache", str(tmp_path_factory.mktemp("cache")), "--json"])


@pytest.mark.parametrize("run", ["passing_run", "mask_run"])
def test_last_line_is_the_json_summary(run, request):
    summary, lines = request.getfixturevalue(run)
    assert json.loads(lines[-1]) == json.loads(json.dumps(summary))


def test_passing_summary_has_the_issue_keys(passing_run):
    summary, _ = passing_run
    assert 0.0 <= summary["passing_rate"] <= 1.0
    assert isinstance(summary["invalidation_errors"], int)


def test_per_split_details_add_up(passing_run):
    summary, _ = passing_run
    split = summary["splits"]["Glaiveai2K"]
    assert split["schemas"] == 2
    assert split["compiled"] + split["unsupported"] + split["failed"] == 2
    assert split["passing"] <= split["compiled"]
    assert summary["passing"] == split["passing"]


def test_mask_summary_has_the_issue_keys(mask_run):
    summary, _ = mask_run
    assert set(summary["us_per_token"]) == {"ours", "llguidance", "xgrammar", "outlines_core"}
    for figures in summary["us_per_token"].values():
        assert {"mean", "p50", "p99"} <= set(figures)
    assert summary["us_per_step"]["p50"] > 0 and summary["us_per_step"]["p99"] >= summary["us_per_step"]["p50"]
    assert summary["canvas_setup_us"]["n"] == summary["mask_counts"]["instances"]  # set-up reported apart


def test_mask_sample_times_real_tokens_and_misses_none(mask_run):
    summary, _ = mask_run
    counts = summary["mask_counts"]
    assert counts["instances"] >= 1 and counts["text_tokens"] > 0
    assert counts.get("mask_misses", 0) == 0  # every revealed token was allowed by the mask it was revealed under
    assert summary["us_per_token"]["ours"]["n"] > 0


def test_instances_are_tokenized_exactly():
    pytest.importorskip("sentencepiece")
    pytest.importorskip("mistral_common")
    from benchmarks.mistral_vocab import load

    vocab = load("sp32k")
    text = '{"name": "Zoë", "tags": ["a", "b"], "n": 1}'
    tokens = vocab.tokenize(text)
    assert tokens is not None and vocab.spell(tokens) == text.encode()  # no dummy-prefix space
    assert vocab.vocabulary.decode(tokens + [vocab.eos_id]) == text


def test_masks_made_per_token_count_every_first_mask(mask_run):
    """The first step makes every open position's mask, so a run makes at least one mask per token it reveals;
    and ours per mask made is then at most ours per token."""
    summary, _ = mask_run
    counts = summary["mask_counts"]
    assert counts["mask_rows_changed"] >= counts["tokens_revealed"] > 0
    assert summary["masks_per_token_ours"] == counts["mask_rows_changed"] / counts["tokens_revealed"]
    assert summary["us_per_mask"]["ours"] <= summary["us_per_token"]["ours"]["mean"]

