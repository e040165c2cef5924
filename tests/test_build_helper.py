"""The build helper: a small process that makes the bounded builds. A build through it is the build the caller
would have made, under the same bounds and with the same errors; it belongs to the process that started it and
ends with it, or after a build that left it large."""

from __future__ import annotations

import os
import pickle
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from constrained import build_helper
from constrained.bounded_child import run_bounded
from constrained.build_helper import build_in_helper, warm_build_helper
from constrained.errors import CompileError, CompileTimeout, RegexError
from constrained.pattern_automaton import patterns_dfa
from constrained.vocabulary import TokenVocabulary

VOCABULARY = TokenVocabulary((b"a", b"b", b"ab", b"c", b"z", b"zz", None), (6,))


def _helped(patterns: tuple[str, ...], **bounds):
    """A build through this process's helper, which must be ready."""
    assert warm_build_helper(60.0), "the build helper did not start"
    options = {"timeout_s": 60.0, "memory_bytes": None, **bounds}
    return build_in_helper(patterns, VOCABULARY, what="building", **options)


def test_a_build_through_the_helper_is_the_callers_build():
    built = _helped(("(ab|c)+z+", "[abcz]{2,6}"))
    assert built is not None
    here = patterns_dfa(("(ab|c)+z+", "[abcz]{2,6}"), VOCABULARY)
    assert np.array_equal(built.table, here.table)
    assert np.array_equal(built.token_class, here.token_class)
    assert np.array_equal(built.accepting, here.accepting)


def test_a_typed_error_of_the_build_comes_back_as_it_was():
    with pytest.raises(RegexError, match="cannot compile pattern|unbalanced"):
        _helped(("(ab",))


def test_a_build_past_its_time_is_a_timeout():
    with pytest.raises(CompileTimeout, match="building took longer than"):
        _helped(("(ab|c)+z+",), timeout_s=1e-4)
    assert _helped(("c",)) is not None  # the helper still builds


def test_a_build_past_its_memory_is_a_timeout_naming_the_bound():
    """An automaton of 2^21 states (the 21st symbol from the end is an a) cannot be made in 16 MiB."""
    with pytest.raises(CompileTimeout, match=r"out of memory \(its bound: 16 MiB\)"):
        _helped(("[abcz]*a[abcz]{20}",), memory_bytes=16 << 20)


def test_a_helper_that_dies_is_a_compile_error_and_the_next_build_starts_another():
    helper = build_helper._own_helper()
    assert warm_build_helper(60.0)
    helper.process.kill()
    helper.process.wait()
    with pytest.raises(CompileError, match="the build helper ended with no answer"):
        build_in_helper(("c+",), VOCABULARY, timeout_s=60.0, memory_bytes=None, what="building")
    assert build_helper._own_helper() is not helper
    assert _helped(("c+",)) is not None


def test_a_helper_that_aborts_is_a_timeout_naming_the_bound():
    """Native code aborts the process on a failed allocation: the helper's end by SIGABRT reads as the build's
    memory running out, as a forked child's did."""
    helper = build_helper._own_helper()
    assert warm_build_helper(60.0)
    resource.prlimit(helper.process.pid, resource.RLIMIT_CORE, (0, 0))  # no core file left behind
    helper.process.send_signal(signal.SIGABRT)
    helper.process.wait()
    with pytest.raises(CompileTimeout, match=r"ended by SIGABRT.*out of memory \(its bound: 64 MiB\)"):
        build_in_helper(("c+",), VOCABULARY, timeout_s=60.0, memory_bytes=64 << 20, what="building")
    assert _helped(("c+",)) is not None


def test_a_helper_grown_past_its_resident_bound_says_so_with_its_answer_and_ends(monkeypatch):
    """``serve`` run here over two pipes, with a bound every process is past."""
    monkeypatch.setattr(build_helper, "RESIDENT_BYTES_KEPT", 0)
    requests_read, requests_write = os.pipe()
    answers_read, answers_write = os.pipe()
    requests, answers = Connection(requests_write, readable=False), Connection(answers_read, writable=False)
    helper_side = Connection(requests_read, writable=False), Connection(answers_write, readable=False)
    serving = threading.Thread(target=build_helper.serve, args=helper_side)
    serving.start()
    try:
        assert answers.recv() == ("ready", None)
        requests.send(("vocabulary", VOCABULARY.fingerprint, VOCABULARY))
        requests.send(("build", VOCABULARY.fingerprint, ("c+",), 60.0, None, "building"))
        status, payload, ending = answers.recv()
        serving.join(60)
        assert status == "ok" and ending and not serving.is_alive()
        assert pickle.loads(payload).walk([3, 3]) != -1  # "cc"
    finally:
        requests.close()
        serving.join(60)
        for connection in (answers, *helper_side):
            connection.close()


def test_a_forked_child_does_not_use_its_parents_helper():
    assert warm_build_helper(60.0)
    parents = build_helper._own_helper().process.pid
    childs = run_bounded(lambda: build_helper._own_helper().process.pid, timeout_s=60, memory_bytes=None,
                         what="looking")
    assert childs != parents


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_helper_ends_with_the_process_that_started_it(tmp_path):
    code = textwrap.dedent("""
        from constrained import build_helper
        assert build_helper.warm_build_helper(60.0)
        print(build_helper._own_helper().process.pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CONSTRAINED_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    helper_pid = int(done.stdout)
    deadline = time.monotonic() + 20
    while _alive(helper_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper_pid)


def test_the_helper_imports_the_package_its_owner_imported_not_one_in_the_working_directory(tmp_path):
    # An installed package is found on sys.path; `python -c` would put the working directory before it, and a
    # source checkout there (the README's first command runs from one) holds no compiled modules.
    decoy = tmp_path / "constrained"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy package in the working directory')\n")
    root = Path(build_helper.__file__).resolve().parents[1]
    code = "from constrained.build_helper import warm_build_helper; print(warm_build_helper(60.0))"
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert out.stdout.split() == ["True"], out.stderr[-2000:]
