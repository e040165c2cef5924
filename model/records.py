"""Extraction records in running prose: citations, people, postal addresses and product offers, in six languages.

Why: the corpus's other JSON items state each field as ``label: value`` in English, over a few dozen listed words,
and a model trained on them alone reads a real citation badly (a title cut to one word, authors that are fragments
of the sentence). Here every value sits inside a sentence the way real texts put it (``Chen, W., & Okafor, N.
(2019). Title. Venue, 12(3), 45-67.``), names and places come in their own scripts and spellings (``王芳``,
``Αθήνα``, ``Łukasz``), and titles and models mix invented words in, so that the only way to the answer is to
copy spans of the text.

Every record is ``(schema, text, value)``; each string of ``value`` is a span of ``text`` (but an enum's option: a
currency code read from its symbol), each number is spelled in it. :func:`model.corpus.json_item` turns a record
into an item.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

# Given name, family name, and whether the script writes the family name first without a space (CJK).
PEOPLE = (
    ("Wei", "Chen", False), ("Ngozi", "Okafor", False), ("Łukasz", "Nowak", False), ("François", "Dubois", False),
    ("Zoë", "Núñez", False), ("Søren", "Kierkegaard-Holm", False), ("Ayşe", "Yılmaz", False),
    ("Nguyễn", "Văn An", False), ("Siddharth", "Rao", False), ("María José", "García-López", False),
    ("Иван", "Петров", False), ("Анна", "Смирнова", False), ("Ελένη", "Παπαδοπούλου", False),
    ("محمد", "العلي", False), ("Fatima", "Al-Sayed", False), ("Kwame", "Mensah", False), ("Aroha", "Ngata", False),
    ("芳", "王", True), ("健", "佐藤", True), ("민준", "김", True), ("Hiroshi", "Tanaka", False),
    ("Olumide", "Adeyemi", False), ("Björn", "Lindqvist", False), ("Chloé", "Lefèvre", False),
    ("Jürgen", "Weiß", False), ("Ana", "Gonçalves", False), ("Priya", "Raghunathan", False),
    ("Dmitri", "Volkov", False), ("Leilani", "Kahale", False), ("Tomás", "Ó Briain", False),
)
CITIES = (
    ("München", "Deutschland"), ("Zürich", "Schweiz"), ("Москва", "Россия"), ("東京", "日本"), ("São Paulo", "Brasil"),
    ("Kraków", "Polska"), ("Αθήνα", "Ελλάδα"), ("القاهرة", "مصر"), ("Montréal", "Canada"), ("Reykjavík", "Ísland"),
    ("Bogotá", "Colombia"), ("İstanbul", "Türkiye"), ("서울", "대한민국"), ("Lyon", "France"), ("Nairobi", "Kenya"),
    ("Wellington", "New Zealand"), ("Chennai", "India"), ("Valparaíso", "Chile"), ("Göteborg", "Sverige"),
    ("Hà Nội", "Việt Nam"), ("Springfield", "USA"), ("Aberdeen", "United Kingdom"),
)
JOBS = ("data engineer", "nurse", "civil engineer", "translator", "pharmacist", "teacher", "architect", "chef",
        "software developer", "economist", "journalist", "veterinarian")
COMPANIES = ("Siemens", "Initech", "Nordwind GmbH", "Lumora Labs", "Banco Andino", "Keystone & Co.",
             "Société Générale des Eaux", "Hanmi Tech", "Tata Motors", "Oakridge Clinic", "Umbrella S.A.")
TITLE_WORDS = ("learning", "graph", "neural", "robust", "sparse", "protein", "language", "model", "inference",
               "climate", "urban", "memory", "diffusion", "causal", "quantum", "coastal", "networks", "evidence",
               "migration", "soil", "markets", "attention", "privacy", "vision", "reasoning", "policy")
TITLE_SHAPES = ("{A} {b} for {c} {d}", "Towards {b} {c}", "On the {b} of {c} {d}", "{A} {b}: a study of {c} {d}",
                "What {b} {c} tells us about {d}", "{A} and {b} {c} in {D}", "Scaling {b} {c} with {d} {e}")
VENUES = ("Proceedings of ACL", "NeurIPS", "Nature", "Journal of Machine Learning Research", "ICML",
          "Physical Review Letters", "The Lancet", "Proceedings of the VLDB Endowment", "CHI Conference",
          "Revue d'économie politique", "Zeitschrift für Soziologie", "Annals of Statistics", "EMNLP", "Cell")
STREETS = {"de": ("Hauptstraße", "Lindenweg", "Schillerstraße", "Am Markt"),
           "fr": ("rue de la Paix", "avenue Victor Hugo", "boulevard Saint-Michel", "rue des Écoles"),
           "en": ("Baker Street", "Elm Avenue", "Harbour Road", "Maple Lane"),
           "es": ("Calle Mayor", "Avenida de la Constitución", "Calle del Sol", "Paseo de Gracia")}
BRANDS = ("Acme", "Lumora", "Nordwind", "Keystone", "Hanmi", "Veltro", "Sakura", "Orbis", "Tessellate")
PRODUCT_KINDS = ("laptop", "phone", "e-bike", "espresso machine", "headphones", "drone", "monitor", "tent")
COLORS = ("graphite", "silver", "midnight blue", "sage green", "rosé", "schwarz", "blanc", "rojo")
CURRENCIES = (("€", "EUR"), ("$", "USD"), ("£", "GBP"), ("¥", "JPY"), ("CHF ", "CHF"))
_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "vash", "el", "dor", "qui", "zan", "bri", "os", "ne", "fal")


def _invented(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))


def _word(rng: random.Random) -> str:
    """A title word: listed, or one in four invented (a title is copied, never recalled)."""
    return _invented(rng) if rng.random() < 0.25 else rng.choice(TITLE_WORDS)


def _full_name(rng: random.Random) -> tuple[str, str, str]:
    """``(full name, given, family)`` as the name's own script writes it."""
    given, family, family_first = rng.choice(PEOPLE)
    return (f"{family}{given}" if family_first else f"{given} {family}"), given, family


def _title(rng: random.Random) -> str:
    slots = {key: _word(rng) for key in "abcde"}
    slots.update(A=slots["a"].capitalize(), D=slots["d"].capitalize())
    return rng.choice(TITLE_SHAPES).format(**slots)


def citation(rng: random.Random) -> tuple[dict, str, dict]:
    """A reference in APA, MLA-like or narrative form, with title, authors, year, venue and sometimes pages."""
    title, venue, year = _title(rng), rng.choice(VENUES), rng.randint(1975, 2026)
    people = [_full_name(rng) for _ in range(rng.randint(1, 4))]
    style = rng.choice(("apa", "mla", "narrative", "narrative"))
    pages = f"{(first := rng.randint(1, 900))}-{first + rng.randint(5, 40)}"
    if style == "apa":
        authors = [f"{family}, {given[0]}." for _, given, family in people]
        listed = ", ".join(authors[:-1]) + (", & " if len(authors) > 1 else "") + authors[-1]
        text = f"{listed} ({year}). {title}. {venue}, {rng.randint(1, 60)}({rng.randint(1, 12)}), {pages}."
    elif style == "mla":
        authors = [people[0][0]]
        more = ", et al." if len(people) > 1 else ""
        text = f"{people[0][0]}{more} \"{title}.\" {venue}, {year}, pp. {pages}."
    else:
        authors = [name for name, _, _ in people]
        listed = ", ".join(authors[:-1]) + (" and " if len(authors) > 1 else "") + authors[-1]
        text = rng.choice((f"The paper \"{title}\" by {listed} appeared in {venue} in {year}.",
                           f"{listed} published \"{title}\" at {venue} ({year}).",
                           f"In {year}, {listed} presented {title} at {venue}."))
    value: dict[str, Any] = {"title": title, "authors": authors, "year": year, "venue": venue}
    properties: dict[str, Any] = {"title": {"type": "string"},
                                  "authors": {"type": "array", "items": {"type": "string"}},
                                  "year": {"type": "integer"}, "venue": {"type": "string"}}
    if style != "narrative" and rng.random() < 0.5:
        value["pages"] = pages
        properties["pages"] = {"type": "string"}
    return {"type": "object", "properties": properties, "required": list(value)}, text, value


def person(rng: random.Random) -> tuple[dict, str, dict]:
    """A one-sentence biography in one of six languages: name, birth year, birthplace, occupation, employer."""
    name, _, _ = _full_name(rng)
    city, _ = rng.choice(CITIES)
    year, job, company = rng.randint(1940, 2005), rng.choice(JOBS), rng.choice(COMPANIES)
    text = rng.choice((
        f"{name}, born {year} in {city}, works as a {job} at {company}.",
        f"{name} wurde {year} in {city} geboren und arbeitet als {job} bei {company}.",
        f"{name}, né(e) en {year} à {city}, travaille comme {job} chez {company}.",
        f"{name} nació en {city} en {year} y trabaja como {job} en {company}.",
        f"{name}, nata nel {year} a {city}, lavora come {job} presso {company}.",
        f"{name} nasceu em {city} em {year} e trabalha como {job} na {company}.",
    ))
    value = {"name": name, "birth_year": year, "birthplace": city, "occupation": job, "employer": company}
    keep = [key for key in value if key == "name" or rng.random() < 0.8]
    properties = {key: {"type": "integer" if key == "birth_year" else "string"} for key in keep}
    return {"type": "object", "properties": properties, "required": keep}, text, {k: value[k] for k in keep}


def address(rng: random.Random) -> tuple[dict, str, dict]:
    """A postal address as German, French, English or Spanish letters write it, inside a request to ship."""
    language = rng.choice(tuple(STREETS))
    street, number = rng.choice(STREETS[language]), str(rng.randint(1, 240))
    city, country = rng.choice(CITIES)
    postal = f"{rng.randint(1000, 99999):05d}"
    name, _, _ = _full_name(rng)
    line = {"de": f"{street} {number}, {postal} {city}", "fr": f"{number} {street}, {postal} {city}",
            "en": f"{number} {street}, {city} {postal}", "es": f"{street}, {number}, {postal} {city}"}[language]
    lead = {"de": "Bitte liefern an", "fr": "Merci de livrer à", "en": "Please ship to", "es": "Enviar a"}[language]
    text = f"{lead} {name}, {line}, {country}."
    value = {"recipient": name, "street": street, "number": number, "postal_code": postal, "city": city,
             "country": country}
    return ({"type": "object", "properties": {key: {"type": "string"} for key in value}, "required": list(value)},
            text, value)


def product(rng: random.Random) -> tuple[dict, str, dict]:
    """A product offer: brand, model name (often invented), kind, colour and price with its currency."""
    brand, kind, color = rng.choice(BRANDS), rng.choice(PRODUCT_KINDS), rng.choice(COLORS)
    model = f"{_invented(rng).capitalize()} {rng.choice(('X', 'S', 'Pro ', 'Air ', ''))}{rng.randint(2, 990)}"
    symbol, code = rng.choice(CURRENCIES)
    price = rng.randint(20, 4000) if code == "JPY" else round(rng.uniform(9, 3000), 2)
    price = price * 100 if code == "JPY" else price
    text = rng.choice((
        f"New: the {brand} {model} {kind} in {color}, now {symbol}{price}.",
        f"Angebot: {brand} {model} ({kind}, {color}) für {price} {code}.",
        f"{brand} {model} – {kind}, coloris {color}, prix {price} {code}.",
        f"Oferta: {kind} {brand} {model} en {color} por {symbol}{price}.",
    ))
    value = {"brand": brand, "model": model, "product_type": kind, "color": color, "price": price, "currency": code}
    properties: dict[str, Any] = {key: {"type": "string"} for key in value}
    properties["price"] = {"type": "number"}
    properties["currency"] = {"type": "string", "enum": [c for _, c in CURRENCIES]}
    return {"type": "object", "properties": properties, "required": list(value)}, text, value


RECORD_MAKERS: tuple[Callable[[random.Random], tuple[dict, str, dict]], ...] = (citation, person, address, product)


def record(rng: random.Random) -> tuple[dict, str, dict]:
    """One record of a kind drawn uniformly."""
    return rng.choice(RECORD_MAKERS)(rng)
