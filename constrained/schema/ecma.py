"""ECMA-262 ``pattern`` regexes translated to the Rust dialect, over JSON-encoded string content.

A JSON Schema ``pattern`` is an unanchored *search* over the decoded string. We parse it (a small recursive
descent over the ECMA syntax), keep every character set as code-point ranges, and spell each set through
:func:`constrained.schema.strings.char_set`, so ``[^a]`` also admits ``\\"`` and ``\\n``. Top-level ``^``/``$``
anchor the search; without them the translation is wrapped in ``CHAR*``. Constructs no finite automaton
expresses (lookaround, backreferences, word boundaries, anchors in the middle) raise :class:`PatternNotCompilable`:
the caller then post-checks the pattern with Python ``re`` instead.
"""

from __future__ import annotations

from constrained.schema.strings import CHAR, Ranges, char_set, complement, normalize

DIGIT: Ranges = [(0x30, 0x39)]
WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE: Ranges = [
    (0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
]
LINE_TERMINATORS: Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_CLASS_ESCAPES = {"d": DIGIT, "w": WORD, "s": SPACE}
_CONTROL_ESCAPES = {"n": 0x0A, "r": 0x0D, "t": 0x09, "f": 0x0C, "v": 0x0B, "0": 0x00}

MAX_REPEAT = 1000


class PatternNotCompilable(Exception):
    """The pattern uses a construct outside regular languages (or outside what we translate)."""


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise PatternNotCompilable("unexpected end of pattern")
        self.pos += 1
        return ch

    # alternation := sequence ('|' sequence)*
    def alternation(self, top: bool = False) -> list[str]:
        branches = [self.sequence(top)]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence(top))
        return branches

    def sequence(self, top: bool) -> str:
        """One branch. At top level, a leading ``^`` / trailing ``$`` become anchors (else CHAR* padding)."""
        anchored_start = False
        if top and self.peek() == "^":
            self.pos += 1
            anchored_start = True
        items: list[str] = []
        anchored_end = False
        while self.peek() not in ("", "|", ")"):
            if self.peek() == "$":
                self.pos += 1
                if top and self.peek() in ("", "|"):
                    anchored_end = True
                    continue
                raise PatternNotCompilable("'$' inside the pattern")
            if self.peek() == "^":
                raise PatternNotCompilable("'^' inside the pattern")
            atom = self.atom()
            items.append(self.quantified(atom))
        body = "".join(items)
        if top:
            if not anchored_start:
                body = f"{CHAR}*" + body
            if not anchored_end:
                body = body + f"{CHAR}*"
        return body

    def quantified(self, atom: str) -> str:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.pos += 1
            rep = ch
        elif ch == "{" and self._brace_quantifier() is not None:
            lo, hi = self._brace_quantifier()  # type: ignore[misc]
            self.pos = self._brace_end
            if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
                raise PatternNotCompilable("counted repetition too large")
            rep = f"{{{lo}}}" if lo == hi else (f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}")
        else:
            return atom
        if self.peek() == "?":  # lazy: same language
            self.pos += 1
        if self.peek() in ("*", "+", "?") or (self.peek() == "{" and self._brace_quantifier() is not None):
            raise PatternNotCompilable("nested quantifier")
        return f"(?:{atom}){rep}"

    def _brace_quantifier(self) -> tuple[int, int | None] | None:
        end = self.src.find("}", self.pos)
        if end < 0:
            return None
        body = self.src[self.pos + 1 : end]
        lo_s, comma, hi_s = body.partition(",")
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
            return None
        self._brace_end = end + 1
        lo = int(lo_s)
        hi = lo if not comma else (int(hi_s) if hi_s else None)
        if hi is not None and hi < lo:
            raise PatternNotCompilable("repetition bounds out of order")
        return lo, hi

    def atom(self) -> str:
        ch = self.take()
        if ch == "(":
            if self.src.startswith("?:", self.pos):
                self.pos += 2
            elif self.src.startswith("?<", self.pos) and self.src[self.pos + 2 : self.pos + 3] not in ("=", "!"):
                end = self.src.find(">", self.pos)
                if end < 0:
                    raise PatternNotCompilable("bad group name")
                self.pos = end + 1
            elif self.peek() == "?":
                raise PatternNotCompilable("lookaround or inline flags")
            inner = self.alternation()
            if self.take() != ")":
                raise PatternNotCompilable("unbalanced parenthesis")
            return "(?:" + "|".join(inner) + ")"
        if ch == "[":
            return self._spell(self.char_class())
        if ch == ".":
            return self._spell(complement(LINE_TERMINATORS))
        if ch == "\\":
            return self._spell(self.escape(in_class=False))
        if ch in ")*+?":
            raise PatternNotCompilable(f"unexpected {ch!r}")
        if ch == "{" and self._brace_quantifier() is not None:
            raise PatternNotCompilable("quantifier without operand")
        return self._spell([(ord(ch), ord(ch))])

    @staticmethod
    def _spell(ranges: Ranges) -> str:
        rx = char_set(ranges)
        if rx is None:
            raise PatternNotCompilable("empty character set")
        return rx

    def escape(self, in_class: bool) -> Ranges:
        ch = self.take()
        if ch.lower() in _CLASS_ESCAPES:
            base = _CLASS_ESCAPES[ch.lower()]
            return complement(base) if ch.isupper() else list(base)
        if ch in _CONTROL_ESCAPES and not (ch == "0" and self.peek().isdigit()):
            cp = _CONTROL_ESCAPES[ch]
            return [(cp, cp)]
        if ch == "b" and in_class:
            return [(0x08, 0x08)]
        if ch in "bB":
            raise PatternNotCompilable("word boundary")
        if ch.isdigit():
            raise PatternNotCompilable("backreference")
        if ch == "x":
            return self._hex(2)
        if ch == "u":
            if self.peek() == "{":
                end = self.src.find("}", self.pos)
                if end < 0:
                    raise PatternNotCompilable("bad \\u{...} escape")
                cp = int(self.src[self.pos + 1 : end], 16)
                self.pos = end + 1
                return [(cp, cp)]
            return self._hex(4)
        if ch == "c":
            letter = self.take()
            return [(ord(letter) % 32, ord(letter) % 32)]
        if ch in "kpP":
            raise PatternNotCompilable(f"\\{ch} escape")
        return [(ord(ch), ord(ch))]

    def _hex(self, n: int) -> Ranges:
        digits = self.src[self.pos : self.pos + n]
        if len(digits) != n or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise PatternNotCompilable("bad hex escape")
        self.pos += n
        cp = int(digits, 16)
        if 0xD800 <= cp <= 0xDFFF:
            raise PatternNotCompilable("surrogate escape")
        return [(cp, cp)]

    def char_class(self) -> Ranges:
        negate = False
        if self.peek() == "^":
            negate = True
            self.pos += 1
        ranges: Ranges = []
        while True:
            ch = self.take()
            if ch == "]":
                break
            lo = self._class_atom(ch)
            if self.peek() == "-" and self.src[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                hi = self._class_atom(self.take())
                if len(lo) != 1 or len(hi) != 1 or lo[0][0] != lo[0][1] or hi[0][0] != hi[0][1]:
                    raise PatternNotCompilable("class range with a class escape")
                if hi[0][0] < lo[0][0]:
                    raise PatternNotCompilable("class range out of order")
                ranges.append((lo[0][0], hi[0][0]))
            else:
                ranges.extend(lo)
        ranges = normalize(ranges)
        return complement(ranges) if negate else ranges

    def _class_atom(self, ch: str) -> Ranges:
        if ch == "\\":
            return self.escape(in_class=True)
        if ch == "[" and self.peek() == ":":
            raise PatternNotCompilable("POSIX class")
        return [(ord(ch), ord(ch))]


def translate(pattern: str) -> str:
    """Rust-dialect regex for the JSON-encoded content (no quotes) of strings in which ``pattern`` is found."""
    parser = _Parser(pattern)
    branches = parser.alternation(top=True)
    if parser.pos != len(pattern):
        raise PatternNotCompilable("unbalanced parenthesis")
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def simple_repetition(pattern: str) -> tuple[str, int, int | None] | None:
    """For ``^C*$``, ``^C+$``, ``^C{m,n}$`` with C one character set: (char regex, min, max), else None.

    Such a pattern intersects exactly with a length bound by tightening the repetition counts.
    """
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    parser = _Parser(pattern[1:-1])
    try:
        if parser.peek() == "[":
            parser.pos += 1
            ranges = parser.char_class()
        elif parser.peek() == "\\":
            parser.pos += 1
            ranges = parser.escape(in_class=False)
        elif parser.peek() == ".":
            parser.pos += 1
            ranges = complement(LINE_TERMINATORS)
        else:
            return None
        quant = parser.src[parser.pos :]
        if quant == "*":
            lo, hi = 0, None
        elif quant == "+":
            lo, hi = 1, None
        elif quant.startswith("{") and parser._brace_quantifier() is not None and parser._brace_end == len(parser.src):
            lo, hi = parser._brace_quantifier()  # type: ignore[misc]
        else:
            return None
    except PatternNotCompilable:
        return None
    rx = char_set(ranges)
    if rx is None:
        return None
    return rx, lo, hi
