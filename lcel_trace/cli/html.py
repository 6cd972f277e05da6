"""`lcel-trace html`: a self-contained HTML waterfall page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcel_trace.cli.common import FILE_HELP


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    html = commands.add_parser("html", help="write a self-contained HTML waterfall page")
    html.add_argument("file", type=Path, help=FILE_HELP)
    html.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="default: FILE with .html for .jsonl or .jsonl.gz (runs.jsonl -> runs.html)",
    )
    html.add_argument("--trace", metavar="ID", help="only this trace (id or unique prefix)")
    html.set_defaults(handler=_html)


def _html(args: argparse.Namespace) -> int:
    from lcel_trace.reader import read_traces
    from lcel_trace.timeline import render_html

    traces = read_traces(args.file)
    if args.trace is not None:
        traces = [t for t in traces if t.trace_id.startswith(args.trace)]
        if len(traces) != 1:
            found = "no trace" if not traces else f"{len(traces)} traces"
            raise LookupError(f"{found} in {args.file} with id {args.trace!r}")
    output = args.output or default_output(args.file)
    if output.resolve() == args.file.resolve():
        raise ValueError(f"{output} is the input file; choose another with -o")
    output.write_text(render_html(traces, title=args.file.name), encoding="utf-8")
    print(f"wrote {output} ({len(traces)} traces)", file=sys.stderr)
    return 0


def default_output(path: Path) -> Path:
    """Where the page goes without -o: beside the file, `.jsonl` (and `.gz`) replaced by
    `.html` (runs.jsonl -> runs.html, runs.jsonl.gz -> runs.html, runs -> runs.html)."""
    name = path.name.removesuffix(".gz").removesuffix(".jsonl") or path.name
    return path.with_name(name + ".html")
