"""The ``constrained`` command: schema-bound JSON, SQL over a database, Sudoku, edits and texts of a Lark grammar, on
the built-in model.

::

    constrained json --schema person.schema.json "Ada Lovelace, 36, ada@example.org"
    constrained sql --db concerts.sqlite "How many singers are older than 30?" --execute
    constrained sudoku 53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79
    constrained edit --schema person.schema.json --span '$.email' person.json
    constrained grammar --grammar arithmetic.lark --depth 1 "the area of a circle of radius r"

``json`` extracts: its string and number values are spans and numbers of the text (grounded, see
:mod:`constrained.schema.grounding`) unless ``--free`` lets them be anything the schema allows.

The answer goes to stdout and a line of figures (forward passes, tokens per forward, seconds) to stderr, so the
answer pipes cleanly. In a terminal a live view shows the canvas settling step by step while the model works,
above it a note when a constraint's token automaton is built for the first time (seconds, then cached)
(``--no-live`` turns both off). ``--json`` prints one JSON object instead, errors included, for scripts. A failure
the user can cause (bad schema, unknown database, unsolvable puzzle, a constraint the budget cannot meet) prints
its error class and message, with any partial output, and exits with status 1; bad usage exits with 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConstrainedError

try:  # the `cli` extra: a live view of the canvas, dimmed notes, coloured errors, row tables
    from rich.console import Console
    from rich.live import Live
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
except ImportError:  # plain text: the same answers and figures, no live view
    Console = None  # type: ignore[assignment,misc]


class PlainConsole:
    """What the command asks of rich's ``Console``, in plain text, for an install without the ``cli`` extra.

    It never claims a terminal, so the live view and the progress notes stay off.
    """

    is_terminal = False

    def __init__(self, *, stderr: bool = False, **_: Any) -> None:
        self.stderr = stderr

    def print(self, text: Any = "", *, style: str | None = None, markup: bool = True) -> None:
        print(text, file=sys.stderr if self.stderr else sys.stdout)

Draw = Callable[[int, str], None]
"""A draft callback, ``(step, text)``, as :func:`constrained.generate` and :func:`constrained.solve_sudoku` call it."""


@contextmanager
def live_view(console: Any, title: str, enabled: bool, shape: Callable[[str], str] = str) -> Iterator[Draw]:
    """A callback that redraws the current draft in place (a terminal only), cleared when the command ends.

    ``shape`` lays a draft out for reading (a Sudoku line becomes a grid). Where the view is off the callback
    does nothing, so commands call it unconditionally.
    """
    if not enabled:
        yield lambda step, text: None
        return
    with Live(console=console, transient=True, refresh_per_second=24) as live:

        def draw(step: int, text: str) -> None:
            live.update(Panel(Text(shape(text)), title=f"{title} · step {step}", title_align="left"))

        yield draw


class _ProgressNotes(logging.Handler):
    """The library's progress notes (a first-use automaton build, which can take seconds) shown dimmed on the
    terminal, above the live draft, so that a wait is explained."""

    def __init__(self, console: Any) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(record.getMessage(), style="dim", markup=False)


@contextmanager
def progress_notes(console: Any, enabled: bool) -> Iterator[None]:
    """While the command runs, INFO records of the ``constrained`` loggers go to ``console`` (a terminal only)."""
    if not enabled:
        yield
        return
    logger, handler = logging.getLogger("constrained"), _ProgressNotes(console)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _figures(steps: int, seconds: float, tokens: int | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {"forward_passes": steps, "seconds": round(seconds, 3)}
    if tokens is not None:
        figures["tokens_per_forward"] = round(tokens / steps, 2) if steps else 0.0
    return figures


def _say_figures(console: Any, figures: dict[str, Any], extra: str = "") -> None:
    parts = [f"{figures['forward_passes']} forward passes"]
    if "tokens_per_forward" in figures:
        parts.append(f"{figures['tokens_per_forward']} tokens/forward")
    parts.append(f"{figures['seconds']:.2f} s")
    console.print(" · ".join(parts) + (f" · {extra}" if extra else ""), style="dim")


def _model(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``--checkpoint DIR`` when given, else ``(None, None)``, the built-in model."""
    if args.checkpoint is None:
        return None, None
    from .default_model import load

    return load(args.checkpoint)


def _read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConstrainedError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConstrainedError(f"the {what} {path} is not JSON: {exc}") from exc


def run_json(args: argparse.Namespace, draw: Draw) -> tuple[dict[str, Any], str]:
    from .generation import generate_json

    model, tokenizer = _model(args)
    schema = _read_json_file(args.schema, "schema")
    started = time.perf_counter()
    result = generate_json(schema, args.text, model=model, tokenizer=tokenizer, max_new_tokens=args.max_new_tokens,
                           steps=args.steps, seed=args.seed, callback=draw, grounded=not args.free)
    figures = _figures(result.forward_passes, time.perf_counter() - started, len(result.token_ids))
    return {"text": result.text, "value": result.value, **figures}, result.text


def run_sql(args: argparse.Namespace, draw: Draw) -> tuple[dict[str, Any], str]:
    from .text_to_sql import generate_sql
    from .text_to_sql.database import open_database

    model, tokenizer = _model(args)
    db = open_database(args.db)
    started = time.perf_counter()
    result = generate_sql(args.question, db, model=model, tokenizer=tokenizer, execute=args.execute,
                          dialect=args.dialect, max_new_tokens=args.max_new_tokens, steps=args.steps, seed=args.seed,
                          callback=draw)
    generation = result.generation
    figures = _figures(generation.forward_passes, time.perf_counter() - started, len(generation.token_ids))
    rows = None if result.rows is None else [list(row) for row in result.rows]
    return {"sql": result.sql, "dialect": result.dialect, "rows": rows, **figures}, result.sql


def run_sudoku(args: argparse.Namespace, draw: Draw) -> tuple[dict[str, Any], str]:
    from .puzzles.solver import UniformScorer
    from .puzzles.sudoku import format_sudoku, parse_sudoku, solve_sudoku

    model, tokenizer = _model(args)
    scorer = None
    if args.uniform:
        scorer = UniformScorer(parse_sudoku(args.puzzle).size, args.seed)
    started = time.perf_counter()
    result = solve_sudoku(args.puzzle, model=model, tokenizer=tokenizer, scorer=scorer, seed=args.seed,
                          callback=draw)
    figures = _figures(result.forward_passes, time.perf_counter() - started)
    report = {"solution": result.solution, "unique": result.unique, "remasks": result.remasks, **figures}
    return report, format_sudoku(result.solution, pretty=not args.line)


def _sudoku_grid(line: str) -> str:
    """A (partial) Sudoku line laid out as rows and boxes, for the live view."""
    from .puzzles.sudoku import format_sudoku

    return format_sudoku(line, pretty=True)


def _span(text: str) -> tuple[int, int] | str:
    """``START:END`` is a character range; anything else a JSON path such as ``$.address.city``."""
    start, colon, end = text.partition(":")
    if colon and start.strip().isdigit() and end.strip().isdigit():
        return int(start), int(end)
    return text


def run_edit(args: argparse.Namespace, draw: Draw) -> tuple[dict[str, Any], str]:
    from .constraint import regex
    from .edit import edit
    from .json_schema import json_schema
    from .prompts import json_prompt

    model, tokenizer = _model(args)
    if args.document == "-":
        document = sys.stdin.read()
    else:
        try:
            document = Path(args.document).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConstrainedError(f"cannot read the document {args.document}: {exc.strerror}") from exc
    document = document.rstrip("\n")  # a file's final newline is not part of the value
    if args.schema is not None:
        schema = _read_json_file(args.schema, "schema")
        constraint, prompt = json_schema(schema), json_prompt(schema, args.prompt)
    else:
        constraint, prompt = regex(args.regex), args.prompt
    started = time.perf_counter()
    result = edit(document, [_span(s) for s in args.span], constraint, prompt=prompt, model=model,
                  tokenizer=tokenizer, steps=args.steps, seed=args.seed, extra_tokens=args.extra_tokens,
                  callback=draw)
    figures = _figures(result.forward_passes, time.perf_counter() - started)
    return {"text": result.text, "value": result.value, **figures}, result.text


def run_grammar(args: argparse.Namespace, draw: Draw) -> tuple[dict[str, Any], str]:
    from .generation import generate
    from .grammar import grammar, shipped_grammar

    model, tokenizer = _model(args)
    path = Path(args.grammar)
    text = path if path.suffix == ".lark" or path.exists() else shipped_grammar(args.grammar)
    constraint = grammar(text, start=args.start, depth=args.depth)
    started = time.perf_counter()
    result = generate(constraint, args.prompt, model=model, tokenizer=tokenizer, max_new_tokens=args.max_new_tokens,
                      steps=args.steps, seed=args.seed, callback=draw)
    figures = _figures(result.forward_passes, time.perf_counter() - started, len(result.token_ids))
    return {"text": result.text, **figures}, result.text


def _show_rows(console: Any, rows: list[list[Any]]) -> None:
    cells = [["NULL" if value is None else str(value) for value in row] for row in rows]
    if isinstance(console, PlainConsole):
        for row in cells:
            console.print("\t".join(row))
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        for row in cells:
            table.add_row(*row)
        console.print(table)
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", style="dim")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="constrained",
        description="Constrained structured generation with a diffusion language model (the built-in one by default).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable, help_text: str, title: str, generates: bool = True,
                shape: Callable[[str], str] = str):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run, title=title, shape=shape)
        sub.add_argument("--json", action="store_true", help="print one JSON object (answer and figures) for scripts")
        sub.add_argument("--no-live", action="store_true", help="no live view of the canvas, even in a terminal")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0: runs repeat exactly)")
        sub.add_argument("--checkpoint", type=Path, default=None,
                         help="a DiffusionGemma checkpoint directory to use instead of the built-in model")
        if generates:
            sub.add_argument("--steps", type=int, default=None, help="denoising steps per canvas (model default)")
        return sub

    sub = command("json", run_json, "extract a JSON value valid under a JSON Schema from a text", "json")
    sub.add_argument("--schema", type=Path, required=True, help="JSON Schema file")
    sub.add_argument("--max-new-tokens", type=int, default=192, help="token budget for the JSON text")
    sub.add_argument("--free", action="store_true",
                     help="let string and number values be any the schema allows (default: only spans and numbers "
                          "of the text, for extraction)")
    sub.add_argument("text", help="the text to extract from")

    sub = command("sql", run_sql, "write a read-only SQL query over a database that answers a question", "sql")
    sub.add_argument("--db", type=Path, required=True, help="SQLite database file, or a .sql script to load")
    sub.add_argument("--execute", action="store_true", help="run the query read-only and print its rows")
    sub.add_argument("--dialect", default="sqlite", help="print the query in this sqlglot dialect")
    sub.add_argument("--max-new-tokens", type=int, default=96, help="token budget for the query")
    sub.add_argument("question")

    sub = command("sudoku", run_sudoku, "solve a Sudoku (81 characters, '.' or '0' for a blank)", "sudoku",
                  generates=False, shape=_sudoku_grid)
    sub.add_argument("--uniform", action="store_true",
                     help="guide the search by uniform-random cell scores instead of the model (the baseline)")
    sub.add_argument("--line", action="store_true", help="print the solution as one line, not as a grid")
    sub.add_argument("puzzle")

    sub = command("edit", run_edit, "regenerate spans of a valid document, keeping every other byte", "edit")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--schema", type=Path, help="JSON Schema file the document follows")
    which.add_argument("--regex", help="regular expression the document matches")
    sub.add_argument("--span", action="append", required=True,
                     help="a JSON path ($.address.city) or a character range START:END; repeat for several")
    sub.add_argument("--prompt", default="", help="what the regenerated document should say")
    sub.add_argument("--extra-tokens", type=int, default=0, help="room per span for a longer replacement")
    sub.add_argument("document", help="file holding the document, or - for standard input")

    sub = command("grammar", run_grammar, "write a text in the language of a Lark grammar", "grammar")
    sub.add_argument("--grammar", required=True,
                     help="a .lark grammar file, or the name of a shipped grammar (arithmetic, c_like, json, sql)")
    sub.add_argument("--start", default="start", help="the start rule (default start)")
    sub.add_argument("--depth", type=int, default=1, help="nesting the masks track (default 1)")
    sub.add_argument("--max-new-tokens", type=int, default=96, help="token budget for the text")
    sub.add_argument("prompt", help="what the text should say")

    sub = commands.add_parser("serve", help="an OpenAI-compatible HTTP server with structured outputs",
                              description="an OpenAI-compatible HTTP server with structured outputs "
                                          "(needs the serve extra: pip install 'constrained[serve]')")
    sub.set_defaults(run=None)
    sub.add_argument("--checkpoint", type=Path, default=None,
                     help="a DiffusionGemma checkpoint directory to serve instead of the built-in model")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--db", action="append", default=[], metavar="NAME=PATH",
                     help="a SQLite file (read-only) or a .sql script that SQL outputs may name; repeat for several")
    sub.add_argument("--max-queue", type=int, default=256, help="choices that may wait before 429")
    sub.add_argument("--max-batch", type=int, default=16, help="rows denoised together")
    sub.add_argument("--timeout", type=float, default=300.0, help="seconds a request may take (then 408)")
    sub.add_argument("--ray", action="store_true",
                     help="serve on Ray Serve, each replica with its own engine (needs the ray extra: "
                          "pip install 'constrained[ray]'); joins the Ray instance RAY_ADDRESS names, else a local one")
    sub.add_argument("--replicas", type=int, default=2, help="with --ray: how many replicas (default 2)")
    sub.add_argument("--replica-cpus", type=float, default=1.0,
                     help="with --ray: CPUs each replica reserves, and its torch threads (default 1)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    """``constrained serve``: load the model, then serve until interrupted."""
    needs = ("starlette", "uvicorn", "ray") if args.ray else ("starlette", "uvicorn")
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        extra = "ray" if args.ray else "serve"
        raise ConstrainedError(f"the server needs {' and '.join(missing)}: pip install 'constrained[{extra}]'")
    from .server import build_engine, open_databases, serve

    databases = open_databases(args.db)
    if args.ray:
        from .ray.serve import application, run

        run(application(args.checkpoint, databases=databases, replicas=args.replicas,
                        cpus_per_replica=args.replica_cpus, max_queue=args.max_queue, max_batch=args.max_batch,
                        request_timeout_s=args.timeout), host=args.host, port=args.port)
        return 0
    engine = build_engine(str(args.checkpoint) if args.checkpoint else None, databases=databases,
                          max_queue=args.max_queue, max_batch=args.max_batch, request_timeout_s=args.timeout)
    serve(engine, host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            return _serve(args)
        except ConstrainedError as error:
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
            return 1
    console = Console if Console is not None else PlainConsole
    out = console(highlight=False, soft_wrap=True)
    err = console(stderr=True, highlight=False, soft_wrap=True)
    live = err.is_terminal and not args.json and not args.no_live
    try:
        with progress_notes(err, live), live_view(err, args.title, live, args.shape) as draw:
            report, answer = args.run(args, draw)
    except ConstrainedError as error:
        failure = {"error": type(error).__name__, "message": str(error)}
        partial = getattr(error, "partial", None)
        if partial is not None:
            failure["partial"] = partial
        if args.json:
            print(json.dumps(failure, ensure_ascii=False))
        else:
            err.print(f"{failure['error']}: {failure['message']}", style="bold red", markup=False)
            if partial is not None:
                err.print(f"partial output: {partial}", markup=False)
        return 1
    if args.json:
        print(json.dumps({"command": args.command, **report}, ensure_ascii=False))
        return 0
    print(answer)
    if report.get("rows") is not None:
        _show_rows(out, report["rows"])
    unique = report.get("unique")
    _say_figures(err, report, "" if unique is None else ("unique solution" if unique else "not the only solution"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
