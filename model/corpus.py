"""Deterministic generator of (prompt, target) training items for the built-in denoiser.

Three tasks, all synthetic so nothing is downloaded and no evaluation data leaks in:

* ``json``: a short text and the JSON value it describes, over random schemas drawn from a pool of field kinds
  (names, numbers, emails, dates, enums, booleans, arrays, nested objects). The target is
  ``json.dumps(value, ensure_ascii=False)`` with properties in schema order, as MaskBench writes instances.
* ``sql``: a question and its SQLite query over a random Spider-style schema given in the prompt (templates for
  projection, filters, aggregates, GROUP BY, ORDER BY/LIMIT and joins). Spider itself is never read.
* ``sudoku``: a puzzle and its 81-digit solution; solved grids come from shuffling a base grid, then cells are
  blanked. With ``minimal_sudoku`` the grid is found by search instead and the puzzle is a minimal one with that
  grid as its only solution (:mod:`constrained.puzzles.generate`).

Splits are disjoint by construction: an item belongs to ``held_out`` iff a hash of its prompt falls in one tenth
of the hash space, so the quality benchmark never scores a prompt the model trained on, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from constrained.prompts import compact_sql_schema, json_prompt, sql_prompt, sudoku_prompt
from constrained.puzzles.generate import searched_grid, unique_puzzle
from model import records

TRAIN_SEED = 20260
HELD_OUT_SEED = 777
KINDS = ("json", "sql", "sudoku")
DEFAULT_MIX = {"json": 0.45, "sql": 0.3, "sudoku": 0.25}


@dataclass(frozen=True)
class Item:
    """One training or evaluation example.

    ``meta`` carries what a checker needs: ``schema`` and the source ``text`` (json), ``tables`` as
    ``{table: [[column, sqlite_type]]}`` (sql), ``puzzle`` with ``.`` blanks (sudoku).
    """

    kind: str
    prompt: str
    target: str
    meta: dict = field(default_factory=dict, compare=False)


def split_of(prompt: str) -> str:
    """``"held_out"`` for one prompt in ten (by content hash), else ``"train"``."""
    digest = hashlib.blake2b(prompt.encode("utf-8"), digest_size=4).digest()
    return "held_out" if int.from_bytes(digest, "big") % 10 == 0 else "train"


def items(split: str = "train", seed: int | None = None, mix: dict[str, float] | None = None,
          invented_words: float = 0.0, minimal_sudoku: bool = False, varied: float = 0.0) -> Iterator[Item]:
    """Endless stream of items of ``split`` (``"train"`` or ``"held_out"``), reproducible from ``seed``.

    ``invented_words``: the share of JSON items whose list-drawn words (names, cities, tags...) are swapped for
    invented ones, in the text and the answer alike (see :func:`json_item`); 0 leaves every stream as it was.
    ``minimal_sudoku``: Sudoku items as :func:`sudoku_item` makes them with ``minimal``; False leaves every
    stream as it was. ``varied``: the share of JSON items that are :mod:`model.records` records in running prose
    (citations, people, addresses, products, in six languages) instead of ``label: value`` fields; 0 leaves every
    stream as it was.
    """
    if split not in ("train", "held_out"):
        raise ValueError(f"unknown split {split!r}")
    rng = random.Random(TRAIN_SEED if seed is None and split == "train" else HELD_OUT_SEED if seed is None else seed)
    weights = mix or DEFAULT_MIX
    kinds = list(weights)
    makers: dict[str, Callable[[random.Random], Item]] = {
        "json": lambda r: json_item(r, invented_words, varied), "sql": sql_item,
        "sudoku": lambda r: sudoku_item(r, minimal_sudoku)}
    while True:
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        item = makers[kind](rng)
        if split_of(item.prompt) == split:
            yield item


def take(n: int, split: str = "train", seed: int | None = None, mix: dict[str, float] | None = None,
         invented_words: float = 0.0, minimal_sudoku: bool = False, varied: float = 0.0) -> list[Item]:
    """The first ``n`` items of :func:`items`."""
    stream = items(split, seed, mix, invented_words, minimal_sudoku, varied)
    return [next(stream) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# Word pools
# ---------------------------------------------------------------------------------------------------------------

FIRST = (
    "Anna Ben Carla David Elena Farid Grace Hugo Ines Jonas Kira Liam Maria Noah Olga Pablo Quinn Rosa Samir Tara "
    "Umar Vera Wei Ximena Yuki Zoe Amir Bianca Chen Dana Emil Fatima George Hana Ivan Julia Kofi Lena Mateo Nina "
    "Oscar Priya Ravi Sofia Tomas Ursula Victor Wanda Yusuf Aiko José Zoë Søren Chloé Mónica Björn"
).split()
LAST = (
    "Smith Garcia Chen Müller Rossi Kim Novak Silva Khan Cohen Dubois Jensen Tanaka Okafor Ivanova Haddad Larsen "
    "Moreau Costa Patel Nguyen Schmidt Brown Lopez Wilson Martin Becker Sato Park Ali Fischer Bauer Weber Hoffmann "
    "Russo Romano Kowalski Jansen Peeters Andersson Nielsen O'Brien Walsh Murphy Reyes Cruz Ortiz Mendes Şahin"
).split()
CITIES = (
    "Paris Berlin Madrid Rome Lisbon Vienna Prague Warsaw Oslo Stockholm Helsinki Dublin Amsterdam Brussels Zurich "
    "Athens Istanbul Cairo Nairobi Lagos Tokyo Osaka Seoul Beijing Shanghai Mumbai Delhi Bangkok Jakarta Manila "
    "Sydney Melbourne Auckland Toronto Vancouver Montreal Chicago Boston Denver Seattle Austin Miami Lima Bogotá "
    "Santiago Quito Havana Lyon Porto Kraków Tallinn Riga Kyiv Dubai Doha Hanoi Perth"
).split()
COUNTRIES = (
    "France Germany Spain Italy Portugal Austria Poland Norway Sweden Finland Ireland Netherlands Belgium Greece "
    "Turkey Egypt Kenya Nigeria Japan Korea China India Thailand Indonesia Australia Canada Mexico Brazil Peru "
    "Chile Colombia Argentina Cuba Vietnam Morocco Ghana"
).split()
COMPANIES = (
    "Acme Globex Initech Umbrella Stark Wayne Hooli Vandelay Soylent Cyberdyne Tyrell Wonka Aperture Oscorp "
    "Gringotts Monarch Nakatomi Virtucon Zorg Dunder Pied Massive Blue Northwind Contoso Fabrikam Tailspin"
).split()
PRODUCTS = (
    "laptop phone tablet monitor keyboard mouse headphones camera printer router speaker charger backpack desk "
    "chair lamp kettle blender toaster bicycle helmet tent jacket sneakers watch notebook pen guitar drone"
).split()
COLORS = "red blue green yellow black white orange purple gray pink brown silver".split()
JOBS = (
    "engineer teacher nurse designer lawyer chef pilot farmer architect analyst developer manager writer "
    "photographer dentist pharmacist electrician plumber accountant researcher"
).split()
STREETS = "Main Oak Pine Maple Cedar Elm Lake Hill Park River Church Mill Station High Market Bridge".split()
STREET_KINDS = "Street Avenue Road Lane Way Boulevard".split()
DOMAINS = "example.com mail.com inbox.org post.net corp.io uni.edu web.de acme.co".split()
WORDS = (
    "urgent draft final review archived shared public private pending travel work family music sports science "
    "history art food health finance design research summer winter spring autumn"
).split()
STATUSES = (
    ("active", "inactive"),
    ("open", "closed", "pending"),
    ("new", "shipped", "delivered", "returned"),
    ("low", "medium", "high"),
    ("draft", "published", "archived"),
    ("bronze", "silver", "gold", "platinum"),
    ("small", "medium", "large"),
)


def _snake(words: list[str]) -> str:
    return "_".join(words)


def _camel(words: list[str]) -> str:
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _key(rng: random.Random, words: list[str]) -> str:
    """A property name in one of the styles real schemas use."""
    return rng.choice((_snake, _snake, _camel))(words)


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    first, last = (first, last) if first and last else _person(rng)
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}", first))
    ascii_local = "".join(ch for ch in local.lower() if ch in string.ascii_lowercase + string.digits + "._")
    return f"{ascii_local or 'user'}@{rng.choice(DOMAINS)}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1950, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _phone(rng: random.Random) -> str:
    return f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"


# ---------------------------------------------------------------------------------------------------------------
# JSON extraction
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Field:
    """One property: its schema, its value, and the phrase that states it in the text."""

    key: str
    schema: dict
    value: Any
    phrase: str


def _label(key: str) -> str:
    """How a text refers to a property: ``birth_date`` / ``birthDate`` -> ``birth date``."""
    out = []
    for ch in key:
        if ch.isupper():
            out.append(" " + ch.lower())
        else:
            out.append(" " if ch == "_" else ch)
    return "".join(out).strip()


def _stated(rng: random.Random, key: str, shown: str) -> str:
    label = _label(key)
    return rng.choice((f"{label}: {shown}", f"{label} is {shown}", f"the {label} is {shown}", f"{label} {shown}"))


def _string_field(rng: random.Random, words: list[str], value: str, schema_extra: dict | None = None) -> Field:
    key = _key(rng, words)
    return Field(key, {"type": "string", **(schema_extra or {})}, value, _stated(rng, key, value))


def _name_field(rng: random.Random) -> Field:
    first, last = _person(rng)
    key = rng.choice(("name", "full_name", "fullName", "author", "customer", "owner", "contact_name"))
    value = f"{first} {last}"
    phrase = rng.choice((value, f"{_label(key)}: {value}", f"{_label(key)} is {value}", f"by {value}"))
    return Field(key, {"type": "string"}, value, phrase)


def _integer_field(rng: random.Random) -> Field:
    words, lo, hi = rng.choice(
        (
            (["age"], 1, 99),
            (["year"], 1900, 2030),
            (["quantity"], 1, 500),
            (["count"], 0, 1000),
            (["stock"], 0, 9999),
            (["rooms"], 1, 12),
            (["pages"], 10, 900),
            (["employee", "id"], 1, 99999),
            (["order", "id"], 1000, 999999),
            (["score"], 0, 100),
            (["floor"], -2, 60),
            (["duration", "minutes"], 1, 300),
        )
    )
    key = _key(rng, words)
    value = rng.randint(lo, hi)
    schema: dict = {"type": "integer"}
    if rng.random() < 0.4:
        schema.update(minimum=lo, maximum=hi)
    phrase = rng.choice((_stated(rng, key, str(value)), f"{value} {_label(key)}")) if words != ["age"] else rng.choice(
        (f"aged {value}", f"{value} years old", _stated(rng, key, str(value)))
    )
    return Field(key, schema, value, phrase)


def _number_field(rng: random.Random) -> Field:
    words, lo, hi = rng.choice(
        (
            (["price"], 1, 5000),
            (["amount"], 1, 20000),
            (["weight", "kg"], 0, 120),
            (["rating"], 0, 5),
            (["temperature"], -30, 45),
            (["salary"], 1000, 20000),
            (["discount"], 0, 50),
            (["height", "m"], 1, 3),
            (["balance"], -500, 50000),
        )
    )
    key = _key(rng, words)
    value = round(rng.uniform(lo, hi), rng.choice((1, 2)))
    shown = json.dumps(value)
    return Field(key, {"type": "number"}, value, _stated(rng, key, shown))


def _bool_field(rng: random.Random) -> Field:
    words = rng.choice((["is", "active"], ["verified"], ["in", "stock"], ["paid"], ["available"], ["subscribed"]))
    key = _key(rng, words)
    value = rng.random() < 0.5
    label = _label(key)
    phrase = rng.choice((f"{label}: {'yes' if value else 'no'}", f"{label}: {json.dumps(value)}", f"{label} {json.dumps(value)}"))
    return Field(key, {"type": "boolean"}, value, phrase)


def _enum_field(rng: random.Random) -> Field:
    options = list(rng.choice(STATUSES))
    words = rng.choice((["status"], ["priority"], ["level"], ["tier"], ["size"], ["state"]))
    key = _key(rng, words)
    value = rng.choice(options)
    return Field(key, {"type": "string", "enum": options}, value, _stated(rng, key, value))


def _color_field(rng: random.Random) -> Field:
    options = rng.sample(COLORS, rng.randint(3, 6))
    key = _key(rng, rng.choice((["color"], ["colour"], ["favorite", "color"])))
    value = rng.choice(options)
    return Field(key, {"type": "string", "enum": options}, value, _stated(rng, key, value))


def _email_field(rng: random.Random) -> Field:
    key = rng.choice(("email", "contact_email", "contactEmail", "mail"))
    value = _email(rng)
    return Field(key, {"type": "string", "format": "email"}, value, rng.choice((value, _stated(rng, key, value))))


def _date_field(rng: random.Random) -> Field:
    key = _key(rng, rng.choice((["birth", "date"], ["date"], ["created", "at"], ["due", "date"], ["start", "date"], ["release", "date"])))
    value = _date(rng)
    return Field(key, {"type": "string", "format": "date"}, value, _stated(rng, key, value))


def _plain_string_field(rng: random.Random) -> Field:
    words, pool = rng.choice(
        (
            (["city"], CITIES),
            (["country"], COUNTRIES),
            (["company"], COMPANIES),
            (["product"], PRODUCTS),
            (["job", "title"], JOBS),
            (["occupation"], JOBS),
            (["category"], WORDS),
            (["item"], PRODUCTS),
            (["employer"], COMPANIES),
            (["hometown"], CITIES),
        )
    )
    return _string_field(rng, words, rng.choice(pool))


def _phone_field(rng: random.Random) -> Field:
    return _string_field(rng, rng.choice((["phone"], ["phone", "number"], ["mobile"])), _phone(rng))


def _code_field(rng: random.Random) -> Field:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 3)))
    value = f"{letters}-{rng.randint(100, 99999)}"
    return _string_field(rng, rng.choice((["sku"], ["code"], ["ticket"], ["reference"], ["serial"])), value,
                         {"pattern": "^[A-Z]{2,3}-[0-9]{3,5}$"})


def _tags_field(rng: random.Random) -> Field:
    key = _key(rng, rng.choice((["tags"], ["labels"], ["keywords"], ["skills"], ["interests"])))
    pool = JOBS if "skills" in key else WORDS
    value = rng.sample(pool, rng.randint(0, 4))
    shown = ", ".join(value) if value else "none"
    return Field(key, {"type": "array", "items": {"type": "string"}}, value, _stated(rng, key, shown))


def _scores_field(rng: random.Random) -> Field:
    key = _key(rng, rng.choice((["scores"], ["grades"], ["readings"], ["lap", "times"])))
    value = [rng.randint(0, 100) for _ in range(rng.randint(1, 5))]
    return Field(key, {"type": "array", "items": {"type": "integer"}}, value,
                 _stated(rng, key, ", ".join(map(str, value))))


def _address_field(rng: random.Random) -> Field:
    key = rng.choice(("address", "location", "shipping_address", "home"))
    street = f"{rng.randint(1, 299)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
    city = rng.choice(CITIES)
    zip_code = f"{rng.randint(10000, 99999)}"
    parts = [("street", street), ("city", city), ("zip", zip_code)]
    if rng.random() < 0.5:
        parts.append(("country", rng.choice(COUNTRIES)))
    schema = {"type": "object", "properties": {k: {"type": "string"} for k, _ in parts}, "required": [k for k, _ in parts]}
    value = dict(parts)
    phrase = rng.choice((
        f"{_label(key)}: " + ", ".join(v for _, v in parts),
        "lives at " + ", ".join(v for _, v in parts),
    ))
    return Field(key, schema, value, phrase)


def _line_items_field(rng: random.Random) -> Field:
    key = rng.choice(("items", "products", "order_lines", "lines"))
    lines = [{"name": p, "qty": rng.randint(1, 9)} for p in rng.sample(PRODUCTS, rng.randint(1, 3))]
    schema = {
        "type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
                  "required": ["name", "qty"]},
    }
    phrase = "ordered " + ", ".join(f"{line['qty']} x {line['name']}" for line in lines)
    return Field(key, schema, lines, phrase)


FIELD_MAKERS: tuple[Callable[[random.Random], Field], ...] = (
    _name_field, _integer_field, _number_field, _bool_field, _enum_field, _color_field, _email_field,
    _date_field, _plain_string_field, _plain_string_field, _phone_field, _code_field, _tags_field, _scores_field,
    _address_field, _line_items_field,
)


def _fields(rng: random.Random, count: int) -> list[Field]:
    chosen: list[Field] = []
    while len(chosen) < count:
        candidate = rng.choice(FIELD_MAKERS)(rng)
        if all(candidate.key != f.key for f in chosen):
            chosen.append(candidate)
    return chosen


def json_item(rng: random.Random, invented_words: float = 0.0, varied: float = 0.0) -> Item:
    """A text stating some fields in shuffled order, and the JSON object of those fields in schema order.

    With probability ``invented_words`` the words drawn from the corpus's lists are then replaced by invented
    ones (:func:`_with_invented_words`): a model that only ever sees 56 first names learns those names, not to
    copy a name from the text, and stumbles on the first one outside the list. With probability ``varied`` the
    item is a :func:`model.records.record` instead.
    """
    if varied and rng.random() < varied:
        schema, text, value = records.record(rng)
        return Item("json", json_prompt(schema, text), json.dumps(value, ensure_ascii=False),
                    {"schema": schema, "text": text})
    fields = _fields(rng, rng.randint(1, 5))
    nested_key = None
    if rng.random() < 0.15 and len(fields) >= 3:
        # Group the last fields under a nested object, to teach nesting beyond the fixed shapes above.
        nested_key = rng.choice(("details", "profile", "meta", "info", "contact"))
        inner, fields = fields[-2:], fields[:-2]
    required_mask = [rng.random() < 0.85 for _ in fields]
    present = [req or rng.random() < 0.5 for req in required_mask]
    properties = {f.key: f.schema for f in fields}
    schema: dict = {"type": "object", "properties": properties,
                    "required": [f.key for f, req in zip(fields, required_mask) if req]}
    value = {f.key: f.value for f, here in zip(fields, present) if here}
    phrases = [f.phrase for f, here in zip(fields, present) if here]
    if nested_key is not None:
        properties[nested_key] = {"type": "object", "properties": {f.key: f.schema for f in inner},
                                  "required": [f.key for f in inner]}
        schema["required"].append(nested_key)
        value[nested_key] = {f.key: f.value for f in inner}
        phrases += [f.phrase for f in inner]
    if rng.random() < 0.3:
        schema["additionalProperties"] = False
    rng.shuffle(phrases)
    joiner = rng.choice(("; ", ". ", ", ", "\n"))
    text = joiner.join(phrases) if phrases else "nothing to report"
    if invented_words and rng.random() < invented_words:
        text, value = _with_invented_words(rng, text, value, schema)
    return Item("json", json_prompt(schema, text), json.dumps(value, ensure_ascii=False),
                {"schema": schema, "text": text})


def json_leaves(node: Any) -> Iterator[Any]:
    """The scalars of a JSON value (strings, numbers, booleans, null), depth first."""
    if isinstance(node, dict):
        for child in node.values():
            yield from json_leaves(child)
    elif isinstance(node, list):
        for child in node:
            yield from json_leaves(child)
    else:
        yield node


_LISTED_WORDS = frozenset(
    word.lower() for pool in (FIRST, LAST, CITIES, COUNTRIES, COMPANIES, PRODUCTS, JOBS, WORDS, STREETS)
    for entry in pool for word in re.findall(r"[A-Za-z]{3,}", entry)
)
_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "k")


def _invented_word(rng: random.Random) -> str:
    """A pronounceable lowercase word of two or three syllables, almost never one of the listed words."""
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3))) + rng.choice(_CODAS)


def _with_invented_words(rng: random.Random, text: str, value: Any, schema: dict) -> tuple[str, Any]:
    """``text`` and ``value`` with every listed word of the value's strings replaced by an invented word, the same
    one wherever it occurs (``Anna`` and the ``anna`` of an email alike), its capitals kept. Words the schema
    spells (enum options) stay; so does the whole item if the new value would break the schema."""
    fixed = {w.lower() for w in re.findall(r"[A-Za-z]+", json.dumps(schema))}
    replacement: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = replacement.get(word.lower())
        if new is None:
            return word
        return new.upper() if word.isupper() and len(word) > 1 else new.capitalize() if word[0].isupper() else new

    for string_value in (leaf for leaf in json_leaves(value) if isinstance(leaf, str)):
        for word in re.findall(r"[A-Za-z]+", string_value):
            key = word.lower()
            if key in _LISTED_WORDS and key not in fixed and key not in replacement:
                replacement[key] = _invented_word(rng)
    if not replacement:
        return text, value
    rewritten = json.loads(re.sub(r"[A-Za-z]+", swap, json.dumps(value, ensure_ascii=False)))
    if not jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).is_valid(rewritten):
        return text, value
    return re.sub(r"[A-Za-z]+", swap, text), rewritten


# ---------------------------------------------------------------------------------------------------------------
# Text to SQL
# ---------------------------------------------------------------------------------------------------------------

# entity -> (plural, columns as (name, sqlite type, value pool or None for numbers))
ENTITIES: dict[str, tuple[str, list[tuple[str, str, tuple | None]]]] = {
    "singer": ("singers", [("name", "text", tuple(LAST)), ("country", "text", tuple(COUNTRIES)), ("age", "int", None), ("net_worth", "real", None)]),
    "student": ("students", [("name", "text", tuple(FIRST)), ("major", "text", tuple(WORDS)), ("age", "int", None), ("gpa", "real", None), ("city", "text", tuple(CITIES))]),
    "employee": ("employees", [("name", "text", tuple(FIRST)), ("role", "text", tuple(JOBS)), ("salary", "int", None), ("hire_year", "int", None)]),
    "product": ("products", [("product_name", "text", tuple(PRODUCTS)), ("color", "text", tuple(COLORS)), ("price", "real", None), ("stock", "int", None)]),
    "customer": ("customers", [("customer_name", "text", tuple(LAST)), ("city", "text", tuple(CITIES)), ("age", "int", None), ("level", "text", ("gold", "silver", "bronze"))]),
    "airport": ("airports", [("airport_name", "text", tuple(CITIES)), ("country", "text", tuple(COUNTRIES)), ("elevation", "int", None)]),
    "flight": ("flights", [("flight_number", "text", ("AF12", "LH400", "BA9", "UA77", "KL641")), ("distance", "int", None), ("price", "real", None), ("origin", "text", tuple(CITIES))]),
    "book": ("books", [("title", "text", tuple(WORDS)), ("genre", "text", ("novel", "poetry", "drama", "essay")), ("pages", "int", None), ("publish_year", "int", None)]),
    "author": ("authors", [("name", "text", tuple(LAST)), ("nationality", "text", tuple(COUNTRIES)), ("birth_year", "int", None)]),
    "team": ("teams", [("team_name", "text", tuple(CITIES)), ("league", "text", ("east", "west", "north", "south")), ("founded", "int", None), ("wins", "int", None)]),
    "player": ("players", [("player_name", "text", tuple(LAST)), ("position", "text", ("goalkeeper", "defender", "midfielder", "forward")), ("age", "int", None), ("goals", "int", None)]),
    "museum": ("museums", [("museum_name", "text", tuple(CITIES)), ("open_year", "int", None), ("num_of_staff", "int", None)]),
    "ship": ("ships", [("ship_name", "text", tuple(LAST)), ("ship_type", "text", ("cargo", "tanker", "ferry", "cruise")), ("tonnage", "int", None), ("built_year", "int", None)]),
    "course": ("courses", [("course_title", "text", tuple(WORDS)), ("credits", "int", None), ("department", "text", ("math", "physics", "history", "art"))]),
    "hotel": ("hotels", [("hotel_name", "text", tuple(COMPANIES)), ("city", "text", tuple(CITIES)), ("stars", "int", None), ("price_per_night", "real", None)]),
    "concert": ("concerts", [("concert_name", "text", tuple(WORDS)), ("theme", "text", tuple(WORDS)), ("year", "int", None)]),
    "orders": ("orders", [("order_date", "text", ("2020-01-05", "2021-07-19", "2022-11-30")), ("amount", "real", None), ("status", "text", ("open", "closed", "pending"))]),
    "department": ("departments", [("dept_name", "text", ("sales", "it", "hr", "legal", "finance")), ("budget", "real", None), ("num_employees", "int", None)]),
    "movie": ("movies", [("title", "text", tuple(WORDS)), ("director", "text", tuple(LAST)), ("release_year", "int", None), ("gross", "real", None)]),
    "restaurant": ("restaurants", [("restaurant_name", "text", tuple(COMPANIES)), ("cuisine", "text", ("thai", "italian", "mexican", "indian")), ("rating", "real", None)]),
}


@dataclass
class SqlSchema:
    """Random schema: a main table, optionally with a parent table it references through ``<parent>_id``."""

    tables: dict[str, list[tuple[str, str]]]
    pools: dict[tuple[str, str], tuple | None]
    main: str
    parent: str | None


def _sql_schema(rng: random.Random) -> SqlSchema:
    names = rng.sample(sorted(ENTITIES), 3)
    main, parent = names[0], (names[1] if rng.random() < 0.6 else None)
    tables: dict[str, list[tuple[str, str]]] = {}
    pools: dict[tuple[str, str], tuple | None] = {}
    for table in [main] + [n for n in names[1:] if n == parent or rng.random() < 0.3]:
        columns = list(ENTITIES[table][1])
        kept = [c for c in columns if rng.random() < 0.85] or columns[:1]
        tables[table] = [(f"{table}_id", "int")] + [(c, t) for c, t, _ in kept]
        pools.update({(table, c): pool for c, t, pool in kept})
    if parent is not None:
        tables[main].append((f"{parent}_id", "int"))
    # Schema order in the prompt is not always main-first, so the model must find tables by name.
    order = list(tables)
    rng.shuffle(order)
    return SqlSchema({t: tables[t] for t in order}, pools, main, parent)


def _words(column: str) -> str:
    return column.replace("_", " ")


def _columns_of(schema: SqlSchema, table: str, numeric: bool | None = None) -> list[str]:
    out = []
    for column, kind in schema.tables[table]:
        if column.endswith("_id"):
            continue
        if numeric is None or (kind in ("int", "real")) == numeric:
            out.append(column)
    return out


def _literal(rng: random.Random, schema: SqlSchema, table: str, column: str) -> tuple[str, str]:
    """A (SQL literal, question wording) pair for a value of ``column``."""
    pool = schema.pools.get((table, column))
    if pool:
        value = rng.choice(pool).replace("'", "''")
        return f"'{value}'", value.replace("''", "'")
    number = rng.randint(1, 2020) if "year" in column else rng.randint(1, 100)
    return str(number), str(number)


def _sql_question(rng: random.Random, schema: SqlSchema) -> tuple[str, str]:
    t = schema.main
    plural = ENTITIES[t][0]
    text_cols = _columns_of(schema, t, numeric=False) or _columns_of(schema, t)
    num_cols = _columns_of(schema, t, numeric=True)
    any_cols = _columns_of(schema, t)
    a = rng.choice(text_cols)
    templates: list[Callable[[], tuple[str, str]]] = []

    def select_all() -> tuple[str, str]:
        return f"List the {_words(a)} of all {plural}.", f"SELECT {a} FROM {t}"

    def count() -> tuple[str, str]:
        return rng.choice((f"How many {plural} are there?", f"Count the number of {plural}.")), f"SELECT count(*) FROM {t}"

    def distinct() -> tuple[str, str]:
        return f"What are the distinct {_words(a)} of {plural}?", f"SELECT DISTINCT {a} FROM {t}"

    def where_text() -> tuple[str, str]:
        b = rng.choice(text_cols)
        lit, shown = _literal(rng, schema, t, b)
        return f"Show the {_words(a)} of {plural} whose {_words(b)} is {shown}.", f"SELECT {a} FROM {t} WHERE {b} = {lit}"

    def count_where() -> tuple[str, str]:
        b = rng.choice(text_cols)
        lit, shown = _literal(rng, schema, t, b)
        return f"How many {plural} have {_words(b)} {shown}?", f"SELECT count(*) FROM {t} WHERE {b} = {lit}"

    templates += [select_all, count, distinct, where_text, count_where]
    if num_cols:
        n = rng.choice(num_cols)

        def where_num() -> tuple[str, str]:
            op, word = rng.choice(((">", "greater than"), ("<", "less than"), (">=", "at least"), ("<=", "at most")))
            lit, shown = _literal(rng, schema, t, n)
            return (f"Which {plural} have {_words(n)} {word} {shown}? Give their {_words(a)}.",
                    f"SELECT {a} FROM {t} WHERE {n} {op} {lit}")

        def aggregate() -> tuple[str, str]:
            fn, word = rng.choice((("avg", "average"), ("max", "maximum"), ("min", "minimum"), ("sum", "total")))
            return f"What is the {word} {_words(n)} of all {plural}?", f"SELECT {fn}({n}) FROM {t}"

        def min_max() -> tuple[str, str]:
            return (f"What are the maximum and minimum {_words(n)} of {plural}?", f"SELECT max({n}), min({n}) FROM {t}")

        def order_by() -> tuple[str, str]:
            desc = rng.random() < 0.5
            return (f"List the {_words(a)} of {plural} ordered by {_words(n)} {'descending' if desc else 'ascending'}.",
                    f"SELECT {a} FROM {t} ORDER BY {n} {'DESC' if desc else 'ASC'}")

        def top_one() -> tuple[str, str]:
            desc = rng.random() < 0.5
            return (f"What is the {_words(a)} of the {t} with the {'highest' if desc else 'lowest'} {_words(n)}?",
                    f"SELECT {a} FROM {t} ORDER BY {n} {'DESC' if desc else 'ASC'} LIMIT 1")

        def top_k() -> tuple[str, str]:
            k = rng.randint(2, 5)
            return (f"Show the {_words(a)} of the top {k} {plural} by {_words(n)}.",
                    f"SELECT {a} FROM {t} ORDER BY {n} DESC LIMIT {k}")

        def between() -> tuple[str, str]:
            lo, hi = sorted(rng.sample(range(1, 100), 2))
            return (f"Find the {_words(a)} of {plural} with {_words(n)} between {lo} and {hi}.",
                    f"SELECT {a} FROM {t} WHERE {n} BETWEEN {lo} AND {hi}")

        def group_avg() -> tuple[str, str]:
            g = rng.choice(text_cols)
            return (f"What is the average {_words(n)} for each {_words(g)}?",
                    f"SELECT {g}, avg({n}) FROM {t} GROUP BY {g}")

        templates += [where_num, aggregate, min_max, order_by, top_one, top_k, between, group_avg]

    def group_count() -> tuple[str, str]:
        g = rng.choice(text_cols)
        return (f"Show each {_words(g)} and the number of {plural} with it.", f"SELECT {g}, count(*) FROM {t} GROUP BY {g}")

    def having() -> tuple[str, str]:
        g = rng.choice(text_cols)
        k = rng.randint(1, 5)
        return (f"Which {_words(g)} values are shared by more than {k} {plural}?",
                f"SELECT {g} FROM {t} GROUP BY {g} HAVING count(*) > {k}")

    def most_common() -> tuple[str, str]:
        g = rng.choice(text_cols)
        return (f"What is the most common {_words(g)} among {plural}?",
                f"SELECT {g} FROM {t} GROUP BY {g} ORDER BY count(*) DESC LIMIT 1")

    def two_columns() -> tuple[str, str]:
        cols = rng.sample(any_cols, min(2, len(any_cols)))
        return (f"Show the {' and '.join(_words(c) for c in cols)} of every {t}.", f"SELECT {', '.join(cols)} FROM {t}")

    templates += [group_count, having, most_common, two_columns]
    if schema.parent is not None:
        p = schema.parent
        p_plural = ENTITIES[p][0]
        p_cols = _columns_of(schema, p, numeric=False) or _columns_of(schema, p)
        pc = rng.choice(p_cols)
        on = f"T1.{p}_id = T2.{p}_id"

        def join_select() -> tuple[str, str]:
            return (f"Show the {_words(a)} of each {t} and the {_words(pc)} of its {p}.",
                    f"SELECT T1.{a}, T2.{pc} FROM {t} AS T1 JOIN {p} AS T2 ON {on}")

        def join_where() -> tuple[str, str]:
            lit, shown = _literal(rng, schema, p, pc)
            return (f"List the {_words(a)} of {plural} whose {p} has {_words(pc)} {shown}.",
                    f"SELECT T1.{a} FROM {t} AS T1 JOIN {p} AS T2 ON {on} WHERE T2.{pc} = {lit}")

        def join_count() -> tuple[str, str]:
            return (f"For each {p} {_words(pc)}, how many {plural} are there?",
                    f"SELECT T2.{pc}, count(*) FROM {t} AS T1 JOIN {p} AS T2 ON {on} GROUP BY T2.{pc}")

        def not_in() -> tuple[str, str]:
            return (f"Which {p_plural} have no {plural}? Give their {_words(pc)}.",
                    f"SELECT {pc} FROM {p} WHERE {p}_id NOT IN (SELECT {p}_id FROM {t})")

        templates += [join_select, join_where, join_count, not_in]
    return rng.choice(templates)()


def sql_item(rng: random.Random) -> Item:
    """A question over a random schema and the SQLite query answering it."""
    schema = _sql_schema(rng)
    question, query = _sql_question(rng, schema)
    schema_text = compact_sql_schema({t: [c for c, _ in cols] for t, cols in schema.tables.items()})
    tables = {t: [[c, kind] for c, kind in cols] for t, cols in schema.tables.items()}
    return Item("sql", sql_prompt(schema_text, question), query, {"tables": tables})


# ---------------------------------------------------------------------------------------------------------------
# Sudoku
# ---------------------------------------------------------------------------------------------------------------


def solved_grid(rng: random.Random) -> str:
    """A random valid solved grid: a base pattern under random band/row/stack/column/digit shuffles and transpose."""
    def order() -> list[int]:
        bands = rng.sample(range(3), 3)
        return [b * 3 + r for b in bands for r in rng.sample(range(3), 3)]

    rows, cols = order(), order()
    digits = rng.sample(range(1, 10), 9)
    grid = [[digits[(3 * (r % 3) + r // 3 + c) % 9] for c in cols] for r in rows]
    if rng.random() < 0.5:
        grid = [list(col) for col in zip(*grid)]
    return "".join(str(d) for row in grid for d in row)


def sudoku_item(rng: random.Random, minimal: bool = False) -> Item:
    """A puzzle and its solution: between 17 and 60 givens of a :func:`solved_grid` (often with other solutions
    too), or with ``minimal`` a minimal puzzle whose only solution is a grid found by search (22 to 27 givens
    mostly). Why both: every :func:`solved_grid` is a shuffle of one pattern whose regularities a model can
    learn in place of the rules, and random blanks leave puzzles that propagation alone mostly solves."""
    if minimal:
        grid = searched_grid(3, rng)
        solution = "".join(map(str, grid))
        puzzle = "".join("." if value is None else str(value) for value in unique_puzzle(grid, rng))
    else:
        solution = solved_grid(rng)
        givens = rng.randint(17, 60)
        keep = set(rng.sample(range(81), givens))
        puzzle = "".join(ch if i in keep else "." for i, ch in enumerate(solution))
    return Item("sudoku", sudoku_prompt(puzzle), solution, {"puzzle": puzzle})
