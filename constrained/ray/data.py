"""Offline extraction on Ray Data: a dataset of texts and one JSON Schema in, a dataset of validated JSON out.

::

    import ray
    import constrained.ray

    texts = ray.data.from_items([{"text": "Ada Lovelace, 36"}, {"text": "Alan Turing, 41"}])
    people = constrained.ray.extract(texts, person_schema, actors=2)
    for row in people.iter_rows():
        print(row["text"], row["json"] or row["error"])

A fixed pool of actors runs :meth:`Dataset.map_batches`: each actor loads the model and binds the schema once,
then runs every batch it is given through :func:`constrained.generate_batch`, so the rows of a batch share
forward passes. Every input row comes out once, with all its columns, and either ``json`` (text valid under the
schema, by the constraint) or ``error`` (the typed error's name and message: a text the model could not fit to
the schema within its budget, a row without text); nothing is dropped and nothing invalid passes.

Why the JSON stays text: Arrow gives a column one type, and objects of one schema still differ (an optional
member present in one row and absent in the next), so a struct column would fill absent members with nulls and
change the values; ``json.loads(row["json"])`` gives each object exactly as generated.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConstrainedError, RequestError
from ..generation import DEFAULT_MAX_NEW_TOKENS

#: Columns :func:`extract` adds to each row.
JSON_COLUMN, ERROR_COLUMN = "json", "error"


class _Extractor:
    """One actor of the pool: the model and the bound schema, loaded once, then one batch after another."""

    def __init__(self, schema: Any, column: str, grounded: bool, max_new_tokens: int, seed: int | None,
                 checkpoint: str | None, threads: int, max_batch_size: int) -> None:
        import torch

        from ..default_model import load, load_default
        from ..json_schema import json_schema

        torch.set_num_threads(threads)
        self.schema, self.column, self.grounded = schema, column, grounded
        self.max_new_tokens, self.seed, self.max_batch_size = max_new_tokens, seed, max_batch_size
        self.model, self.tokenizer = load(checkpoint) if checkpoint else load_default()
        # a grounded constraint belongs to one text, so only the schema's own is bound once here
        self.bound = None if grounded else json_schema(schema).bind(self.tokenizer)

    def _request(self, text: Any) -> Any:
        from ..batch import Request
        from ..prompts import json_prompt

        if not isinstance(text, str):
            raise RequestError(f"the row's {self.column!r} is not a text: {text!r}", param=self.column)
        fields = {"max_new_tokens": self.max_new_tokens, "seed": self.seed}
        if self.grounded:
            return Request.for_json(self.schema, text, grounded=True, **fields)
        return Request(json_prompt(self.schema, text), self.bound, json=True, **fields)

    def __call__(self, batch: Any) -> Any:
        from ..batch import generate_batch

        if self.column not in batch.columns:
            raise RequestError(f"the dataset has no column {self.column!r} (it has {list(batch.columns)})",
                               param="column")
        clashes = {JSON_COLUMN, ERROR_COLUMN} & set(batch.columns)
        if clashes:
            raise RequestError(f"the dataset already has the output columns {sorted(clashes)}", param="dataset")
        outcomes: list[Any] = []
        requests, slots = [], []
        for text in batch[self.column]:
            try:
                requests.append(self._request(text))
                slots.append(len(outcomes))
                outcomes.append(None)
            except ConstrainedError as error:
                outcomes.append(error)
        for slot, result in zip(slots, generate_batch(requests, model=self.model, tokenizer=self.tokenizer,
                                                      max_batch_size=self.max_batch_size)):
            outcomes[slot] = result
        out = batch.copy()
        out[JSON_COLUMN] = [None if isinstance(o, ConstrainedError) else o.text for o in outcomes]
        out[ERROR_COLUMN] = [f"{type(o).__name__}: {o}" if isinstance(o, ConstrainedError) else None
                             for o in outcomes]
        return out


def extract(dataset: Any, schema: Any, *, column: str = "text", actors: int = 2, batch_size: int = 16,
            grounded: bool = False, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, seed: int | None = 0,
            checkpoint: str | None = None, cpus_per_actor: float = 1.0) -> Any:
    """The JSON value each row's text describes, valid under ``schema``, as a new (lazy) dataset.

    Parameters:
        dataset: a ``ray.data.Dataset`` with a text column.
        schema: one JSON Schema (a dict, JSON text or a Pydantic model class) for every row.
        column: the column holding the texts.
        actors: the fixed pool's size; each actor loads the model once and binds the schema once.
        batch_size: rows an actor takes at a time, which share its forward passes.
        grounded: values must be spans and numbers of the row's text (as ``constrained json`` extracts); such a
            constraint belongs to its text, so it is bound per row rather than once.
        max_new_tokens: each row's token budget.
        seed: each row's seed, so a row's output depends on its text and not on the batch it lands in;
            ``None`` draws one per row.
        checkpoint: a DiffusionGemma checkpoint directory, ``None`` for the built-in model.
        cpus_per_actor: Ray CPUs each actor reserves, and its torch threads (at least one).

    Returns:
        Every row of ``dataset``, with its columns plus ``json`` (the generated JSON text, or ``None``) and
        ``error`` (``"TypeName: message"``, or ``None``); exactly one of the two is set. Rows come in the order
        the actors finish their batches unless Ray Data is told to keep it
        (``DataContext.get_current().execution_options.preserve_order = True``).

    Raises:
        SchemaError, UnsupportedSchema: ``schema`` does not compile (here, before any actor starts).
        RequestError: ``actors`` or ``batch_size`` below one. A missing text column, or one already named
        ``json`` or ``error``, fails the dataset's execution with a ``RequestError`` (inside Ray's error).
    """
    import ray.data

    from ..json_schema import json_schema
    from ..schema.document import schema_document

    if actors < 1 or batch_size < 1:
        raise RequestError(f"actors and batch_size must be at least 1, got {actors} and {batch_size}")
    document = schema_document(schema)  # a plain document travels to the actors, whatever was given
    json_schema(document)  # a schema that does not compile fails here, not once per actor
    return dataset.map_batches(
        _Extractor, batch_format="pandas", batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor, udf_modifying_row_count=False,
        fn_constructor_kwargs={"schema": document, "column": column, "grounded": grounded,
                               "max_new_tokens": max_new_tokens, "seed": seed, "checkpoint": checkpoint,
                               "threads": max(1, int(cpus_per_actor)), "max_batch_size": batch_size})
