"""Where built token automata are kept: on disk across processes, and in memory, bounded, within one.

Why keep them: a build takes seconds to a minute, and its result depends only on the patterns and the
vocabulary. The disk copy (keyed by both) outlives the process; the memory copy spares reading that file on
every bind. The memory cache is a least-recently-used map bounded by count and by bytes, because a long-running
process (a server) binds many distinct constraints, and one SQL automaton alone holds tens of megabytes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from .token_dfa import TokenDFA
from .vocabulary import TokenVocabulary

#: Bumped whenever the tables change (their layout, or how states are numbered), so stale cache files are never read.
FORMAT_VERSION = 5
#: How many automata the process keeps in memory at most (least recently used dropped first).
MEMORY_CACHE_ENTRIES = 128
#: How many bytes of automaton arrays (:attr:`TokenDFA.nbytes`) the process keeps in memory at most; an
#: automaton larger than this alone is not kept at all.
MEMORY_CACHE_BYTES = 1 << 30


def cache_dir() -> Path:
    """Where compiled automata are kept: ``$CONSTRAINED_CACHE`` or ``~/.cache/constrained``."""
    return Path(os.environ.get("CONSTRAINED_CACHE", Path.home() / ".cache" / "constrained"))


def cache_key(patterns: tuple[str, ...], vocabulary: TokenVocabulary) -> str:
    """The key of an automaton: its format, the vocabulary's fingerprint and every pattern."""
    return hashlib.sha256("\0".join([str(FORMAT_VERSION), vocabulary.fingerprint, *patterns]).encode()).hexdigest()


def read_from_disk(key: str) -> TokenDFA | None:
    """The automaton kept on disk under ``key``, or ``None`` when there is none (or a truncated or foreign file,
    which the next build replaces)."""
    path = _disk_path(key)
    if not path.exists():
        return None
    try:
        return TokenDFA.load(path)
    except (OSError, ValueError, KeyError):
        return None


def write_to_disk(key: str, dfa: TokenDFA) -> None:
    """Keep ``dfa`` on disk under ``key``; a folder that cannot be written (a read-only home) is no reason to
    fail: the next process builds it again."""
    try:
        dfa.save(_disk_path(key))
    except OSError:
        pass


def _disk_path(key: str) -> Path:
    return cache_dir() / "token_dfa" / key[:2] / f"{key}.npz"


class MemoryCache:
    """Automata by key, least recently used dropped first once there are more than ``max_entries`` of them or
    they hold more than ``max_bytes``. Safe to use from several threads at once.

    Parameters:
        max_entries: how many automata it keeps at most.
        max_bytes: how many bytes of automaton arrays it keeps at most.
    """

    def __init__(self, max_entries: int = MEMORY_CACHE_ENTRIES, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, TokenDFA] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> TokenDFA | None:
        """The automaton kept under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            dfa = self._entries.get(key)
            if dfa is not None:
                self._entries.move_to_end(key)
            return dfa

    def put(self, key: str, dfa: TokenDFA) -> None:
        """Keep ``dfa`` under ``key`` as the most recently used, dropping the least recently used ones past the
        bounds; an automaton larger than ``max_bytes`` alone is not kept (and drops nothing)."""
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._nbytes -= previous.nbytes
            if dfa.nbytes > self.max_bytes:
                return
            self._entries[key] = dfa
            self._nbytes += dfa.nbytes
            while self._entries and (len(self._entries) > self.max_entries or self._nbytes > self.max_bytes):
                _, dropped = self._entries.popitem(last=False)
                self._nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        """Bytes of automaton arrays kept now."""
        return self._nbytes


#: The process's memory cache of automata that :func:`~.token_dfa_build.build_token_dfa` serves.
MEMORY_CACHE = MemoryCache()
