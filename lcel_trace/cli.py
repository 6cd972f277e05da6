"""The `lcel-trace` command: show, stats, validate, replay and tail JSONL trace files.

Bad input of any kind ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.tree import Tree

from lcel_trace.records import from_line
from lcel_trace.replay import MAX_NESTING, TraceFileError, nesting_depth, read_traces, reexport
from lcel_trace.span import Span, SpanNode, Trace, TraceEnd, TraceEvent, TraceStart

EXIT_BAD_INPUT = 2
STATUS_STYLE = {"ok": "green", "error": "bold red", "cancelled": "yellow", "incomplete": "magenta"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = handler(args)
        for warning in caught:
            print(f"lcel-trace: warning: {warning.message}", file=sys.stderr)
        return code
    except (TraceFileError, OSError, LookupError, ValueError) as exc:
        print(f"lcel-trace: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lcel-trace", description="Read lcel-trace JSONL trace files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = commands.add_parser(
        "show", help="a tree per trace: type, duration, TTFT, tokens, status"
    )
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="print the traces as JSON")
    show.set_defaults(handler=_show)

    stats = commands.add_parser("stats", help="per span name: count, errors, latency and TTFT")
    stats.add_argument("file", type=Path)
    stats.add_argument("--json", action="store_true", help="print the table as JSON")
    stats.set_defaults(handler=_stats)

    validate = commands.add_parser("validate", help="check every line; print a summary")
    validate.add_argument("file", type=Path)
    validate.set_defaults(handler=_validate)

    replay = commands.add_parser("replay", help="re-export recorded spans to OpenTelemetry")
    replay.add_argument("file", type=Path)
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--otlp-endpoint", metavar="URL", help="OTLP/HTTP traces URL")
    target.add_argument("--console", action="store_true", help="print spans to stdout")
    replay.set_defaults(handler=_replay)

    tail = commands.add_parser("tail", help="follow a file and show traces as they finish")
    tail.add_argument("file", type=Path)
    tail.add_argument("--from-start", action="store_true", help="show traces already in it")
    tail.add_argument("--exit-after", type=int, metavar="N", help="stop after N traces")
    tail.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    tail.set_defaults(handler=_tail)

    html = commands.add_parser("html", help="write a self-contained HTML waterfall page")
    html.add_argument("file", type=Path)
    html.add_argument("-o", "--output", type=Path, metavar="OUT", help="default: FILE.html")
    html.add_argument("--trace", metavar="ID", help="only this trace (id or unique prefix)")
    html.set_defaults(handler=_html)
    return parser


# -- show ----------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    traces = read_traces(args.file)
    if args.json:
        print(json.dumps([_trace_json(t) for t in traces], indent=2))
        return 0
    console = Console(highlight=False)
    for trace in traces:
        _print_tree(console, trace)
    return 0


def _print_tree(console: Console, trace: Trace) -> None:
    header = (
        f"[bold]{trace.name}[/] trace {trace.trace_id} "
        f"[{STATUS_STYLE.get(trace.status, '')}]{trace.status}[/] "
        f"{(trace.end_ns - trace.start_ns) / 1e6:.1f} ms"
    )
    tree = Tree(header)
    if trace.spans:
        _add_node(tree, trace.tree())
    console.print(tree)


def _add_node(parent: Tree, node: SpanNode) -> None:
    branch = parent.add(_span_label(node.span))
    for child in node.children:
        _add_node(branch, child)


def _span_label(span: Span) -> str:
    facts = [span.run_type, f"{span.duration_ns / 1e6:.1f} ms"]
    ttft = span.time_to_first_chunk_ns
    if ttft is not None:
        facts.append(f"ttft {ttft / 1e6:.1f} ms")
    if span.usage is not None and span.usage.total_tokens is not None:
        facts.append(f"{span.usage.total_tokens} tokens")
    if span.model:
        facts.append(span.model)
    status = f"[{STATUS_STYLE.get(span.status, '')}]{span.status}[/]"
    error = f" {span.error.type}: {span.error.message}" if span.error else ""
    return f"{span.name} ({', '.join(facts)}) {status}{error}"


def _trace_json(trace: Trace) -> dict[str, Any]:
    def node(n: SpanNode) -> dict[str, Any]:
        s = n.span
        return {
            "name": s.name,
            "span_id": s.span_id,
            "run_type": s.run_type,
            "status": s.status,
            "duration_ms": s.duration_ns / 1e6,
            "ttft_ms": None if s.time_to_first_chunk_ns is None else s.time_to_first_chunk_ns / 1e6,
            "chunk_count": s.chunk_count,
            "total_tokens": s.usage.total_tokens if s.usage else None,
            "model": s.model,
            "error": None
            if s.error is None
            else {"type": s.error.type, "message": s.error.message},
            "children": [node(c) for c in n.children],
        }

    return {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "status": trace.status,
        "duration_ms": (trace.end_ns - trace.start_ns) / 1e6,
        "root": node(trace.tree()) if trace.spans else None,
    }


# -- stats ---------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _stats(args: argparse.Namespace) -> int:
    by_name: dict[str, list[Span]] = defaultdict(list)
    for trace in read_traces(args.file):
        for span in trace.spans:
            by_name[span.name].append(span)
    rows = []
    for name, spans in sorted(by_name.items()):
        latency = [s.duration_ns / 1e6 for s in spans]
        ttft = [
            s.time_to_first_chunk_ns / 1e6 for s in spans if s.time_to_first_chunk_ns is not None
        ]
        tokens = [s.usage.total_tokens for s in spans if s.usage and s.usage.total_tokens]
        rows.append(
            {
                "name": name,
                "count": len(spans),
                "error_rate": sum(s.status == "error" for s in spans) / len(spans),
                **{f"latency_p{q}_ms": _percentile(latency, q) for q in (50, 95, 99)},
                **{f"ttft_p{q}_ms": _percentile(ttft, q) for q in (50, 95, 99)},
                "total_tokens": sum(tokens),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = list(rows[0]) if rows else ["name"]
    table = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# -- validate, replay ----------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    traces = read_traces(args.file)
    spans = sum(len(t.spans) for t in traces)
    events = sum(len(t.events) for t in traces)
    print(f"{args.file}: ok, {len(traces)} traces, {spans} spans, {events} events")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanExporter,
    )

    # `lcel_trace.exporters` lives in the top-level exporters/ folder of the source tree.
    otel_exporter: Any = importlib.import_module("lcel_trace.exporters").OtelExporter

    span_exporter: SpanExporter
    if args.console:
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ValueError(
                "--otlp-endpoint needs the otlp extra: pip install 'lcel-trace[otlp]'"
            ) from None
        span_exporter = OTLPSpanExporter(endpoint=args.otlp_endpoint)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    exporter = otel_exporter(provider)
    sent = reexport(args.file, [exporter])
    exporter.shutdown()
    provider.shutdown()
    print(f"replayed {sent} traces from {args.file}", file=sys.stderr)
    return 0


# -- html ----------------------------------------------------------------------------------


def _html(args: argparse.Namespace) -> int:
    from lcel_trace.replay import read_traces
    from lcel_trace.timeline import render_html

    traces = read_traces(args.file)
    if args.trace is not None:
        traces = [t for t in traces if t.trace_id.startswith(args.trace)]
        if len(traces) != 1:
            found = "no trace" if not traces else f"{len(traces)} traces"
            raise LookupError(f"{found} in {args.file} with id {args.trace!r}")
    output = args.output or args.file.with_suffix(".html")
    if output.resolve() == args.file.resolve():
        raise ValueError(f"{output} is the input file; choose another with -o")
    output.write_text(render_html(traces, title=args.file.name), encoding="utf-8")
    print(f"wrote {output} ({len(traces)} traces)", file=sys.stderr)
    return 0


# -- tail ----------------------------------------------------------------------------------


def _tail(args: argparse.Namespace) -> int:
    """Follow the file like `tail -f`, reading whole lines only, and print each trace
    when its `trace_end` arrives (spans rebuilt the same way `read_traces` does)."""
    console = Console(highlight=False)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    shown = 0
    pending: dict[str, list[Any]] = defaultdict(list)
    with open(args.file, "rb") as handle:
        if not args.from_start:
            handle.seek(0, 2)
        buffer = b""
        number = 0
        while args.exit_after is None or shown < args.exit_after:
            if deadline is not None and time.monotonic() > deadline:
                break
            chunk = handle.readline()
            if not chunk:
                time.sleep(0.05)
                continue
            buffer += chunk
            if not buffer.endswith(b"\n"):
                continue  # a line still being written
            line, buffer = buffer, b""
            number += 1
            if not line.strip():
                continue
            try:
                if nesting_depth(line) > MAX_NESTING:
                    raise ValueError(f"nesting deeper than {MAX_NESTING}")
                record = from_line(json.loads(line))
            except (ValueError, RecursionError) as exc:
                raise TraceFileError(args.file, number, str(exc)) from None
            pending[record.trace_id].append(record)
            if isinstance(record, TraceEnd):
                _print_tree(console, _assemble(pending.pop(record.trace_id)))
                shown += 1
    return 0


def _assemble(records: list[Any]) -> Trace:
    start = next((r for r in records if isinstance(r, TraceStart)), None)
    end = next(r for r in records if isinstance(r, TraceEnd))
    spans = tuple(r for r in records if isinstance(r, Span))
    events = tuple(r for r in records if isinstance(r, TraceEvent))
    return Trace(
        trace_id=end.trace_id,
        name=start.name if start else "",
        status=end.status,
        start_ns=start.start_ns if start else min((s.start_ns for s in spans), default=0),
        end_ns=end.end_ns,
        spans=spans,
        events=events,
        root_run_id=start.root_run_id if start else None,
    )


if __name__ == "__main__":
    sys.exit(main())
