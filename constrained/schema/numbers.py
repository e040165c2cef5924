"""Numeric bounds as digit-range regexes.

JSON numbers are decimal text, so an interval ``[lo, hi]`` is a regular language: we split it by sign and by
integer part, then constrain the integer digits with classic same-length digit ranges and the fraction digits
lexicographically (``0.f >= 0.p`` compares digit strings after padding with zeros). Bounds with exponent notation
in the *text* are not produced: a bounded number is written in plain decimal form (what ``json.dumps`` writes for
all but very large or very small floats), which keeps the automaton small and the language exact.

Bounds too large or too precise to spell cheaply are reported as not compilable (``None``); the caller then
compiles the unbounded number and post-checks the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

INTEGER = r"-?(?:0|[1-9][0-9]*)"
NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"

# Bounds beyond these are post-checked instead of spelled out (the digit-range regex grows with the digits).
MAX_BOUND_DIGITS = 18
MAX_FRACTION_DIGITS = 12


@dataclass(frozen=True)
class Bound:
    """One end of an interval: its value and whether the value itself is allowed."""

    value: Decimal
    inclusive: bool


def _digit_class(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    if lo == 0 and hi == 9:
        return "[0-9]"
    return f"[{lo}-{hi}]"


def _alt(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return "(?:" + "|".join(parts) + ")"


def _same_length_range(a: str, b: str) -> str:
    """Digit strings of len(a) between a and b (inclusive), both of the same length, a <= b."""
    if not a:
        return ""
    if a == b:
        return a
    if len(a) == 1:
        return _digit_class(int(a), int(b))
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return _digit_class(int(a[0]), int(b[0])) + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}")
    if a[0] == b[0]:
        return a[0] + _same_length_range(a[1:], b[1:])
    parts = [a[0] + _same_length_range(a[1:], "9" * rest)]
    if int(b[0]) - int(a[0]) > 1:
        parts.append(_digit_class(int(a[0]) + 1, int(b[0]) - 1) + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"))
    parts.append(b[0] + _same_length_range("0" * rest, b[1:]))
    return _alt(parts)


def integer_digits(lo: int, hi: int | None) -> str | None:
    """Canonical decimal digits (no sign, no leading zeros) of the integers in [lo, hi]; hi None = unbounded."""
    if lo < 0 or (hi is not None and hi < lo):
        return None
    parts: list[str] = []
    lo_len = len(str(lo))
    top_len = len(str(hi)) if hi is not None else lo_len
    for length in range(lo_len, top_len + 1):
        start = max(lo, 0 if length == 1 else 10 ** (length - 1))
        end = 10**length - 1 if hi is None else min(hi, 10**length - 1)
        if start <= end:
            parts.append(_same_length_range(str(start), str(end)))
    if hi is None:
        parts.append(f"[1-9][0-9]{{{lo_len},}}")
    return _alt(parts) if parts else None


# ---- fractions: digit strings f read as 0.f; each function returns (regex for non-empty f or None, empty ok)


def _join(parts: list[str]) -> str | None:
    return _alt(parts) if parts else None


def _then(digit: str, sub: tuple[str | None, bool]) -> str | None:
    """A digit followed by a suffix from ``sub`` (possibly the empty suffix)."""
    rx, empty = sub
    if rx is None:
        return digit if empty else None
    return digit + (f"(?:{rx})?" if empty else rx)


def _frac_at_least(p: str, inclusive: bool) -> tuple[str | None, bool]:
    if not p:
        return ("[0-9]+", True) if inclusive else ("[0-9]*[1-9][0-9]*", False)
    d = int(p[0])
    parts = []
    if d < 9:
        parts.append(_digit_class(d + 1, 9) + "[0-9]*")
    tail = _then(str(d), _frac_at_least(p[1:], inclusive))
    if tail:
        parts.append(tail)
    return _join(parts), False


def _frac_at_most(q: str, inclusive: bool) -> tuple[str | None, bool]:
    if not q:
        return ("0+", True) if inclusive else (None, False)
    d = int(q[0])
    parts = []
    if d > 0:
        parts.append(_digit_class(0, d - 1) + "[0-9]*")
    tail = _then(str(d), _frac_at_most(q[1:], inclusive))
    if tail:
        parts.append(tail)
    return _join(parts), True


def _frac_between(p: str, q: str, lo_inc: bool, hi_inc: bool) -> tuple[str | None, bool]:
    """Fractions with 0.p <= 0.f <= 0.q (strictness per flag); p, q without trailing zeros, 0.p <= 0.q."""
    if p == q:
        return ("0+" if not p else p + "0*", not p) if (lo_inc and hi_inc) else (None, False)
    if not p:
        rx_hi, _ = _frac_at_most(q, hi_inc)
        if lo_inc:
            return rx_hi, True
        # strictly above zero: at least one non-zero digit, and at most q
        sub = _frac_between_positive(q, hi_inc)
        return sub, False
    dp, dq = int(p[0]), int(q[0])
    if dp == dq:
        return _then(p[0], _frac_between(p[1:], q[1:], lo_inc, hi_inc)), False
    parts = []
    low = _then(p[0], _frac_at_least(p[1:], lo_inc))
    if low:
        parts.append(low)
    if dq - dp > 1:
        parts.append(_digit_class(dp + 1, dq - 1) + "[0-9]*")
    high = _then(q[0], _frac_at_most(q[1:], hi_inc))
    if high:
        parts.append(high)
    return _join(parts), False


def _frac_between_positive(q: str, hi_inc: bool) -> str | None:
    """Non-empty fractions with 0 < 0.f <= 0.q (or < when not hi_inc)."""
    if not q:
        return None
    d = int(q[0])
    if d == 0:
        rest = _frac_between_positive(q[1:], hi_inc)
        return None if rest is None else "0" + rest
    parts = ["0[0-9]*[1-9][0-9]*"]
    if d > 1:
        parts.append(_digit_class(1, d - 1) + "[0-9]*")
    high = _then(str(d), _frac_at_most(q[1:], hi_inc))
    if high:
        parts.append(high)
    return _join(parts)


def _fraction_regex(sub: tuple[str | None, bool]) -> str | None:
    """Turn a fraction language into the optional ``.digits`` part of a JSON number."""
    rx, empty = sub
    if rx is None:
        return "" if empty else None
    return f"(?:\\.{rx})?" if empty else f"\\.{rx}"


def _split(value: Decimal) -> tuple[int, str]:
    """Integer part and fraction digits (no trailing zeros) of a non-negative decimal."""
    integer = int(value)
    frac = format(value - integer, "f")
    digits = frac.split(".")[1].rstrip("0") if "." in frac else ""
    return integer, digits


def _magnitudes(lo: Bound, hi: Bound | None, integer: bool) -> str | None:
    """Unsigned decimal texts with value in [lo, hi]; lo >= 0; hi None = unbounded."""
    lo_int, lo_frac = _split(lo.value)
    if integer:
        first = lo_int + 1 if (lo_frac or not lo.inclusive) else lo_int
        last = None
        if hi is not None:
            hi_int, hi_frac = _split(hi.value)
            last = hi_int if (hi_frac or hi.inclusive) else hi_int - 1
            if last < first:
                return None
        return integer_digits(first, last)
    parts: list[str] = []
    if hi is None:
        head = _fraction_regex(_frac_at_least(lo_frac, lo.inclusive))
        if head is not None:
            parts.append(integer_digits(lo_int, lo_int) + head)
        rest = integer_digits(lo_int + 1, None)
        parts.append(rest + r"(?:\.[0-9]+)?")
        return _alt(parts)
    hi_int, hi_frac = _split(hi.value)
    if lo_int == hi_int:
        frac = _fraction_regex(_frac_between(lo_frac, hi_frac, lo.inclusive, hi.inclusive))
        return None if frac is None else integer_digits(lo_int, lo_int) + frac
    head = _fraction_regex(_frac_at_least(lo_frac, lo.inclusive))
    if head is not None:
        parts.append(integer_digits(lo_int, lo_int) + head)
    if hi_int - lo_int > 1:
        parts.append(integer_digits(lo_int + 1, hi_int - 1) + r"(?:\.[0-9]+)?")
    tail = _fraction_regex(_frac_at_most(hi_frac, hi.inclusive))
    if tail is not None:
        parts.append(integer_digits(hi_int, hi_int) + tail)
    return _alt(parts) if parts else None


def _too_costly(bound: Bound | None) -> bool:
    if bound is None:
        return False
    integer, frac = _split(abs(bound.value))
    return len(str(integer)) > MAX_BOUND_DIGITS or len(frac) > MAX_FRACTION_DIGITS


class BoundTooCostly(Exception):
    """The bounds need too many digits to spell; the caller compiles the unbounded form and post-checks."""


def bounded_number(lo: Bound | None, hi: Bound | None, *, integer: bool) -> str | None:
    """Regex of JSON numbers (integers when ``integer``) in the interval; None when the interval is empty.

    Raises :class:`BoundTooCostly` when a bound has too many digits to spell out cheaply.
    """
    if _too_costly(lo) or _too_costly(hi):
        raise BoundTooCostly
    if lo is None and hi is None:
        return INTEGER if integer else NUMBER
    if lo is not None and hi is not None and (
        lo.value > hi.value or (lo.value == hi.value and not (lo.inclusive and hi.inclusive))
    ):
        return None
    zero = Decimal(0)
    parts: list[str] = []
    # non-negative side: values in [max(lo, 0), hi]
    if hi is None or hi.value > zero or (hi.value == zero and hi.inclusive):
        low = lo if (lo is not None and lo.value >= zero) else Bound(zero, True)
        if lo is not None and lo.value == zero:
            low = lo
        mags = _magnitudes(low, hi, integer)
        if mags is not None:
            parts.append(mags)
    # negative side: -m with m in (0, -lo] (m = 0 is the non-negative side's job)
    if lo is None or lo.value < zero:
        top = None if lo is None else Bound(-lo.value, lo.inclusive)
        bottom = Bound(zero, False)
        if hi is not None and hi.value < zero:
            bottom = Bound(-hi.value, hi.inclusive)
        if top is None or top.value > bottom.value or (
            top.value == bottom.value and top.inclusive and bottom.inclusive
        ):
            mags = _magnitudes(bottom, top, integer)
            if mags is not None:
                parts.append("-" + mags)
    return _alt(parts) if parts else None


def to_decimal(value: object) -> Decimal:
    """Exact decimal of a JSON number from a schema (floats via their shortest repr)."""
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError) as exc:  # pragma: no cover - meta-schema guarantees numbers
        raise ValueError(f"not a number: {value!r}") from exc
