"""`lcel-trace html`: a self-contained HTML waterfall page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcel_trace.cli.common import add_files_arg, files_label


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    html = commands.add_parser("html", help="write a self-contained HTML waterfall page")
    add_files_arg(html)
    html.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="default: the first FILE with .html for .jsonl or .jsonl.gz (runs.jsonl -> runs.html)",
    )
    html.add_argument("--trace", metavar="ID", help="only this trace (id or unique prefix)")
    html.set_defaults(handler=_html)


def _html(args: argparse.Namespace) -> int:
    """With `--trace`, the files are streamed and only the matching trace is kept, so a
    page for one trace of a huge file needs little memory; without it, the page holds
    every trace (so does the reader's memory)."""
    from lcel_trace.reader import stream_traces
    from lcel_trace.timeline import render_html

    first = Path(args.files[0])
    traces = stream_traces(args.files)
    if args.trace is not None:
        found = []
        for trace in traces:
            if trace.trace_id.startswith(args.trace):
                found.append(trace)
                if len(found) > 1:
                    break  # not unique: no need to read on
        if len(found) != 1:
            what = "no trace" if not found else "more than one trace"
            raise LookupError(f"{what} in {files_label(args)} with id {args.trace!r}")
        chosen = found
    else:
        chosen = list(traces)
    output = args.output or default_output(first)
    inputs = {Path(f).resolve() for f in args.files}
    if output.resolve() in inputs:
        raise ValueError(f"{output} is an input file; choose another with -o")
    title = first.name if len(args.files) == 1 else f"{len(args.files)} files"
    output.write_text(render_html(chosen, title=title), encoding="utf-8")
    print(f"wrote {output} ({len(chosen)} traces)", file=sys.stderr)
    return 0


def default_output(path: Path) -> Path:
    """Where the page goes without -o: beside the file, `.jsonl` (and `.gz`) replaced by
    `.html` (runs.jsonl -> runs.html, runs.jsonl.gz -> runs.html, runs -> runs.html)."""
    name = path.name.removesuffix(".gz").removesuffix(".jsonl") or path.name
    return path.with_name(name + ".html")
