"""The bounded child process: a build runs in a forked child under a time and memory bound, and what ends
it (its answer, its own typed error, an unexpected exception, the clock, the memory bound) is what the caller
is told."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from constrained.bounded_child import memory_limit, run_bounded
from constrained.errors import CompileError, CompileTimeout, RegexError, UnsupportedSchema

#: What ``ulimit -v 6000000`` sets (KiB), as containers do: below the build's own 8 GiB bound.
CONTAINER_LIMIT = 6_000_000 * 1024


def _run_limited(code: str, tmp_path, limit: int = CONTAINER_LIMIT) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose address space is limited (soft and hard) to ``limit`` bytes."""
    preamble = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    return subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={"CONSTRAINED_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_an_uncached_compile_works_under_a_lower_process_memory_limit(tmp_path):
    """Under a process limit below the build's bound, the build keeps to the lower limit instead of failing
    to raise it (which was reported as running out of memory, with the child's traceback on stderr)."""
    done = _run_limited("""
        import constrained
        bound = constrained.regex("(ab|c)+z").bind({"a": 0, "b": 1, "c": 2, "z": 3, "</s>": 4}, eos_token_id=4)
        print(bound.dfa.n_states)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
    assert "Traceback" not in done.stderr


def test_a_child_keeps_a_lower_soft_limit_and_never_raises_one(tmp_path):
    """The child's limit is the lowest of the bound asked for and the process's soft and hard limits."""
    hard, soft = CONTAINER_LIMIT, CONTAINER_LIMIT // 2
    done = _run_limited(f"""
        import resource
        from constrained.bounded_child import run_bounded
        resource.setrlimit(resource.RLIMIT_AS, ({soft}, {hard}))
        limits = run_bounded(resource.getrlimit, resource.RLIMIT_AS, timeout_s=60, memory_bytes=8 << 30, what="t")
        print(*limits)
    """, tmp_path, limit=hard)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(soft), str(soft)]


def test_the_task_value_comes_back():
    assert run_bounded(lambda a, b: {"sum": a + b}, 2, 3, timeout_s=60, memory_bytes=None, what="adding") == {"sum": 5}


def test_a_typed_error_of_the_task_is_raised_as_it_was():
    def refuse() -> None:
        raise RegexError("cannot compile pattern '('")

    with pytest.raises(RegexError, match=r"cannot compile pattern '\('"):
        run_bounded(refuse, timeout_s=60, memory_bytes=None, what="compiling")


def test_an_unexpected_exception_is_named_in_a_typed_error_without_a_traceback(capfd):
    """What setrlimit raised in the child under a container's limit was reported as running out of memory,
    with the child's traceback on stderr: an exception is now reported as what it is."""

    def fail() -> None:
        raise ValueError("not allowed to raise maximum limit")

    with pytest.raises(CompileError, match="compiling failed: ValueError: not allowed to raise maximum limit"):
        run_bounded(fail, timeout_s=60, memory_bytes=None, what="compiling")
    assert "Traceback" not in capfd.readouterr().err


def test_a_typed_error_that_does_not_unpickle_comes_back_as_its_message():
    def refuse() -> None:
        raise UnsupportedSchema("minLength", "/name", "above maxLength")

    with pytest.raises(CompileError, match="UnsupportedSchema: unsupported keyword 'minLength' at /name"):
        run_bounded(refuse, timeout_s=60, memory_bytes=None, what="compiling")


def test_a_result_that_does_not_pickle_is_an_error():
    with pytest.raises(CompileError, match="its result cannot be sent back"):
        run_bounded(lambda: (lambda: None), timeout_s=60, memory_bytes=None, what="making a function")


def test_a_task_past_its_time_is_killed():
    started = time.perf_counter()
    with pytest.raises(CompileTimeout, match=r"sleeping took longer than 0.5 s"):
        run_bounded(time.sleep, 30, timeout_s=0.5, memory_bytes=None, what="sleeping")
    assert time.perf_counter() - started < 10


def _address_space() -> int:
    """This process's address space now (bytes), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no VmSize in /proc/self/status")


def test_a_task_past_its_memory_is_a_timeout_naming_the_bound():
    """An allocation past the bound fails in the child alone, and the caller is told which bound it hit."""
    bound = _address_space() + (256 << 20)
    with pytest.raises(CompileTimeout, match=rf"allocating ran out of memory \(its bound: {bound >> 20} MiB\)"):
        run_bounded(bytearray, 1 << 30, timeout_s=60, memory_bytes=bound, what="allocating")
    assert memory_limit(None) is None or memory_limit(None) > bound  # the caller's own limit is untouched


@pytest.mark.parametrize("ending, error, message", [
    (lambda: os.kill(os.getpid(), signal.SIGKILL), CompileTimeout,
     "was ended by SIGKILL with no answer: most likely out of memory"),
    (lambda: os.kill(os.getpid(), signal.SIGTERM), CompileError, "was ended by SIGTERM with no answer"),
    (lambda: os._exit(3), CompileError, "ended with exit code 3 and no answer"),
], ids=["killed", "terminated", "exit"])
def test_a_child_that_ends_without_an_answer_says_how(ending, error, message):
    """Native code whose allocation fails aborts the process (Rust does) and the kernel's out-of-memory killer
    sends SIGKILL: those read as memory; any other ending is named as it is."""
    with pytest.raises(error, match=f"building {message}"):
        run_bounded(ending, timeout_s=60, memory_bytes=None, what="building")
