"""Lark grammars shipped with the package (read with :func:`importlib.resources.files`)."""
