"""``format`` as regexes over the quoted JSON string, plus matching commit-time checkers.

Formats are enforced (assertion), as MaskBench's labels assume. Each regex is at least as strict as its checker
(RFC 3339 dates and times with an upper-case ``T``/``Z``, dotted-quad IPv4, RFC 4291 IPv6 text forms, RFC 1123
hostnames, RFC 3986 URIs with a scheme, ``local@domain.tld`` emails). Where the regex over-approximates (leap
days; hostname total length), the checker in :data:`CHECKERS` closes the gap at commit time.

Formats we do not compile: if the installed jsonschema's FormatChecker knows them they are post-checked with it;
otherwise they are annotations (jsonschema ignores them too).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable

_DATE = (
    r"[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-9]))"
)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = r"[0-9a-fA-F]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "(?:" + "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
) + ")"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@{_LABEL}(?:\.{_LABEL})+"
_URI_CHAR = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})"
_URI = rf"[A-Za-z][A-Za-z0-9+.\-]*:{_URI_CHAR}+"
_URI_REFERENCE = rf"{_URI_CHAR}*"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

# Regex for the string content (inside the quotes; none of these can contain a character JSON must escape,
# except that `/` could also be written `\/`, which we do not accept).
REGEXES: dict[str, str] = {
    "date": _DATE,
    "time": _TIME,
    "date-time": rf"{_DATE}T{_TIME}",
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "hostname": _HOSTNAME,
    "email": _EMAIL,
    "uri": _URI,
    "uri-reference": _URI_REFERENCE,
    "uuid": _UUID,
}


def _date_ok(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def _hostname_ok(text: str) -> bool:
    return len(text) <= 253


# Commit-time checks for what the regexes above leave open (used by the Constraint's check).
CHECKERS: dict[str, Callable[[str], bool]] = {
    "date": lambda s: bool(re.fullmatch(_DATE, s)) and _date_ok(s),
    "date-time": lambda s: bool(re.fullmatch(REGEXES["date-time"], s)) and _date_ok(s),
    "time": lambda s: bool(re.fullmatch(_TIME, s)),
    "ipv4": lambda s: bool(re.fullmatch(_IPV4, s)),
    "ipv6": lambda s: _ipv6_ok(s),
    "hostname": lambda s: bool(re.fullmatch(_HOSTNAME, s)) and _hostname_ok(s),
    "email": lambda s: bool(re.fullmatch(_EMAIL, s)),
    "uri": lambda s: bool(re.fullmatch(_URI, s)),
    "uri-reference": lambda s: bool(re.fullmatch(_URI_REFERENCE, s)),
    "uuid": lambda s: bool(re.fullmatch(_UUID, s)),
}

# Formats whose regex is exact (no commit-time gap).
EXACT = frozenset({"time", "ipv4", "ipv6", "email", "uri", "uri-reference", "uuid"})


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return bool(re.fullmatch(_IPV6, text))
