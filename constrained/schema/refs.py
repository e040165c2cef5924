"""``$ref`` resolution inside one schema document.

Only references into the document itself are followed: ``#``-fragments that are JSON pointers or ``$anchor``
names, optionally prefixed by the root's own ``$id``/``id``. Anything else (another file, a remote URL) cannot
be fetched at run time here and raises :class:`UnsupportedSchema`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from constrained.errors import UnsupportedSchema


def _unescape(token: str) -> str:
    return unquote(token).replace("~1", "/").replace("~0", "~")


def escape_pointer_token(token: str) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


class RefResolver:
    """Maps a ``$ref`` string to (target schema, its JSON pointer)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.base = ""
        if isinstance(root, dict):
            base = root.get("$id", root.get("id", ""))
            self.base = base.split("#")[0] if isinstance(base, str) else ""
        self.anchors: dict[str, tuple[Any, str]] = {}
        self._collect_anchors(root, "")

    def _collect_anchors(self, node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            anchor = node.get("$anchor")
            if isinstance(anchor, str):
                self.anchors.setdefault(anchor, (node, pointer))
            for key in ("id", "$id"):  # drafts 4-7: a plain-name fragment id ("#foo") is an anchor
                legacy = node.get(key)
                if isinstance(legacy, str) and legacy.startswith("#") and len(legacy) > 1:
                    self.anchors.setdefault(legacy[1:], (node, pointer))
            for key, value in node.items():
                if key not in ("enum", "const", "default", "examples"):
                    self._collect_anchors(value, f"{pointer}/{escape_pointer_token(key)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._collect_anchors(value, f"{pointer}/{i}")

    def resolve(self, ref: str, at: str) -> tuple[Any, str]:
        document, _, fragment = ref.partition("#")
        if document and document != self.base:
            raise UnsupportedSchema("$ref", at, f"reference to another document {ref!r} cannot be resolved offline")
        if fragment and not fragment.startswith("/"):
            if fragment in self.anchors:
                return self.anchors[fragment]
            raise UnsupportedSchema("$ref", at, f"unknown anchor {ref!r}")
        node: Any = self.root
        for token in [t for t in fragment.split("/")[1:]]:
            token = _unescape(token)
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise UnsupportedSchema("$ref", at, f"reference {ref!r} points nowhere in the document")
        return node, fragment
