"""Running one task in a forked child process under a time and a memory bound.

Why a child: some work cannot be bounded from inside. outlines-core determinizes a pattern in native code that
neither looks at a clock nor survives a failed allocation (Rust aborts the process), and a determinization can
blow up. A child can be killed when its time is up, and an address-space limit set in the child alone turns a
blow-up into a ``MemoryError`` (or an abort) of the child, never of the caller. The task's return value comes back
pickled through a pipe.

What ended the child is what the caller is told: its answer, its own typed error, an unexpected exception (named,
with its message), the clock, or the memory bound. A limit the process already has (a container's ``ulimit -v``)
is kept where it is lower than the one asked for: a process may lower its limits but not raise the hard one.

POSIX only (``fork`` and ``resource``), like the package.
"""

from __future__ import annotations

import multiprocessing
import pickle
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from .errors import CompileError, CompileTimeout, ConstrainedError

T = TypeVar("T")

#: How long the caller waits for a child that has closed its pipe to finish exiting (so its exit status is known).
_EXIT_WAIT_S = 5.0


def memory_limit(memory_bytes: int | None) -> int | None:
    """The address-space limit a child gets: ``memory_bytes``, or the process's own limit (soft or hard) where
    that is lower; ``None`` when neither bounds it.

    Parameters:
        memory_bytes: the bound asked for, or ``None`` for none beyond the process's own.

    Returns:
        The limit in bytes, or ``None`` for an unlimited address space.
    """
    limits = (memory_bytes, *resource.getrlimit(resource.RLIMIT_AS))
    finite = [limit for limit in limits if limit is not None and limit != resource.RLIM_INFINITY]
    return min(finite) if finite else None


def run_bounded(task: Callable[..., T], *args: Any, timeout_s: float, memory_bytes: int | None, what: str) -> T:
    """``task(*args)``, computed in a forked child that may run ``timeout_s`` seconds in at most ``memory_bytes``
    of address space.

    Parameters:
        task: a function whose return value pickles (it runs in the child, so it may be a closure or a lambda).
        args: its arguments (handed over by the fork, not pickled).
        timeout_s: wall-clock seconds the child may run before it is killed.
        memory_bytes: address space the child may use, lowered to the process's own limit where that is lower;
            ``None`` keeps the process's own limit alone.
        what: what the task does, for messages ("building the token automaton").

    Returns:
        What ``task`` returned.

    Raises:
        ConstrainedError: the typed error the task raised, as it was raised.
        CompileTimeout: the child ran past ``timeout_s``, or out of memory (a ``MemoryError``, or ended by
            ``SIGABRT``/``SIGKILL`` with no answer: how native code and the kernel end a process whose allocation
            failed).
        CompileError: the task raised another exception (its type and message are in the error's), or the child
            ended with no answer in another way.
    """
    limit = memory_limit(memory_bytes)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # not a daemon: the task may start bounded children of its own; the finally below never leaves it running
    process = context.Process(target=_child, args=(task, args, limit, sender))
    process.start()
    sender.close()
    status = None
    try:
        if not receiver.poll(timeout_s):
            raise CompileTimeout(f"{what} took longer than {timeout_s:g} s")
        try:
            status, payload = receiver.recv()
        except EOFError:
            process.join(_EXIT_WAIT_S)
            status, payload = "ended", None
    finally:
        process.kill()
        receiver.close()
        if status in (None, "ended"):
            process.join()
        else:  # answered: the child's exit status is not needed, and a large child takes a while to tear down
            threading.Thread(target=process.join, name="reaping a bounded child", daemon=True).start()
    if status == "ended":
        raise ending_error(process.exitcode, what, limit)
    return answer_result(status, payload, what, limit)


def task_answer(task: Callable[..., T], *args: Any) -> tuple[str, Any]:
    """``task(*args)`` as an answer that pickles, whatever happens: ``("ok", value)``, ``("memory", None)``,
    ``("raised", error)`` for a typed error that survives pickling, ``("failed", description)`` otherwise. Read
    back with :func:`answer_result`."""
    try:
        return "ok", task(*args)
    except MemoryError:
        return "memory", None
    except ConstrainedError as error:
        return ("raised", error) if _round_trips(error) else ("failed", _described(error))
    except Exception as error:  # noqa: BLE001 - any other failure is reported to the caller, named
        return "failed", _described(error)


def answer_result(status: str, payload: Any, what: str, limit: int | None) -> Any:
    """The value of a :func:`task_answer`, or the error it stands for (``limit``: the memory bound the task ran
    under, named when it ran out of memory).

    Raises:
        ConstrainedError: the typed error the task raised.
        CompileTimeout: the task ran out of memory.
        CompileError: the task raised another exception.
    """
    if status == "ok":
        return payload
    if status == "raised":
        raise payload
    if status == "memory":
        raise CompileTimeout(f"{what} ran out of memory{_bound(limit)}")
    raise CompileError(f"{what} failed: {payload}")


def _child(task: Callable[..., Any], args: tuple, limit: int | None, sender: Connection) -> None:
    """The child's side: lower its memory limit, run the task, and send back one answer, whatever happens."""
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # never above either current limit: lowering only
    answer = task_answer(task, *args)
    try:
        try:
            sender.send(answer)  # pickled whole before a byte is written, so a failure here leaves the pipe clean
        except MemoryError:
            sender.send(("memory", None))
        except Exception as error:  # noqa: BLE001 - a return value that does not pickle
            sender.send(("failed", f"its result cannot be sent back: {_described(error)}"))
    finally:
        sender.close()


def _round_trips(error: BaseException) -> bool:
    """Whether the error survives pickling (an exception whose ``__init__`` takes other arguments than its
    ``args`` may pickle but fail to unpickle)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - whatever pickling raises, the error goes back as text instead
        return False
    return True


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _bound(limit: int | None) -> str:
    return f" (its bound: {limit >> 20} MiB)" if limit is not None else ""


def ending_error(exitcode: int | None, what: str, limit: int | None) -> ConstrainedError:
    """The error for a process that ran a task and ended with no answer, by its exit status (``None``: not
    known; negative: the signal that ended it)."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode in (signal.SIGABRT, signal.SIGKILL):
            return CompileTimeout(f"{what} was ended by {name} with no answer: most likely out of memory"
                                  f"{_bound(limit)}")
        return CompileError(f"{what} was ended by {name} with no answer")
    return CompileError(f"{what} ended with exit code {exitcode} and no answer")
