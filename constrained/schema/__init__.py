"""The JSON Schema compiler: schema -> one regex over JSON text + the keywords the validator post-checks.

Modules, one idea each: :mod:`numbers` (bounds as digit ranges), :mod:`strings` (encoded characters, lengths),
:mod:`ecma` (``pattern`` translation), :mod:`formats`, :mod:`refs` (``$ref`` resolution), :mod:`merge`
(``allOf``), :mod:`layout` (whitespace, members, arrays, literals), :mod:`keywords` (the keyword table) and
:mod:`compiler` (the walk).
"""

from constrained.schema.compiler import Compiled, Options, SchemaCompiler

__all__ = ["Compiled", "Options", "SchemaCompiler"]
