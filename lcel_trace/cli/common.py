"""What several commands share: trace selection, the console, number formatting."""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lcel_trace.span import STATUSES, Span, Trace
from lcel_trace.terminal import visible

if TYPE_CHECKING:
    from rich.console import Console

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE
STATUS_STYLE = {"ok": "green", "error": "bold red", "cancelled": "yellow", "incomplete": "magenta"}
MODEL_RUN_TYPES = ("chat_model", "llm")
FILE_HELP = "a JSONL trace file written by JsonlExporter"
FILES_HELP = "trace files written by JsonlExporter, directories, globs, .jsonl.gz"


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    """The options that pick traces from a file; `select(traces, args)` applies them."""
    group = parser.add_argument_group("selection", "which traces to use (all by default)")
    group.add_argument("--trace", metavar="ID", help="only traces whose id starts with ID")
    group.add_argument(
        "--status", choices=sorted(STATUSES), help="only traces that ended with this status"
    )
    group.add_argument(
        "--name", metavar="NAME", help="only traces with this name or root span name"
    )
    group.add_argument(
        "--last",
        type=positive_int,
        metavar="N",
        help="only the last N traces read, in the order they ended (after the other options)",
    )


def select(traces: Iterable[Trace], args: argparse.Namespace) -> list[Trace]:
    """The traces the selection options ask for, in the order read. An id prefix that
    matches no trace is a mistake (LookupError); other options may simply match nothing."""
    return list(stream_select(traces, args))


def stream_select(traces: Iterable[Trace], args: argparse.Namespace) -> Iterator[Trace]:
    """`select` as the traces are read: holds none of them, or the last N for `--last`.
    The LookupError for an id prefix that matched nothing comes once all were read."""
    prefix = None if args.trace is None else args.trace.lower()
    id_found = False

    def wanted(trace: Trace) -> bool:
        nonlocal id_found
        if prefix is not None:
            if not trace.trace_id.lower().startswith(prefix):
                return False
            id_found = True
        if args.status is not None and trace.status != args.status:
            return False
        return args.name is None or args.name in (trace.name, root_name(trace))

    chosen: Iterable[Trace] = (t for t in traces if wanted(t))
    if args.last is not None:
        chosen = deque(chosen, maxlen=args.last)
    yield from chosen
    if prefix is not None and not id_found:
        raise LookupError(f"{files_label(args)}: no trace id starts with {args.trace!r}")


def files_label(args: argparse.Namespace) -> str:
    """The trace files a command was given, for messages."""
    files = getattr(args, "files", None) or [args.file]
    return visible(" ".join(str(f) for f in files))


def add_files_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help=FILES_HELP)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def root_name(trace: Trace) -> str | None:
    try:
        return trace.root.name
    except LookupError:
        return None


def selected(args: argparse.Namespace) -> list[Trace] | None:
    """The selected traces, or None (after saying so on stderr) when there are none."""
    traces = list(stream_selected(args))
    return traces or None


def stream_selected(args: argparse.Namespace) -> Iterator[Trace]:
    """The selected traces of `args.files` as they are read (each when its trace_end is
    read): bounded memory. When there are none, says so on stderr (and prints `[]` for
    `--json`) once all was read."""
    from lcel_trace.reader import stream_traces

    read = 0

    def counted() -> Iterator[Trace]:
        nonlocal read
        for trace in stream_traces(getattr(args, "files", None) or [args.file]):
            read += 1
            yield trace

    shown = 0
    for trace in stream_select(counted(), args):
        shown += 1
        yield trace
    if not shown:
        why = "no traces match the selection" if read else "no traces"
        print(f"{files_label(args)}: {why}", file=sys.stderr)
        if getattr(args, "json", False):
            print("[]")


def new_console() -> Console:
    """A console for trace output; a closed pipe raises BrokenPipeError for `main` to
    handle (rich's own handling exits 1)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _Console(highlight=False, emoji=False)


def ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


class Tokens:
    """A sum of token counts some spans reported: None when none did (unknown, not 0);
    `partial` when only some did, so the sum is a lower bound."""

    __slots__ = ("partial", "total")

    def __init__(self, total: int | None, partial: bool) -> None:
        self.total = total
        self.partial = partial

    def __str__(self) -> str:
        if self.total is None:
            return "–"
        return f"≥{self.total}" if self.partial else str(self.total)


def token_sum(spans: Sequence[Span], kind: str) -> Tokens:
    """The spans' `{kind}_tokens` (input, output, total) added up."""
    counts = [getattr(s.usage, f"{kind}_tokens") if s.usage else None for s in spans]
    known = [c for c in counts if c is not None]
    return Tokens(sum(known) if known else None, 0 < len(known) < len(counts))


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """Nearest-rank percentile of the known values; None when none is known."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def root_span_id(trace: Trace) -> str | None:
    try:
        return trace.root.span_id
    except LookupError:
        return None


def cell(value: Any) -> str:
    """A table cell: text made visible, floats to two places, unknown as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    return visible(value)
