"""JSON Schema -> one regex over JSON text, plus the list of what the commit-time validator must verify.

The walk is over schema nodes with their JSON pointers. ``$ref`` is inlined (bounded recursion: a reference met
``max_recursion`` times on the current path compiles to the empty language, so deeper nesting is simply not
generated; ``beyond_masks`` says where, and the commit-time check still accepts such documents), ``allOf`` merges,
``anyOf``/``oneOf`` alternate, and each JSON type compiles its own keywords.
Whatever the regex cannot express exactly is appended to ``post_checked`` (keyword and pointer); the validator
(jsonschema, the ground truth) then runs on the whole document at commit time. Over-approximation is therefore
always paired with a post-check entry; under-approximation (a valid text the regex refuses: non-canonical
escapes, exponents in bounded numbers, nesting past the bounds) only costs completeness.

Every quantity a hostile schema can make explode is bounded while it is built, not after: the regex text (each
node's, and the running total of the parts a node joins: nested bounded arrays double it per level), the schema
nesting depth (the walk recurses per level), ``$ref`` re-entries per path, ``anyOf`` products, and the wall time
(checked at every node). So any schema fails within ``time_budget_s`` and ``max_regex_length`` with a
:class:`CompileTimeout` or :class:`UnsupportedSchema` naming the pointer where the bound was crossed.

Member names are never repeated in a generated object: listed names are excluded from the keys of extra members
in the masks, and an object whose extra members could repeat a key among themselves (a regular language cannot
remember the keys written) is post-checked as ``unique member names``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from constrained.errors import CompileTimeout, UnsatisfiableSchema, UnsupportedSchema
from constrained.regex_screen import MAX_EXPANSION, expansion
from constrained.schema import formats
from constrained.schema.ecma import PatternNotCompilable, simple_repetition, translate
from constrained.schema.grounding import Grounding
from constrained.schema.keywords import POST_CHECKED, UNSUPPORTED
from constrained.schema.layout import STRING, Layout, Regex, RegexTooLong, alternation, any_value, key_not_in, literal
from constrained.schema.merge import merge
from constrained.schema.numbers import INTEGER, NUMBER, Bound, BoundTooCostly, bounded_number, to_decimal
from constrained.schema.refs import RefResolver, escape_pointer_token
from constrained.schema.strings import CHAR, literal_text, string_of_length

ALL_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


@dataclass(frozen=True)
class Options:
    """Bounds that keep the regex (and its automaton) small."""

    max_recursion: int = 3  # times one $ref may be re-entered on a path
    any_depth: int = 1  # nesting of unconstrained values (extra properties, `{}` schemas)
    indent: int = 8  # spaces allowed after a newline
    max_repeat_cost: int = 4000  # counted repetition: copies x regex length above this -> unbounded + post-check
    max_string_repeat: int = 128  # longest string length bound compiled exactly
    max_regex_length: int = 2_000_000
    time_budget_s: float = 5.0
    max_branch_product: int = 64  # anyOf x anyOf products merged; beyond, the second is post-checked
    max_depth: int = 64  # schema nodes nested on one path (subschemas and $ref entries alike)


@dataclass
class Compiled:
    pattern: str
    post_checked: list[str] = field(default_factory=list)
    ungrounded: list[str] = field(default_factory=list)  # needed values no grounded candidate fits
    beyond_masks: list[str] = field(default_factory=list)  # where a recursive $ref stops being followed


class SchemaCompiler:
    """One compilation; holds the document, the options and what has been post-checked so far."""

    def __init__(
        self,
        root: Any,
        *,
        legacy: bool,
        validate: Callable[[Any, Any], bool],
        known_format: Callable[[str], bool],
        options: Options = Options(),
        grounding: Grounding | None = None,
    ) -> None:
        self.root = root
        self.legacy = legacy  # drafts 4-7: $ref replaces its siblings; array-form items; boolean exclusives
        self.validate = validate  # (value, subschema) -> valid? (jsonschema on the whole document's resolver)
        self.known_format = known_format
        self.options = options
        self.layout = Layout(indent=options.indent, max_length=options.max_regex_length)
        self.refs = RefResolver(root)
        self.grounding = grounding  # restricts free strings and numbers to the source text's values
        self.post_checked: list[str] = []
        self.ungrounded: list[str] = []
        self.beyond_masks: list[str] = []
        self._optional_depth = 0  # enclosing values the document may leave out (a grounding fallback is not needed)
        self._ref_stack: list[str] = []
        self._deadline = time.monotonic() + options.time_budget_s
        self._depth = 0  # schema nodes open on the current path
        self._compiled_refs: dict[tuple, tuple[Regex, tuple[str, str, str] | None]] = {}
        self._any = self._unconstrained_value()
        self._empty_cause: tuple[str, str, str] | None = None  # the latest (keyword, pointer, why) of an empty language

    # ---- bookkeeping

    def post(self, keyword: str, pointer: str) -> None:
        entry = f"{keyword} at {pointer or '/'}"
        if entry not in self.post_checked:
            self.post_checked.append(entry)

    def _tick(self, ptr: str) -> None:
        if time.monotonic() > self._deadline:
            raise CompileTimeout(f"schema compilation exceeded {self.options.time_budget_s} s (at {ptr or '/'}; "
                                 "Options.time_budget_s)")

    def _too_long(self, length: int, ptr: str) -> CompileTimeout:
        return CompileTimeout(
            f"the regex for {ptr or '/'} reaches {length:,} characters, past max_regex_length="
            f"{self.options.max_regex_length:,}: nesting, repetition (maxItems, counted patterns) or alternatives "
            "there multiply its size")

    def _joined(self, parts: list[Regex], ptr: str) -> list[Regex]:
        """``parts``, after checking that together they stay within ``max_regex_length`` (they are about to be
        joined into one regex: a node's parts can each be in bounds while their sum is not)."""
        total = sum(len(part) for part in parts if part is not None)
        if total > self.options.max_regex_length:
            raise self._too_long(total, ptr)
        return parts

    def _empty(self, keyword: str, ptr: str, why: str) -> None:
        """The empty language, noting why: if the whole schema comes out empty, the error names this cause."""
        self._empty_cause = (keyword, ptr, why)
        return None

    def _free(self, ptr: str) -> str:
        """The unconstrained value (its objects take any keys, so the commit-time check refuses repeats)."""
        self.post("unique member names", ptr)
        return self._any

    def _unconstrained_value(self) -> str:
        """Any value within the nesting bound (``{}``, ``true``, additional properties); grounded, its strings,
        numbers and keys are the text's."""
        if self.grounding is None:
            return any_value(self.layout, self.options.any_depth)
        values = [*self.grounding.strings, *self.grounding.numbers]
        scalar = alternation([literal(self.layout, value) for value in values] + ["true", "false", "null"])
        return any_value(self.layout, self.options.any_depth, scalar, self._keys(STRING, lambda key: True))

    def _keys(self, ungrounded: str, fits: Callable[[str], bool]) -> Regex:
        """Keys the schema does not list: ``ungrounded``, or under a grounding the text's spans that ``fits`` admits
        (a member whose key the text never writes would be invented whole)."""
        if self.grounding is None:
            return ungrounded
        return alternation([literal_text(span) for span in self.grounding.strings if fits(span)])

    def compile(self) -> Compiled:
        """The schema's regex and what it leaves to the commit-time check.

        Raises:
            UnsatisfiableSchema: no JSON text satisfies the schema (within the recursion bound), naming the
                keywords and pointer that emptied it.
            UnsupportedSchema: a keyword that can be neither compiled nor checked, or nesting past ``max_depth``.
            CompileTimeout: the regex outgrew ``max_regex_length``, or the walk ``time_budget_s``.
        """
        try:
            regex = self.required(self.root, "")
        except RecursionError:  # a guard for nesting ``max_depth`` does not count (deep JSON inside ``enum``)
            raise UnsupportedSchema("schema", "", "nested too deeply to compile") from None
        if regex is None:
            keyword, ptr, why = self._empty_cause or ("schema", "", "it admits no value")
            raise UnsatisfiableSchema(keyword, ptr, why)
        return Compiled(regex, self.post_checked, self.ungrounded, self.beyond_masks)

    # ---- schema nodes

    def node(self, schema: Any, ptr: str) -> Regex:
        self._tick(ptr)
        if schema is True or schema == {}:
            return self._free(ptr)
        if schema is False:
            return self._empty("false", ptr, "the schema `false` admits no value")
        if not isinstance(schema, dict):
            raise UnsupportedSchema("schema", ptr, "not an object or boolean")
        if self._depth >= self.options.max_depth:
            raise UnsupportedSchema("schema", ptr, f"subschemas nested more than {self.options.max_depth} deep "
                                    "(Options.max_depth)")
        self._depth += 1
        target, target_ptr, pushed = self._deref(schema, ptr)
        # a referenced schema compiles the same wherever the same references lead to it: compile it once
        key = (target_ptr, tuple(self._ref_stack)) if pushed and target is not None and self.grounding is None \
            else None
        try:
            if key in self._compiled_refs:
                regex, cause = self._compiled_refs[key]
                self._empty_cause = cause or self._empty_cause
            else:
                regex = None if target is None else self._node(target, target_ptr)
                if key is not None:
                    self._compiled_refs[key] = (regex, self._empty_cause if regex is None else None)
        except RegexTooLong as error:
            raise self._too_long(error.length, ptr) from None
        finally:
            self._pop(pushed)
            self._depth -= 1
        if regex is not None and len(regex) > self.options.max_regex_length:
            raise self._too_long(len(regex), ptr)
        return regex

    def required(self, schema: Any, ptr: str) -> Regex:
        """A value its parent cannot leave out: grounded where the grounding offers one. Where it does not, and no
        enclosing value can be left out instead, compiled ungrounded and noted, so that grounding never empties
        a schema that the text merely fails to fill."""
        value = self.node(schema, ptr)
        if value is None and self.grounding is not None and not self._optional_depth:
            grounding, self.grounding = self.grounding, None
            try:
                value = self.node(schema, ptr)
            finally:
                self.grounding = grounding
            if value is not None:
                self.ungrounded.append(ptr or "/")
        return value

    def optional(self, schema: Any, ptr: str) -> Regex:
        """A value its parent may leave out (an optional member, an array item past ``minItems``): the empty
        language below it drops it rather than calling for an ungrounded fallback."""
        self._optional_depth += 1
        try:
            return self.node(schema, ptr)
        finally:
            self._optional_depth -= 1

    def _pop(self, count: int) -> None:
        if count:
            del self._ref_stack[-count:]

    def _deref(self, schema: Any, ptr: str) -> tuple[dict | None, str, int]:
        """Follow top-level ``$ref`` chains (merging siblings from 2019-09 on).

        Returns the schema to compile (None: the recursion bound cut it off, or ``false``), its pointer and how
        many references were pushed on the path stack (the caller pops them when done with the node).
        """
        pushed = 0
        while True:
            if schema is True:
                return {}, ptr, pushed
            if schema is False:
                return self._empty("false", ptr, "the schema `false` admits no value"), ptr, pushed
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                return schema, ptr, pushed
            if self._ref_stack.count(ref) >= self.options.max_recursion:
                cut = f"$ref {ref} at {ptr or '/'} entered more than {self.options.max_recursion} times"
                if cut not in self.beyond_masks:
                    self.beyond_masks.append(cut)
                why = (f"{ref} is entered {self.options.max_recursion} times on this path (max_recursion): deeper "
                       "documents are not generated, and this one needs them")
                return self._empty("$ref", ptr, why), ptr, pushed
            target, target_ptr = self.refs.resolve(ref, f"{ptr}/$ref")
            self._ref_stack.append(ref)
            pushed += 1
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if self.legacy or not (siblings.keys() - _ANNOTATION_KEYS):
                schema, ptr = target, target_ptr
                continue
            return {"allOf": [target], **siblings}, ptr, pushed

    def _node(self, schema: dict, ptr: str) -> Regex:
        for key in _keywords(schema, UNSUPPORTED):
            raise UnsupportedSchema(key, f"{ptr}/{key}", "dynamic references are not supported")
        for key in _keywords(schema, POST_CHECKED):
            if key in ("then", "else") and "if" not in schema:
                continue  # without `if`, `then`/`else` have no effect
            self.post(key, f"{ptr}/{key}")
        return self._node_at(schema, ptr)

    def _merge_all(self, schema: dict, ptr: str) -> dict:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for i, sub in enumerate(schema["allOf"]):
            sub_ptr = f"{ptr}/allOf/{i}"
            sub, sub_ptr, _ = self._deref(sub, sub_ptr)  # references stay pushed until the node is compiled
            if sub is None:
                return {"enum": []}
            for key in _keywords(sub, UNSUPPORTED):
                raise UnsupportedSchema(key, f"{sub_ptr}/{key}", "dynamic references are not supported")
            if "allOf" in sub:
                sub = self._merge_all(sub, sub_ptr)
            for key in _keywords(sub, POST_CHECKED):
                self.post(key, f"{sub_ptr}/{key}")
            for key in ("anyOf", "oneOf"):
                if key in sub and key in merged:
                    product = [
                        {"allOf": [x, y]} for x in merged[key] for y in sub[key]
                    ]
                    if len(product) <= self.options.max_branch_product:
                        merged[key] = product
                    else:
                        self.post(key, f"{sub_ptr}/{key}")
                    sub = {k: v for k, v in sub.items() if k != key}
                    if key == "oneOf":
                        self.post("oneOf", f"{sub_ptr}/oneOf")
            merged, inexact = merge(merged, sub)
            for key in inexact:
                self.post(key, f"{sub_ptr}/{key}")
        return merged

    def _branches(self, schema: dict, ptr: str, keys: list[str]) -> Regex:
        base = {k: v for k, v in schema.items() if k not in keys}
        key = keys[0]
        if len(keys) == 2:
            # both anyOf and oneOf: alternate over anyOf, keep oneOf inside each branch
            base["oneOf"] = schema["oneOf"]
        if key == "oneOf" or "oneOf" in base:
            self.post("oneOf", f"{ptr}/oneOf")
        parts = []
        for i, branch in enumerate(schema[key]):
            sub = dict(base)
            sub["allOf"] = [*base.get("allOf", []), branch]
            parts.append(self._node_at(sub, f"{ptr}/{key}/{i}"))
            self._joined(parts, ptr)
        return alternation(parts)

    def _node_at(self, schema: dict, ptr: str) -> Regex:
        """Merge ``allOf``, alternate ``anyOf``/``oneOf``, compile the types. References entered while merging
        stay on the path stack until the merged node is compiled, so recursion through ``allOf`` is bounded."""
        depth = len(self._ref_stack)
        try:
            if "allOf" in schema:
                schema = self._merge_all(schema, ptr)
            keys = [k for k in ("anyOf", "oneOf") if k in schema]
            if keys:
                return self._branches(schema, ptr, keys)
            return self._typed(schema, ptr)
        finally:
            del self._ref_stack[depth:]

    # ---- types

    def _typed(self, schema: dict, ptr: str) -> Regex:
        if "enum" in schema or "const" in schema:
            return self._enum(schema, ptr)
        declared = schema.get("type", list(ALL_TYPES))
        types = [declared] if isinstance(declared, str) else list(declared)
        if "number" in types and "integer" in types:
            types.remove("integer")
        parts: list[Regex] = []
        for t in types:
            if t == "object":
                parts.append(self._object(schema, ptr))
            elif t == "array":
                parts.append(self._array(schema, ptr))
            elif t == "string":
                parts.append(self._string(schema, ptr))
            elif t in ("number", "integer"):
                parts.append(self._number(schema, ptr, integer=(t == "integer")))
            elif t == "boolean":
                parts.append("(?:true|false)")
            elif t == "null":
                parts.append("null")
            elif t == "any":
                parts.append(self._free(ptr))
            else:
                raise UnsupportedSchema("type", f"{ptr}/type", f"unknown type {t!r}")
            self._joined(parts, ptr)
        return alternation(parts)

    def _enum(self, schema: dict, ptr: str) -> Regex:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        if "const" in schema and "enum" in schema:
            values = [v for v in values if any(_same(v, e) for e in schema["enum"])]
        rest = {k: v for k, v in schema.items() if k not in ("enum", "const")}
        kept = [v for v in values if self.validate(v, rest)] if rest.keys() - _ANNOTATION_KEYS else values
        if not kept:
            keyword = "const" if "const" in schema else "enum"
            why = "no value is listed" if not values else "no listed value satisfies the other keywords there"
            return self._empty(keyword, f"{ptr}/{keyword}", why)
        return alternation(self._joined([literal(self.layout, v) for v in kept], ptr))

    def _grounded(self, schema: dict, candidates: tuple) -> Regex:
        """The alternation of the grounding's candidates that ``schema`` validates; ``None`` when none fits, so an
        optional member or array item is left out (and a value the document needs falls back: :meth:`required`)."""
        return alternation([literal(self.layout, value) for value in candidates if self.validate(value, schema)])

    def _number(self, schema: dict, ptr: str, integer: bool) -> Regex:
        if self.grounding is not None:
            return self._grounded(schema, self.grounding.numbers_of(integer))
        lo = hi = None
        if "minimum" in schema:
            excl = self.legacy and schema.get("exclusiveMinimum") is True
            lo = Bound(to_decimal(schema["minimum"]), not excl)
        if "maximum" in schema:
            excl = self.legacy and schema.get("exclusiveMaximum") is True
            hi = Bound(to_decimal(schema["maximum"]), not excl)
        ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool):
            cand = Bound(to_decimal(ex_lo), False)
            lo = cand if lo is None or cand.value >= lo.value else lo
        if isinstance(ex_hi, (int, float)) and not isinstance(ex_hi, bool):
            cand = Bound(to_decimal(ex_hi), False)
            hi = cand if hi is None or cand.value <= hi.value else hi
        multiple = schema.get("multipleOf")
        if multiple is not None:
            if to_decimal(multiple) == 1:
                integer = True  # exact: the multiples of 1 are the integers
            else:
                self.post("multipleOf", f"{ptr}/multipleOf")
        try:
            regex = bounded_number(lo, hi, integer=integer)
        except BoundTooCostly:
            self.post("minimum/maximum", ptr)
            return INTEGER if integer else NUMBER
        if regex is None:
            kind = "integer" if integer else "number"
            return self._empty("minimum/maximum", ptr, f"no {kind} lies within the bounds")
        return regex

    def _string(self, schema: dict, ptr: str) -> Regex:
        if self.grounding is not None:
            return self._grounded(schema, self.grounding.strings)
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        max_len = None if max_len is None else int(max_len)
        if max_len is not None and max_len < min_len:
            return self._empty("minLength/maxLength", ptr, f"minLength {min_len} exceeds maxLength {max_len}")
        has_length = min_len > 0 or max_len is not None
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        if isinstance(fmt, str) and fmt in formats.REGEXES:
            if fmt not in formats.EXACT:
                self.post(f"format {fmt}", f"{ptr}/format")
            if pattern is not None:
                self.post("pattern", f"{ptr}/pattern")
            if has_length:
                self.post("minLength/maxLength", ptr)
            return f'"{formats.REGEXES[fmt]}"'
        if isinstance(fmt, str) and self.known_format(fmt):
            self.post(f"format {fmt}", f"{ptr}/format")
        if pattern is not None:
            simple = simple_repetition(pattern)
            if simple is not None:
                char, lo, hi = simple
                lo2 = max(lo, min_len)
                hi2 = hi if max_len is None else (max_len if hi is None else min(hi, max_len))
                if hi2 is not None and hi2 < lo2:
                    return self._empty("pattern/minLength/maxLength", ptr,
                                       f"the pattern's lengths ({lo}..{hi}) and minLength/maxLength "
                                       f"({min_len}..{max_len}) leave no length")
                return self._bounded_string(lo2, hi2, char, ptr)
            try:
                body = translate(pattern)
                if expansion(body) > MAX_EXPANSION:  # counts that multiply: too big an automaton
                    raise PatternNotCompilable("unrolls too far")
            except PatternNotCompilable:
                self.post("pattern", f"{ptr}/pattern")
            else:
                if has_length:
                    self.post("minLength/maxLength", ptr)
                return f'"{body}"'
        return self._bounded_string(min_len, max_len, CHAR, ptr)

    def _bounded_string(self, lo: int, hi: int | None, char: str, ptr: str) -> str:
        limit = self.options.max_string_repeat
        if hi is not None and hi > limit:
            self.post("maxLength", f"{ptr}/maxLength")
            hi = None
        if lo > limit:
            self.post("minLength", f"{ptr}/minLength")
            lo = limit
        return string_of_length(lo, hi, char)

    def _object(self, schema: dict, ptr: str) -> Regex:
        props: dict = schema.get("properties", {}) or {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)] if isinstance(
            schema.get("required", []), list) else []
        extra = schema.get("additionalProperties", True)
        patterns: dict = schema.get("patternProperties", {}) or {}
        names = list(props)
        for name in required:
            if name not in props:
                names.append(name)
        pattern_post = bool(patterns) and (
            len(patterns) > 1 or extra is not False or any(_search(p, n) for p in patterns for n in names)
        )
        if pattern_post:
            self.post("patternProperties", f"{ptr}/patternProperties")
        rule = schema.get("propertyNames", True)
        items: list[tuple[str, str]] = []
        for name in names:
            if name in props:
                sub, sub_ptr = props[name], f"{ptr}/properties/{escape_pointer_token(name)}"
            else:
                matching = [p for p in patterns if _search(p, name)]
                sub = {"allOf": [patterns[p] for p in matching]} if matching else extra
                sub_ptr = f"{ptr}/required"
            compile_value = self.required if name in required else self.optional
            if rule is not True and not self.validate(name, rule):
                value = self._empty("propertyNames", f"{ptr}/propertyNames", f"member name {name!r} is refused")
            else:
                value = compile_value(sub, sub_ptr)
            if value is None:
                if name in required:
                    return None
                continue
            kind = "required" if name in required else "optional"
            items.append((self.layout.member(literal_text(name), value), kind))
            self._joined([regex for regex, _ in items], ptr)
        tails = self._extra_members(patterns, extra, names, pattern_post, ptr)
        if tails:
            self.post("unique member names", ptr)
        if rule is not True and tails:
            self.post("propertyNames", f"{ptr}/propertyNames")
        count_min, count_max = schema.get("minProperties", 0), schema.get("maxProperties")
        n_required = sum(1 for _, kind in items if kind == "required")
        if count_min > n_required or (count_max is not None and (tails or len(items) > count_max)):
            self.post("minProperties/maxProperties", ptr)
        return self.layout.members(items, tails)

    def _extra_members(self, patterns: dict, extra: Any, names: list[str], loose: bool, ptr: str) -> Regex:
        """The members after the listed properties: pattern properties and additional properties.

        Exact only for one pattern under ``additionalProperties: false`` that no listed name matches. Otherwise
        (``loose``: patternProperties is post-checked) keys overlap and we keep one member form, any key with the
        union of the values, instead of overlapping key alternatives that would multiply automaton states.
        """
        values: list[Regex] = []
        keys: list[str] = []
        for pat, sub in patterns.items():
            value = self.optional(sub, f"{ptr}/patternProperties/{escape_pointer_token(pat)}")
            if value is None:
                continue
            def named_by_pattern(span: str, pat: str = pat) -> bool:  # this loop's pattern, called at once
                return span not in names and _search(pat, span)

            try:
                key = self._keys(f'"{translate(pat)}"', named_by_pattern)
            except PatternNotCompilable:
                key = self._keys(f'"{CHAR}*"', named_by_pattern)
                self.post("patternProperties", f"{ptr}/patternProperties")
            if key is not None:
                values.append(value)
                keys.append(key)
        if extra is not False:
            value = self._any if extra is True else self.optional(extra, f"{ptr}/additionalProperties")
            self._joined([*values, value], ptr)
            key = self._keys(key_not_in(names), lambda span: span not in names)
            if value is not None and key is not None:
                values.append(value)
                keys.append(key)
        if not values:
            return None
        if loose:  # any key but the listed names (they have their own members)
            key = self._keys(key_not_in(names), lambda span: span not in names)
            return None if key is None else self.layout.member(key, alternation(values))
        return alternation([self.layout.member(k, v) for k, v in zip(keys, values)])

    def _array(self, schema: dict, ptr: str) -> Regex:
        items = schema.get("items")
        prefix: list = []
        rest: Any = True
        rest_ptr = f"{ptr}/items"
        if isinstance(items, list):
            prefix, rest, rest_ptr = items, schema.get("additionalItems", True), f"{ptr}/additionalItems"
            prefix_key = "items"
        else:
            prefix = schema.get("prefixItems", []) if not self.legacy else []
            prefix_key = "prefixItems"
            if items is not None:
                rest = items
        min_items = int(schema.get("minItems", 0))
        max_items = schema.get("maxItems")
        max_items = None if max_items is None else int(max_items)
        head: list[tuple[str, bool]] = []
        for i, sub in enumerate(prefix):
            if max_items is not None and i >= max_items:
                break
            value = (self.required if i < min_items else self.optional)(sub, f"{ptr}/{prefix_key}/{i}")
            if value is None:
                if i < min_items:
                    return None
                max_items = i
                break
            head.append((value, i < min_items))
            self._joined([regex for regex, _ in head], ptr)
        rest_regex = None
        if max_items is None or max_items > len(head):
            rest_regex = (self.required if min_items > len(head) else self.optional)(rest, rest_ptr)
        if max_items is not None and max_items < min_items:
            return self._empty("minItems/maxItems", ptr, f"minItems {min_items} exceeds maxItems {max_items}")
        if rest_regex is None:
            if min_items > len(head):
                return None
            return self.layout.array(head, None, 0, 0)
        rest_min = max(0, min_items - len(prefix))
        rest_max = None if max_items is None else max_items - len(prefix)
        cost = len(rest_regex) + 8
        budget = self.options.max_repeat_cost
        if rest_max is not None and rest_max * cost > budget and rest_max > 1:
            self.post("maxItems", f"{ptr}/maxItems")
            rest_max = None
        if rest_min * cost > budget and rest_min > 1:
            self.post("minItems", f"{ptr}/minItems")
            rest_min = max(1, budget // cost)
        return self.layout.array(head, rest_regex, rest_min, rest_max)


_ANNOTATION_KEYS = frozenset({
    "$schema", "$id", "id", "$comment", "title", "description", "default", "examples", "readOnly", "writeOnly",
    "deprecated", "$defs", "definitions", "$anchor",
})


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
        and not isinstance(b, bool) and a == b
    )


def _keywords(schema: dict, among: frozenset) -> list[str]:
    """The keywords of ``schema`` that are ``among`` the given ones, in the schema's order (so that errors and
    ``post_checked`` come out the same in every process, whatever its hash seed)."""
    return [key for key in schema if key in among]


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return True


