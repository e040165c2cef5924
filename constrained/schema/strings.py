"""JSON string text: characters as they appear *encoded* inside the quotes.

Schema keywords speak about the decoded string, while the regex sees the JSON text. Every decoded character has
one canonical spelling (what ``json.dumps(..., ensure_ascii=False)`` writes): itself, except ``"`` and ``\\``
(backslash-escaped) and control characters (``\\n``-style or ``\\u00XX``). Character sets are therefore kept as
code-point ranges and spelled through :func:`char_set`. The generic string character additionally accepts the
other short escapes (``\\/``) and ``\\uXXXX`` outside the surrogate block (what ``ensure_ascii=True`` writes
for the BMP), each decoding to exactly one character, so a length bound counts one per unit. Surrogate escapes
are refused: a pair is two units but one character, which would break exact length counting.
"""

from __future__ import annotations

import json
import re

MAX_CODEPOINT = 0x10FFFF

# One decoded character, in any spelling we accept.
CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))'
# One character other than a line terminator (ECMA-262 `.`): \n, \r, U+2028, U+2029 excluded.
_SHORT_ESCAPES = {0x08: r"\\b", 0x09: r"\\t", 0x0A: r"\\n", 0x0C: r"\\f", 0x0D: r"\\r"}

Ranges = list[tuple[int, int]]


def normalize(ranges: Ranges) -> Ranges:
    """Sorted, merged, non-overlapping code-point ranges."""
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODEPOINT:
        out.append((nxt, MAX_CODEPOINT))
    return out


def subtract(ranges: Ranges, removed: Ranges) -> Ranges:
    keep = complement(removed)
    out: Ranges = []
    for lo, hi in normalize(ranges):
        for klo, khi in keep:
            a, b = max(lo, klo), min(hi, khi)
            if a <= b:
                out.append((a, b))
    return normalize(out)


def _class_char(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\x{{{cp:x}}}"


def _escape_spelling(cp: int) -> str:
    """Regex for the canonical JSON escape of a character that cannot appear raw."""
    if cp == 0x22:
        return r'\\"'
    if cp == 0x5C:
        return r"\\\\"
    if cp in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[cp]
    return f"\\\\u00{cp:02x}"


_RAW_FORBIDDEN: Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]


def char_set(ranges: Ranges) -> str | None:
    """Regex for one JSON-encoded character whose decoded value lies in ``ranges`` (None if empty)."""
    ranges = normalize(ranges)
    raw = subtract(ranges, _RAW_FORBIDDEN)
    parts: list[str] = []
    if raw:
        if len(raw) == 1 and raw[0][0] == raw[0][1]:
            parts.append(re.escape(chr(raw[0][0])) if chr(raw[0][0]).isprintable() else f"\\x{{{raw[0][0]:x}}}")
        else:
            body = "".join(_class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}" for lo, hi in raw)
            parts.append(f"[{body}]")
    special = subtract(ranges, complement(_RAW_FORBIDDEN))
    for lo, hi in special:
        parts.extend(_escape_spelling(cp) for cp in range(lo, hi + 1))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def literal_text(text: str) -> str:
    """Regex matching exactly the JSON text ``json.dumps(text, ensure_ascii=False)``, quotes included."""
    return escape(json.dumps(text, ensure_ascii=False))


def escape(text: str) -> str:
    """Escape a literal for the Rust regex dialect (meta characters only; odd characters as ``\\x{..}``)."""
    out = []
    for ch in text:
        if ch in r"\.+*?()|[]{}^$":
            out.append("\\" + ch)
        elif ch == " ":
            out.append(" ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{{{ord(ch):x}}}")
    return "".join(out)


def string_of_length(min_length: int, max_length: int | None, char: str = CHAR) -> str:
    """A quoted JSON string of min..max characters drawn from ``char``."""
    if max_length is None:
        rep = "*" if min_length == 0 else ("+" if min_length == 1 else f"{{{min_length},}}")
    elif max_length == min_length:
        rep = "" if min_length == 1 else f"{{{min_length}}}"
    else:
        rep = "?" if (min_length, max_length) == (0, 1) else f"{{{min_length},{max_length}}}"
    if max_length == 0:
        return '""'
    return f'"{char}{rep}"'
