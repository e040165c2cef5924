"""JSON text layout: whitespace, separators, ordered members, arrays, literal values, any value.

Whitespace is bounded so the automaton stays finite and small. After ``{``, ``[`` and ``,`` and before ``}``
and ``]`` we allow nothing, one space, or a newline followed by up to ``indent`` spaces; after ``:`` nothing or
one space. That admits ``json.dumps`` output with its default separators (``", "``, ``": "``), compact output
(``","``, ``":"``) and ``indent=2`` output nested up to ``indent // 2`` levels.

Regexes are plain strings; ``None`` stands for the empty language and is propagated (an optional member whose
value is impossible is left out; a required one empties its object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from constrained.schema.numbers import NUMBER
from constrained.schema.strings import CHAR, Ranges, escape, literal_text, subtract

Regex = str | None


class RegexTooLong(Exception):
    """A piece of regex outgrew :attr:`Layout.max_length` while being built (the compiler names the pointer)."""

    def __init__(self, length: int) -> None:
        super().__init__(f"{length} characters")
        self.length = length

#: Raw key characters for keys spelled without escapes (the only keys the complement of known names admits).
KEY_CHARS: Ranges = subtract([(0, 0x10FFFF)], [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])


@dataclass(frozen=True)
class Layout:
    """Whitespace policy, shared by every piece of one compiled schema, and the longest regex it may build
    (:class:`RegexTooLong` past it, raised while building so that no oversized text is ever made)."""

    indent: int = 8
    max_length: int | None = None

    @property
    def item_ws(self) -> str:
        return f"(?:[ ]|\\n[ ]{{0,{self.indent}}})?" if self.indent else "[ ]?"

    @property
    def colon(self) -> str:
        return ":[ ]?"

    @property
    def comma(self) -> str:
        return "," + self.item_ws

    def member(self, key: str, value: str) -> str:
        """``key`` is a regex for the quoted key."""
        return key + self.colon + value

    def members(self, items: list[tuple[str, str]], tail: Regex = None) -> str:
        """An object with ``items`` (regex, 'required' | 'optional') in order, then any number of ``tail``.

        Every in-order subset that keeps the required ones is accepted with correct commas. Built right to
        left: ``after`` = the rest when something was already written (each member led by a comma), ``first``
        = the alternatives for the rest when nothing was written yet. Each optional member before the first
        required one repeats ``after`` once (quadratic only in that leading run of optional members); the
        ``tail`` is factored out so that it appears at most three times whatever the number of members.
        """
        comma = self.comma
        after = ""
        first: list[str] = []
        empty_ok = True
        built = 0  # characters in ``first``: quadratic in a run of optional members
        for regex, kind in reversed(items):
            if kind == "required":
                first, empty_ok = [regex + after], False
                built = len(first[0])
                after = comma + regex + after
            else:
                first = [regex + after, *first]
                built += len(first[0])
                after = f"(?:{comma}{regex})?" + after
            self._bound(built + len(after))
        known = ("(?:" + "|".join(first) + ")") if len(first) > 1 else (first[0] if first else "")
        if tail:
            more = f"(?:{comma}{tail})*"
            if not first:
                body = f"(?:{tail}{more})?"
            elif empty_ok:
                body = f"(?:{known}{more}|{tail}{more})?"
            else:
                body = known + more
        else:
            body = f"(?:{known})?" if (first and empty_ok) else known
        ws = self.item_ws
        if not body:
            return f"\\{{{ws}\\}}"
        return f"\\{{{ws}{body}{ws}\\}}"

    def _bound(self, length: int) -> None:
        if self.max_length is not None and length > self.max_length:
            raise RegexTooLong(length)

    def array(self, head: list[tuple[str, bool]], rest: Regex, rest_min: int, rest_max: int | None) -> str:
        """An array: ``head`` elements (regex, required) in order, then ``rest`` elements, their count in
        [rest_min, rest_max]. An optional head element only ends the array early, so the optional parts
        nest (``a(,b(,c)?)?``) and the text stays linear.
        """
        comma = self.comma
        has_rest = rest is not None and (rest_max is None or rest_max > 0)

        def from_index(j: int, lead: str) -> str:
            if j == len(head):
                if not has_rest:
                    return ""
                if lead:
                    return _counted(lead + rest, rest_min, rest_max)
                more = _counted(comma + rest, max(rest_min - 1, 0), None if rest_max is None else rest_max - 1)
                return rest + more if rest_min > 0 else f"(?:{rest}{more})?"
            regex, required = head[j]
            inner = lead + regex + from_index(j + 1, comma)
            return inner if required else f"(?:{inner})?"

        body = from_index(0, "")
        ws = self.item_ws
        return f"\\[{ws}{body}{ws}\\]" if body else f"\\[{ws}\\]"


def _counted(unit: str, lo: int, hi: int | None) -> str:
    if hi is not None and hi == 0:
        return ""
    if (lo, hi) == (0, None):
        return f"(?:{unit})*"
    if (lo, hi) == (1, None):
        return f"(?:{unit})+"
    if (lo, hi) == (0, 1):
        return f"(?:{unit})?"
    if hi is None:
        return f"(?:{unit}){{{lo},}}"
    if lo == hi == 1:
        return unit
    return f"(?:{unit}){{{lo}}}" if lo == hi else f"(?:{unit}){{{lo},{hi}}}"


def alternation(parts: list[Regex]) -> Regex:
    kept = list(dict.fromkeys(p for p in parts if p is not None))
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else "(?:" + "|".join(kept) + ")"


STRING = f'"{CHAR}*"'
SCALAR = f"(?:{STRING}|{NUMBER}|true|false|null)"


def any_value(layout: Layout, depth: int, scalar: str = SCALAR, key: Regex = STRING) -> str:
    """Any JSON value nested at most ``depth`` containers deep, its scalars from ``scalar`` and its keys from ``key``
    (``None``: objects are empty)."""
    value = scalar
    for _ in range(depth):
        members = ""
        if key is not None:
            member = layout.member(key, value)
            members = f"(?:{member}(?:{layout.comma}{member})*)?"
        obj = f"\\{{{layout.item_ws}{members}{layout.item_ws}\\}}"
        arr = f"\\[{layout.item_ws}(?:{value}(?:{layout.comma}{value})*)?{layout.item_ws}\\]"
        value = f"(?:{scalar}|{obj}|{arr})"
    return value


def literal(layout: Layout, value: Any) -> str:
    """The JSON text of one value, members in their given order, with the layout's whitespace."""
    if isinstance(value, dict):
        items = [(layout.member(literal_text(str(k)), literal(layout, v)), "required") for k, v in value.items()]
        return layout.members(items)
    if isinstance(value, list):
        return layout.array([(literal(layout, v), True) for v in value], None, 0, 0)
    return escape(json.dumps(value, ensure_ascii=False))


def key_not_in(names: list[str]) -> str:
    """A quoted key spelled without escapes whose text is none of ``names`` (complement through a trie).

    At each trie node: stop (if the node is not a name), or a character leading out of the trie then any key
    characters, or a child character and the complement below it. Classes are written negated
    (``[^"\\\x00-\x1f...]``) to keep the text short.
    """
    trie: dict = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ch, {})
        node[""] = {}
    any_key = r'[^"\\\x00-\x1f]*'

    def below(node: dict) -> str:
        children = [ch for ch in node if ch and 0x20 <= ord(ch) and ch not in '"\\']
        excluded = "".join(_class_escape(ch) for ch in children)
        parts = [f'[^"\\\\\\x00-\\x1f{excluded}]' + any_key]
        parts += [escape(ch) + below(node[ch]) for ch in children]
        body = "(?:" + "|".join(parts) + ")"
        return body if "" in node else body + "?"

    return '"' + below(trie) + '"'


def _class_escape(ch: str) -> str:
    """One character inside a bracket class."""
    if ch in "\\]^-[&~":
        return "\\" + ch
    return ch if ch.isprintable() else f"\\x{{{ord(ch):x}}}"
