"""A small helper process that makes the token automaton builds, bounded, instead of the caller forking them.

Why: a build must run in a process of its own, which can be ended when it blows up (:mod:`.bounded_child`), and a
fork costs in proportion to what the forking process maps (its page tables are copied, and torn down again when
the child ends). A server's process holds a tokenizer, torch and a model; the helper holds the build's modules and
the vocabularies sent to it, once per vocabulary, and is itself the process a build may blow up: it builds in
process, with no fork per build (a forked child also paid a page fault for every page it wrote, and a hop of the
answer through the helper). The bounds and errors stay those of :func:`.bounded_child.run_bounded`: the owner ends
a helper that does not answer within a build's time (and a helper whose build ran past its time says so); the
helper's address space may grow by the build's memory bound while it builds (a ``MemoryError`` is a
``CompileTimeout`` naming the bound; native code that aborts ends the helper, which is the same); the typed error
of the build comes back as it was raised. A helper whose resident size has grown past
:data:`RESIDENT_BYTES_KEPT` (fragments of a large build) says so with its answer and ends; the next build starts
another.

How it is used: :func:`build_in_helper` answers ``None`` when no helper is ready and free (this is the process's
first build, the helper is still starting, another thread of this process is building with it, or it has
ended) and the caller forks the build itself, so the helper's start (an interpreter importing numpy and
outlines-core) never delays a build, and a process that builds once never starts one. The helper belongs to
the process that started it: a forked child of that process never writes to its parent's helper (it starts its
own), and the helper ends when its requests pipe closes, that is when its owner (and every forked child that
still holds the pipe) has ended. It keeps the last :data:`VOCABULARIES_KEPT` vocabularies sent to it.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bounded_child import answer_result, ending_error, memory_limit, task_answer
from .errors import CompileError, CompileTimeout

if TYPE_CHECKING:
    from .token_dfa import TokenDFA
    from .vocabulary import TokenVocabulary

#: How many vocabularies the helper keeps (the oldest sent is dropped first, and sent again when needed).
VOCABULARIES_KEPT = 4
#: How long past a build's own bound the caller waits for the helper's answer before ending the helper (the
#: answer's way through the pipe; a build past its bound is the helper's to report).
_ANSWER_GRACE_S = 1.0
#: The resident size past which the helper ends after its answer rather than keep a large build's fragments.
RESIDENT_BYTES_KEPT = 1 << 30
#: How long the caller waits for a helper that closed its pipe to end, so that its exit status is known.
_EXIT_WAIT_S = 1.0
#: What the helper's interpreter runs: this package found where the caller found it (a source checkout is put
#: first on the path; an installed package, already on it, is left where it is). The interpreter starts with
#: ``-P``: ``-c`` would put the working directory first, and a source checkout there, without its compiled
#: modules, would shadow the installed package.
_HELPER_MAIN = ("import sys; root = sys.argv[1]; root in sys.path or sys.path.insert(0, root); "
                "from constrained.build_helper import main; main(int(sys.argv[2]), int(sys.argv[3]))")


class _Helper:
    """The caller's side of one helper process: its two pipes, the vocabularies it holds, a lock per build."""

    def __init__(self) -> None:
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        package_parent = str(Path(__file__).resolve().parents[1])
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", _HELPER_MAIN, package_parent, str(requests_read), str(answers_write)],
            pass_fds=(requests_read, answers_write), stdin=subprocess.DEVNULL)
        os.close(requests_read)
        os.close(answers_write)
        self.requests = Connection(requests_write, readable=False)
        self.answers = Connection(answers_read, writable=False)
        self.lock = threading.Lock()
        self.ready = False
        self.ended = False
        self.vocabularies: deque[str] = deque(maxlen=VOCABULARIES_KEPT)  # as the helper keeps them

    def wait_ready(self, wait_s: float) -> bool:
        """Whether the helper has said it is ready, waiting up to ``wait_s`` seconds for it (lock held)."""
        if not self.ready and not self.ended:
            try:
                if self.answers.poll(wait_s):
                    self.ready = self.answers.recv() == ("ready", None)
                    self.ended = not self.ready
            except (EOFError, OSError):
                self.end()
        return self.ready and not self.ended

    def build(self, patterns: tuple[str, ...], vocabulary: TokenVocabulary, timeout_s: float,
              memory_bytes: int | None, what: str) -> TokenDFA:
        """The helper's answer to one build (lock held)."""
        fingerprint = vocabulary.fingerprint
        try:
            if fingerprint not in self.vocabularies:
                self.requests.send(("vocabulary", fingerprint, vocabulary))
                self.vocabularies.append(fingerprint)
            self.requests.send(("build", fingerprint, patterns, timeout_s, memory_bytes, what))
            if not self.answers.poll(timeout_s + _ANSWER_GRACE_S):
                self.end()
                raise CompileTimeout(f"{what} took longer than {timeout_s:g} s (the build helper did not answer)")
            status, payload, ending = self.answers.recv()
        except (EOFError, OSError) as error:
            try:  # its exit status tells how it ended
                self.process.wait(_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            self.end()
            if self.process.returncode == -signal.SIGABRT:  # native code's end on a failed allocation
                raise ending_error(self.process.returncode, what, memory_limit(memory_bytes)) from None
            raise CompileError(f"{what} failed: the build helper ended with no answer ({error})") from None
        if ending:
            self.end()
        return pickle.loads(answer_result(status, payload, what, memory_limit(memory_bytes)))

    def end(self) -> None:
        """Close the pipes (the helper ends when it reads their end) and stop it if it does not."""
        self.ended = True
        self.requests.close()
        self.answers.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def forget_in_child(self) -> None:
        """In a forked child: close the inherited pipe ends, so that the helper still ends with its owner."""
        self.ended = True
        self.requests.close()
        self.answers.close()


#: The helper of each process that started one, by its owner's process id (a forked child finds its parent's
#: here, inherited and closed, and starts its own).
_HELPERS: dict[int, _Helper] = {}
_STARTING = threading.Lock()
#: The processes that have made a build without a helper: a process that builds once (a command-line run) never
#: pays for starting one; it starts with a process's second build (or with :func:`warm_build_helper`).
_BUILT_ONCE: set[int] = set()


def _forget_inherited() -> None:
    for helper in _HELPERS.values():
        if not helper.ended:
            helper.forget_in_child()


os.register_at_fork(after_in_child=_forget_inherited)


def _own_helper() -> _Helper | None:
    """This process's helper, started on first use; ``None`` when no interpreter can be started."""
    with _STARTING:
        helper = _HELPERS.get(os.getpid())
        if helper is None or helper.ended:
            try:
                helper = _HELPERS[os.getpid()] = _Helper()
            except (OSError, ValueError):  # no interpreter to start (an embedded Python): builds fork here
                return None
        return helper


def warm_build_helper(wait_s: float = 0.0) -> bool:
    """Start this process's build helper if it has none, and wait up to ``wait_s`` seconds for it to be ready.

    A server may call it at start, so that its first builds are already the helper's.

    Parameters:
        wait_s: how long to wait for the helper's start (an interpreter importing the build's modules).

    Returns:
        Whether the helper is ready to build.
    """
    helper = _own_helper()
    if helper is None or not helper.lock.acquire(timeout=max(wait_s, 0.0)):
        return False
    try:
        return helper.wait_ready(wait_s)
    finally:
        helper.lock.release()


def build_in_helper(patterns: tuple[str, ...], vocabulary: TokenVocabulary, *, timeout_s: float,
                    memory_bytes: int | None, what: str) -> TokenDFA | None:
    """The token automaton of ``patterns`` over ``vocabulary``, built by this process's helper, or ``None`` when
    the helper is not ready or busy (the caller then builds it in a child of its own).

    Parameters:
        patterns: the patterns whose intersection the automaton accepts (see :func:`.pattern_automaton.patterns_dfa`).
        vocabulary: the tokens it reads; sent to the helper on its first build there.
        timeout_s: how long the build may run.
        memory_bytes: how much address space the build may use (see :func:`.bounded_child.run_bounded`).
        what: what the build does, for messages.

    Returns:
        The minimal automaton as its live transitions, or ``None``.

    Raises:
        ConstrainedError: what the build raised (as :func:`.bounded_child.run_bounded` raises it).
        CompileTimeout: the helper gave no answer within ``timeout_s`` and a grace period (it is then ended).
        CompileError: the helper ended with no answer.
    """
    if os.getpid() not in _HELPERS and os.getpid() not in _BUILT_ONCE:
        _BUILT_ONCE.add(os.getpid())
        return None
    helper = _own_helper()
    if helper is None or not helper.lock.acquire(blocking=False):
        return None
    try:
        if not helper.wait_ready(0.0):
            return None
        return helper.build(patterns, vocabulary, timeout_s, memory_bytes, what)
    finally:
        helper.lock.release()


def _pickled_build(patterns: tuple[str, ...], vocabulary: TokenVocabulary) -> bytes:
    """The automaton pickled, so that a build that runs out of memory while pickling is caught as the build's."""
    from .pattern_automaton import patterns_dfa

    return pickle.dumps(patterns_dfa(patterns, vocabulary), protocol=pickle.HIGHEST_PROTOCOL)


def _process_bytes(field: int) -> int:
    """A size of this process from ``/proc/self/statm`` (field 0: address space, 1: resident), in bytes; 0 where
    the system has no ``/proc`` (macOS: the build's bound is then the whole address space's, as in a forked
    child, and the helper never ends for its size)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def bounded_build(patterns: tuple[str, ...], vocabulary: TokenVocabulary, timeout_s: float,
                  memory_bytes: int | None, what: str) -> tuple[str, Any]:
    """One build in this process, as a :func:`.bounded_child.task_answer` of its pickled automaton: its address
    space may grow by the memory bound meanwhile (the limit is put back after), and a build that ran past
    ``timeout_s`` answers a ``CompileTimeout`` (one that never ends is its owner's to end)."""
    limit = memory_limit(memory_bytes)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit is not None:
        ceilings = [bound for bound in (soft, hard) if bound != resource.RLIM_INFINITY]
        resource.setrlimit(resource.RLIMIT_AS, (min([_process_bytes(0) + limit, *ceilings]), hard))
    started = time.monotonic()
    try:
        answer = task_answer(_pickled_build, patterns, vocabulary)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if time.monotonic() - started > timeout_s:
        return "raised", CompileTimeout(f"{what} took longer than {timeout_s:g} s")
    return answer


def serve(requests: Connection, answers: Connection) -> None:
    """The helper's loop: keep the vocabularies sent, answer each build, end when the requests pipe closes or
    after an answer that left it larger than :data:`RESIDENT_BYTES_KEPT`."""
    from .pattern_automaton import patterns_dfa
    from .vocabulary import byte_vocabulary

    patterns_dfa(("[0-9]",), byte_vocabulary())  # what a build imports and makes on first use, made once here
    answers.send(("ready", None))
    vocabularies: OrderedDict[str, TokenVocabulary] = OrderedDict()
    while True:
        request = requests.recv()
        if request[0] == "vocabulary":
            _, fingerprint, vocabulary = request
            vocabularies[fingerprint] = vocabulary
            while len(vocabularies) > VOCABULARIES_KEPT:
                vocabularies.popitem(last=False)
            continue
        _, fingerprint, patterns, timeout_s, memory_bytes, what = request
        status, payload = bounded_build(patterns, vocabularies[fingerprint], timeout_s, memory_bytes, what)
        ending = _process_bytes(1) > RESIDENT_BYTES_KEPT
        answers.send((status, payload, ending))
        if ending:
            return


def main(requests_fd: int, answers_fd: int) -> None:
    """The helper's interpreter: serve the two pipes it was given until its owner has ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is its owner's to handle; the pipe's end ends it
    try:
        serve(Connection(requests_fd, writable=False), Connection(answers_fd, readable=False))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # its owner has ended, perhaps before it was ready
        pass
