"""The one way to a token automaton: from the memory cache, from disk, or built in a bounded child process.

Why a bounded child: determinizing a pattern can blow up in time or memory, in native code that cannot be
stopped from inside (see :mod:`.bounded_child`). A first-use build can take seconds to a minute, so it is noted
on the ``constrained`` logger, and a user waiting knows what runs.
"""

from __future__ import annotations

import logging
import time

from .bounded_child import run_bounded
from .build_helper import build_in_helper
from .byte_automaton import load_in_parent
from .errors import VocabularyError
from .pattern_automaton import patterns_dfa
from .token_dfa import TokenDFA
from .token_dfa_cache import MEMORY_CACHE, cache_dir, cache_key, read_from_disk, write_to_disk
from .vocabulary import TokenVocabulary

#: How long one build may take by default (s).
DEFAULT_TIMEOUT_S = 60.0
#: How much address space one build may use by default (lowered to the process's own limit where that is lower).
DEFAULT_MEMORY_BYTES = 8 << 30
_LOG = logging.getLogger(__name__)


def build_token_dfa(
    pattern: str,
    vocabulary: TokenVocabulary,
    *,
    also: tuple[str, ...] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    cached: bool = True,
) -> TokenDFA:
    """The compacted token automaton of ``pattern`` (intersected with each pattern of ``also``) over
    ``vocabulary``: from memory, disk, or a bounded build.

    Parameters:
        pattern: the regular expression every accepted text matches whole.
        vocabulary: the tokens and end tokens the automaton reads.
        also: further patterns every accepted text matches too.
        timeout_s: how long a build may run.
        memory_bytes: how much address space a build may use.
        cached: ``False`` builds it and keeps it nowhere (a one-off constraint, such as one grounded in a
            single text).

    Returns:
        The minimal automaton, shared with later calls when cached (do not change its arrays).

    Raises:
        VocabularyError: no token sequence of this vocabulary spells an accepted text.
        RegexError: a pattern does not compile.
        CompileTimeout: the build ran past ``timeout_s`` or out of memory.
        CompileError: the build failed in another way (the message names how).
    """
    patterns = (pattern, *also)
    key = cache_key(patterns, vocabulary)
    dfa = MEMORY_CACHE.get(key) if cached else None
    if dfa is not None:
        return dfa
    dfa = read_from_disk(key) if cached else None
    if dfa is None:
        # a one-off build (a constraint grounded in one text) happens on every call: not worth a note
        level = logging.INFO if cached else logging.DEBUG
        if cached:
            _LOG.info("building the token automaton of a constraint not seen before with this vocabulary "
                      "(cached afterwards in %s)", cache_dir())
        else:
            _LOG.debug("building a one-off token automaton")
        started = time.perf_counter()
        vocabulary.packed_spellings  # noqa: B018 - packed here, not in the child, for every later build to find
        what = "building the token automaton"
        dfa = build_in_helper(patterns, vocabulary, timeout_s=timeout_s, memory_bytes=memory_bytes, what=what)
        if dfa is None:  # no helper ready and free (a first build, or it is starting or busy): forked from here
            load_in_parent()
            dfa = run_bounded(patterns_dfa, patterns, vocabulary, timeout_s=timeout_s, memory_bytes=memory_bytes,
                              what=what)
        _LOG.log(level, "built it in %.1f s: %d states, %d token classes", time.perf_counter() - started,
                 dfa.n_states, dfa.n_classes)
        if cached:
            write_to_disk(key, dfa)
    if dfa.offsets[dfa.initial] == dfa.offsets[dfa.initial + 1] and not dfa.accepting[dfa.initial]:
        raise VocabularyError("the vocabulary cannot spell any text the constraint accepts")
    if cached:
        MEMORY_CACHE.put(key, dfa)
    return dfa
