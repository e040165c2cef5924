"""A small helper process that forks the bounded token automaton builds, instead of the caller forking them.

Why: a build runs in a forked child (:mod:`.bounded_child`), and a fork costs in proportion to what the forking
process maps (its page tables are copied, and torn down again when the child ends). A server's process holds a
tokenizer, torch and a model; the helper holds the build's modules and the vocabularies sent to it, once per
vocabulary. The helper runs :func:`.bounded_child.run_bounded` itself, so every build keeps its time and memory
bounds and its errors (``CompileTimeout``, ``CompileError``, the typed error of the build) as they were.

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
import signal
import subprocess
import sys
import threading
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from .bounded_child import run_bounded
from .errors import CompileError, CompileTimeout, ConstrainedError

if TYPE_CHECKING:
    from .token_dfa import LiveTokenDFA
    from .vocabulary import TokenVocabulary

#: How many vocabularies the helper keeps (the oldest sent is dropped first, and sent again when needed).
VOCABULARIES_KEPT = 4
#: How long past a build's own bound the caller waits for the helper's answer before ending the helper.
_ANSWER_GRACE_S = 10.0
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
              memory_bytes: int | None, what: str) -> LiveTokenDFA:
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
            status, payload = self.answers.recv()
        except (EOFError, OSError) as error:
            self.end()
            raise CompileError(f"{what} failed: the build helper ended with no answer ({error})") from None
        if status == "ok":
            return pickle.loads(payload)
        raise payload

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

    A server may call it at start, so that its first builds already fork from the helper.

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
                    memory_bytes: int | None, what: str) -> LiveTokenDFA | None:
    """The token automaton of ``patterns`` over ``vocabulary``, built in a child of this process's helper, or
    ``None`` when the helper is not ready or busy (the caller then builds it in a child of its own).

    Parameters:
        patterns: the patterns whose intersection the automaton accepts (see :func:`.pattern_automaton.patterns_live`).
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
    """The automaton pickled in the build's child, so that the helper passes its bytes on without reading them."""
    from .pattern_automaton import patterns_live

    return pickle.dumps(patterns_live(patterns, vocabulary), protocol=pickle.HIGHEST_PROTOCOL)


def serve(requests: Connection, answers: Connection) -> None:
    """The helper's loop: keep the vocabularies sent, answer each build, end when the requests pipe closes."""
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
        try:
            answer = ("ok", run_bounded(_pickled_build, patterns, vocabularies[fingerprint], timeout_s=timeout_s,
                                        memory_bytes=memory_bytes, what=what))
        except ConstrainedError as error:
            answer = ("raised", error)
        answers.send(answer)


def main(requests_fd: int, answers_fd: int) -> None:
    """The helper's interpreter: serve the two pipes it was given until its owner has ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is its owner's to handle; the pipe's end ends it
    try:
        serve(Connection(requests_fd, writable=False), Connection(answers_fd, readable=False))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # its owner has ended, perhaps before it was ready
        pass
