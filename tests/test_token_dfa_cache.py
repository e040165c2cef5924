"""The caches of built automata: the memory cache is a least-recently-used map bounded by count and bytes."""

from __future__ import annotations

import logging
import threading

import numpy as np

from constrained import token_dfa_build
from constrained.token_dfa import TokenDFA
from constrained.token_dfa_cache import MemoryCache
from constrained.vocabulary import as_vocabulary


def _dfa(states: int) -> TokenDFA:
    """An automaton whose arrays weigh ``12 * states + 4 + states`` bytes (one class, a one-token vocabulary, a
    loop on each state)."""
    loops = np.arange(states, dtype=np.int32)
    return TokenDFA(loops, np.zeros(states, dtype=np.int32), loops, np.zeros(1, dtype=np.int32),
                    np.ones(states, dtype=bool), 0, 0, states, 1)


def test_past_its_count_the_least_recently_used_is_dropped():
    cache = MemoryCache(max_entries=2, max_bytes=1 << 20)
    first, second, third = _dfa(1), _dfa(2), _dfa(3)
    cache.put("first", first)
    cache.put("second", second)
    assert cache.get("first") is first  # now the most recently used
    cache.put("third", third)
    assert cache.get("second") is None
    assert cache.get("first") is first and cache.get("third") is third
    assert len(cache) == 2 and cache.nbytes == first.nbytes + third.nbytes


def test_past_its_bytes_the_least_recently_used_are_dropped():
    small, large = _dfa(10), _dfa(100)
    cache = MemoryCache(max_entries=10, max_bytes=large.nbytes + small.nbytes)
    cache.put("a", small)
    cache.put("b", small)
    cache.put("c", large)
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.nbytes == large.nbytes + small.nbytes <= cache.max_bytes


def test_an_automaton_larger_than_the_whole_bound_is_not_kept():
    cache = MemoryCache(max_entries=10, max_bytes=100)
    cache.put("kept", _dfa(1))
    cache.put("huge", _dfa(1000))
    assert "huge" not in cache and "kept" in cache


def test_putting_a_key_again_replaces_its_weight():
    cache = MemoryCache(max_entries=10, max_bytes=1 << 20)
    cache.put("a", _dfa(100))
    cache.put("a", _dfa(1))
    assert len(cache) == 1 and cache.nbytes == _dfa(1).nbytes


def test_threads_putting_at_once_keep_the_bounds():
    cache = MemoryCache(max_entries=5, max_bytes=1 << 20)

    def fill(thread: int) -> None:
        for n in range(200):
            cache.put(f"{thread}:{n}", _dfa(1 + n % 7))

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 5
    assert cache.nbytes == sum(cache.get(key).nbytes for key in list(cache._entries))


def test_an_automaton_dropped_from_memory_comes_back_from_disk(monkeypatch, tmp_path, caplog):
    """With room for one automaton, binding a second drops the first; the first then comes from disk (no build
    note), equal to what was built."""
    monkeypatch.setenv("CONSTRAINED_CACHE", str(tmp_path))
    monkeypatch.setattr(token_dfa_build, "MEMORY_CACHE", MemoryCache(max_entries=1))
    vocabulary = as_vocabulary({"a": 0, "b": 1, "</s>": 2}, 2)
    first = token_dfa_build.build_token_dfa("(ab)+", vocabulary)
    token_dfa_build.build_token_dfa("a*b", vocabulary)
    assert len(token_dfa_build.MEMORY_CACHE) == 1
    with caplog.at_level(logging.INFO, logger="constrained"):
        again = token_dfa_build.build_token_dfa("(ab)+", vocabulary)
    assert not caplog.records
    assert again is not first and np.array_equal(again.targets, first.targets)
    assert np.array_equal(again.token_class, first.token_class) and np.array_equal(again.accepting, first.accepting)
