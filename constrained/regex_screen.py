"""Judging a pattern from its text alone, before any automaton is built.

Building a token automaton runs in a bounded child process (seconds to a minute); some patterns can be judged
hopeless or mistaken from their text in microseconds, and a server that compiles strangers' patterns should not
spend a minute finding out:

* **size**: a counted repetition is unrolled into one copy per count (``a{1000000}`` is a million states, and
  the build's cost grows faster than linearly in them), and nested counts multiply. :func:`expansion` estimates
  the unrolled size; a pattern far past what the build can finish in its time bound is refused at once.
* **constructs outside regular languages**: backreferences and lookaround have no finite automaton.
* **anchors**: a constraint's pattern always matches the whole text, so ``^`` / ``\\A`` at its start and ``$`` /
  ``\\z`` at its end say what is already meant (users write them, as in ``^\\d{4}-\\d{2}-\\d{2}$``) and are
  dropped; an anchor anywhere else would need the automaton to look around the text, and is refused.

The syntax read is the Rust ``regex`` crate's, which the automaton builder uses. The reader is lenient: what it
does not understand it counts as one character and leaves to the builder, which reports real syntax errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RegexError

#: Unrolled size (in weighted characters, see :func:`expansion`) past which a pattern is refused before building.
#: Calibrated on the build itself: far beyond this, the default time bound is always exceeded.
MAX_EXPANSION = 10_000
#: Weight of a character class that may match non-ASCII characters (several UTF-8 byte states per position).
_WIDE_CLASS = 16
_CLASS_ESCAPES = frozenset("dDwWsSpP")
_ZERO_WIDTH_ESCAPES = frozenset("bB<>")
_HEX = frozenset("0123456789abcdefABCDEF")
#: Deeper group nesting is refused (the reader recurses once per level).
MAX_NESTING = 200
_LOOKAROUND = {"(?=": "lookahead", "(?!": "negative lookahead", "(?<=": "lookbehind", "(?<!": "negative lookbehind"}


@dataclass(frozen=True)
class _Anchor:
    start: bool  # ``^`` / ``\A`` (else ``$`` / ``\z``)
    span: tuple[int, int]  # where it is written, to drop it
    text: str


@dataclass(frozen=True)
class _Atom:
    weight: int


@dataclass(frozen=True)
class _Repeat:
    child: _Node
    copies: int  # how many times the child is unrolled


@dataclass(frozen=True)
class _Alternation:
    branches: tuple[tuple[_Node, ...], ...]


_Node = _Anchor | _Atom | _Repeat | _Alternation


def screen(pattern: str) -> str:
    """``pattern`` ready for the automaton builder: whole-text anchors dropped, the rest judged.

    Parameters:
        pattern: a regular expression in the Rust ``regex`` syntax, matched against the whole text.

    Returns:
        The pattern without its leading ``^``/``\\A`` and trailing ``$``/``\\z`` (of any top-level branch).

    Raises:
        RegexError: an anchor in the middle of the pattern, a backreference or lookaround, unbalanced
            parentheses, or an unrolled size past :data:`MAX_EXPANSION` (saying which).
    """
    tree = _Reader(pattern).read()
    size = _size(tree)
    if size > MAX_EXPANSION:
        raise RegexError(
            f"the pattern unrolls to about {size:,} characters (counted repetitions multiply), more than the "
            f"{MAX_EXPANSION:,} an automaton can be built from in time; use an unbounded repetition (* or +) "
            "or smaller counts")
    drops: list[tuple[int, int]] = []
    _anchors(tree, at_start=True, at_end=True, drops=drops)
    for start, end in sorted(drops, reverse=True):
        pattern = pattern[:start] + pattern[end:]
    return pattern


def expansion(pattern: str) -> int:
    """The pattern's estimated unrolled size: each character counts 1 (a class that may match non-ASCII
    characters counts more), alternatives add up, and a counted repetition multiplies its operand by its
    largest count. Raises :class:`RegexError` for what :func:`screen` refuses on sight (backreferences, ...)."""
    return _size(_Reader(pattern).read())


def _size(node: _Node) -> int:
    if isinstance(node, _Atom):
        return node.weight
    if isinstance(node, _Anchor):
        return 0
    if isinstance(node, _Repeat):
        return node.copies * _size(node.child)
    return sum(_size(item) for branch in node.branches for item in branch)


def _anchors(node: _Node, at_start: bool, at_end: bool, drops: list[tuple[int, int]]) -> None:
    """Collect the spans of whole-text anchors into ``drops``; raise on any other anchor."""
    if isinstance(node, _Anchor):
        if at_start if node.start else at_end:
            drops.append(node.span)
        else:
            where = "start" if node.start else "end"
            raise RegexError(
                f"anchor {node.text!r} at character {node.span[0]} is not at the {where} of the pattern: a "
                "constraint always matches the whole text, so anchors are accepted only around the whole pattern "
                "(or around whole top-level alternatives)")
    elif isinstance(node, _Repeat):
        _anchors(node.child, False, False, drops)
    elif isinstance(node, _Alternation):
        for branch in node.branches:
            for i, item in enumerate(branch):
                before = all(isinstance(x, _Anchor) for x in branch[:i])
                after = all(isinstance(x, _Anchor) for x in branch[i + 1:])
                _anchors(item, at_start and before, at_end and after, drops)


class _Reader:
    """Recursive descent over the pattern, building just what :func:`screen` judges."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.depth = 0

    def read(self) -> _Alternation:
        tree = self._alternation()
        if self.pos < len(self.src):  # only a ``)`` stops the top level early
            raise RegexError(f"unbalanced parenthesis at character {self.pos} of the pattern")
        return tree

    def _peek(self, count: int = 1) -> str:
        return self.src[self.pos:self.pos + count]

    def _alternation(self) -> _Alternation:
        branches = [self._branch()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._branch())
        return _Alternation(tuple(branches))

    def _branch(self) -> tuple[_Node, ...]:
        items: list[_Node] = []
        while self.pos < len(self.src) and self._peek() not in "|)":
            atom = self._atom()
            if atom is not None:
                items.append(self._quantified(atom))
        return tuple(items)

    def _atom(self) -> _Node | None:
        start = self.pos
        ch = self.src[self.pos]
        self.pos += 1
        if ch == "^":
            return _Anchor(True, (start, self.pos), ch)
        if ch == "$":
            return _Anchor(False, (start, self.pos), ch)
        if ch == ".":
            return _Atom(_WIDE_CLASS)
        if ch == "[":
            return _Atom(self._class())
        if ch == "\\":
            return self._escape(start)
        if ch == "(":
            return self._group(start)
        return _Atom(len(ch.encode("utf-8", "surrogatepass")))

    def _escape(self, start: int) -> _Node | None:
        ch = self._peek()
        if not ch:
            raise RegexError("the pattern ends with a lone backslash")
        self.pos += 1
        if ch in "123456789":
            raise RegexError(f"backreference \\{ch} (character {start}) matches a repeated text, which no finite "
                             "automaton does: spell the alternatives out instead")
        if ch == "k" and self._peek() in ("<", "{", "'"):
            raise RegexError(f"backreference \\k (character {start}) matches a repeated text, which no finite "
                             "automaton does")
        if ch in "Az":
            return _Anchor(ch == "A", (start, self.pos), "\\" + ch)
        if ch in _ZERO_WIDTH_ESCAPES:
            self._braced()  # \b{start} and friends
            return None
        if ch in "pP":  # \pL or \p{Greek}
            if not self._braced():
                self.pos = min(self.pos + 1, len(self.src))
            return _Atom(_WIDE_CLASS)
        if ch in "xuU":  # \x7F, \u007F, \U0000007F or braced \x{10FFFF}
            if not self._braced():
                digits = {"x": 2, "u": 4, "U": 8}[ch]
                while digits and self._peek() and self._peek() in _HEX:
                    self.pos += 1
                    digits -= 1
            return _Atom(1)
        return _Atom(_WIDE_CLASS if ch in _CLASS_ESCAPES else 1)

    def _braced(self) -> bool:
        """Skip a ``{...}`` argument right here, if there is one."""
        if self._peek() != "{":
            return False
        end = self.src.find("}", self.pos)
        self.pos = len(self.src) if end < 0 else end + 1
        return True

    def _class(self) -> int:
        """Skip a bracket class (nested classes, escapes, ``[:name:]``); its weight."""
        wide = self._peek() == "^"
        depth = 1
        if self._peek() == "^":
            self.pos += 1
        if self._peek() == "]":
            self.pos += 1
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            self.pos += 1
            if ch == "\\":
                escaped = self._peek()
                self.pos += 1
                wide = wide or escaped in _CLASS_ESCAPES
                if escaped in "xuUpP":
                    self._braced()
            elif ch == "[" and self._peek() == ":":
                end = self.src.find(":]", self.pos)
                self.pos = len(self.src) if end < 0 else end + 2
            elif ch == "[":
                depth += 1
                if self._peek() == "^":
                    wide = True
                    self.pos += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    break
            elif ord(ch) > 0x7F:
                wide = True
        return _WIDE_CLASS if wide else 1

    def _group(self, start: int) -> _Node | None:
        if self._peek() == "?":
            for construct, name in _LOOKAROUND.items():
                if self.src.startswith(construct, start):
                    raise RegexError(f"{name} {construct!r} (character {start}) is not a regular construct and "
                                     "cannot be compiled into masks")
            if self.src.startswith("(?P=", start):
                raise RegexError(f"backreference (?P=...) (character {start}) matches a repeated text, which no "
                                 "finite automaton does")
            self.pos += 1
            if self._peek() in ("<", "P"):  # a named group: (?P<name>...) or (?<name>...)
                end = self.src.find(">", self.pos)
                self.pos = len(self.src) if end < 0 else end + 1
            else:
                while self.pos < len(self.src) and self._peek() not in ":)":
                    self.pos += 1
                if self._peek() == ")":  # (?flags): no group, only flags
                    self.pos += 1
                    return None
                self.pos += 1
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RegexError(f"groups nested more than {MAX_NESTING} deep (character {start})")
        inner = self._alternation()
        self.depth -= 1
        if self._peek() != ")":
            raise RegexError(f"unbalanced parenthesis: the group opened at character {start} is never closed")
        self.pos += 1
        return inner

    def _quantified(self, atom: _Node) -> _Node:
        node = atom
        while True:
            ch = self._peek()
            if ch in ("*", "+", "?"):
                self.pos += 1
                node = _Repeat(node, 1)
            elif ch == "{" and (counts := self._counts()) is not None:
                node = _Repeat(node, counts)
            else:
                return node
            if self._peek() == "?":  # lazy: the same language
                self.pos += 1

    def _counts(self) -> int | None:
        """A ``{n}``, ``{n,}`` or ``{n,m}`` here: the copies it unrolls into (None: not a repetition)."""
        end = self.src.find("}", self.pos)
        if end < 0:
            return None
        parts = self.src[self.pos + 1:end].replace(" ", "").split(",")
        if len(parts) > 2 or not parts[0].isdigit() or (len(parts) == 2 and parts[1] and not parts[1].isdigit()):
            return None
        self.pos = end + 1
        low = int(parts[0])
        high = int(parts[1]) if len(parts) == 2 and parts[1] else None
        return max(low + (1 if len(parts) == 2 and high is None else 0), high or 0, 1)
