"""The `lcel-trace` command: show, stats, validate, replay and tail JSONL trace files.

Bad input of any kind ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from lcel_trace.span import STATUSES, Span, SpanNode, Trace
from lcel_trace.terminal import one_line, visible

if TYPE_CHECKING:
    # Imported where used: `--help` and `--version` must not wait for LangChain or rich.
    from rich.console import Console, RenderableType
    from rich.text import Text
    from rich.tree import Tree

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE
STATUS_STYLE = {"ok": "green", "error": "bold red", "cancelled": "yellow", "incomplete": "magenta"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {visible(message)} (see --help)\n")


class _Version(argparse.Action):
    """`--version`: looks the installed version up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("lcel-trace")
        except PackageNotFoundError:
            number = "unknown"
        print(f"lcel-trace {number}")
        parser.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = handler(args)
        for warning in caught:
            print(f"lcel-trace: warning: {visible(warning.message)}", file=sys.stderr)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and point stdout at devnull
        # so the interpreter's own flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file (embedded, captured)
            pass
        finally:
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    except (OSError, LookupError, ValueError) as exc:
        print(f"lcel-trace: error: {visible(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lcel-trace",
        description="Read lcel-trace JSONL trace files. Bad input: one line on stderr, exit 2.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    file_help = "a JSONL trace file written by JsonlExporter"

    show_help = "a tree per trace: type, duration, first chunk and token, tokens, model, status"
    show = commands.add_parser("show", help=show_help, description=show_help)
    show.add_argument("file", type=Path, help=file_help)
    show.add_argument("--json", action="store_true", help="print the traces as JSON")
    show.add_argument(
        "--content",
        action="store_true",
        help="under each span, its inputs, outputs, tool calls and error (one line each)",
    )
    add_selection_args(show)
    show.set_defaults(handler=_show)

    stats_help = (
        "per span name, model and level (root or nested): count, error rate, latency and "
        "time to first chunk (ttfc) and token (ttft) percentiles, tokens in/out/total"
    )
    stats = commands.add_parser("stats", help=stats_help, description=stats_help)
    stats.add_argument("file", type=Path, help=file_help)
    stats.add_argument("--json", action="store_true", help="print the table as JSON")
    add_selection_args(stats)
    stats.set_defaults(handler=_stats)

    validate_help = "check every line; print a summary"
    validate = commands.add_parser("validate", help=validate_help, description=validate_help)
    validate.add_argument("file", type=Path, help=file_help)
    validate.set_defaults(handler=_validate)

    replay_help = "re-export recorded spans to OpenTelemetry, with their original ids and times"
    replay = commands.add_parser("replay", help=replay_help, description=replay_help)
    replay.add_argument("file", type=Path, help=file_help)
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        nargs="?",
        const="",
        help=(
            "send over OTLP/HTTP (protobuf; needs the otlp extra) to this base URL (/v1/traces "
            "is appended unless present); without URL, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
            "OTEL_EXPORTER_OTLP_ENDPOINT as the SDK reads them; headers from "
            "OTEL_EXPORTER_OTLP_[TRACES_]HEADERS"
        ),
    )
    target.add_argument(
        "--console", action="store_true", help="print the spans to stdout as OpenTelemetry JSON"
    )
    replay.add_argument(
        "--service-name",
        metavar="NAME",
        help="service.name of the resource (default: OTEL_SERVICE_NAME, else lcel-trace)",
    )
    replay.add_argument(
        "--conventions",
        choices=("gen_ai", "openinference", "both"),
        default="gen_ai",
        help="attribute conventions on model and tool spans (default: gen_ai)",
    )
    replay.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help=(
            "each batch, retries included, gives up after S seconds (default: "
            "OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT, else 10); a refused (4xx/5xx) or "
            "unreachable collector then exits 1 with one line on stderr"
        ),
    )
    replay.set_defaults(handler=_replay)

    tail = commands.add_parser("tail", help="follow a file and show traces as they finish")
    tail.add_argument("file", type=Path, help=file_help)
    tail.add_argument("--from-start", action="store_true", help="show traces already in it")
    tail.add_argument("--exit-after", type=int, metavar="N", help="stop after N traces")
    tail.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    tail.set_defaults(handler=_tail)

    html = commands.add_parser("html", help="write a self-contained HTML waterfall page")
    html.add_argument("file", type=Path, help=file_help)
    html.add_argument("-o", "--output", type=Path, metavar="OUT", help="default: FILE.html")
    html.add_argument("--trace", metavar="ID", help="only this trace (id or unique prefix)")
    html.set_defaults(handler=_html)
    return parser


# -- selection (show, stats, html) --------------------------------------------------------


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
        type=_positive_int,
        metavar="N",
        help="only the last N traces in the file (after the other options)",
    )


def select(traces: Sequence[Trace], args: argparse.Namespace) -> list[Trace]:
    """The traces the selection options ask for, in file order. An id prefix that matches
    no trace is a mistake (LookupError); other options may simply match nothing."""
    chosen = list(traces)
    if args.trace is not None:
        prefix = args.trace.lower()
        chosen = [t for t in chosen if t.trace_id.lower().startswith(prefix)]
        if not chosen:
            raise LookupError(f"{args.file}: no trace id starts with {args.trace!r}")
    if args.status is not None:
        chosen = [t for t in chosen if t.status == args.status]
    if args.name is not None:
        chosen = [t for t in chosen if args.name in (t.name, _root_name(t))]
    if args.last is not None:
        chosen = chosen[-args.last :]
    return chosen


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _root_name(trace: Trace) -> str | None:
    try:
        return trace.root.name
    except LookupError:
        return None


def _selected(args: argparse.Namespace) -> list[Trace] | None:
    """The selected traces, or None (after saying so on stderr) when there are none."""
    from lcel_trace.reader import read_traces

    traces = read_traces(args.file)
    if traces:
        traces = select(traces, args)
        why = "no traces match the selection"
    else:
        why = "no traces"
    if traces:
        return traces
    print(f"{visible(args.file)}: {why}", file=sys.stderr)
    if getattr(args, "json", False):
        print("[]")
    return None


# -- show ----------------------------------------------------------------------------------

MODEL_RUN_TYPES = ("chat_model", "llm")


def _show(args: argparse.Namespace) -> int:
    traces = _selected(args)
    if traces is None:
        return 0
    if args.json:
        print(json.dumps([_trace_json(t) for t in traces], indent=2))
        return 0
    console = _console()
    for trace in traces:
        _print_tree(console, trace, content=args.content)
    return 0


def _console() -> Console:
    """A console for trace output; a closed pipe raises BrokenPipeError for `main` to
    handle (rich's own handling exits 1)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _Console(highlight=False, emoji=False)


def _print_tree(console: Console, trace: Trace, *, content: bool = False) -> None:
    """One trace as a tree; every string from the file printed as text, never markup."""
    from rich.text import Text
    from rich.tree import Tree

    header = Text.assemble(
        (visible(trace.name), "bold"),
        f" trace {visible(trace.trace_id)} ",
        (visible(trace.status), STATUS_STYLE.get(trace.status, "")),
        f" {(trace.end_ns - trace.start_ns) / 1e6:.1f} ms",
    )
    model_spans = [s for s in trace.spans if s.run_type in MODEL_RUN_TYPES]
    if model_spans:
        tokens_in, tokens_out = _tokens(model_spans, "input"), _tokens(model_spans, "output")
        header.append(f", tokens {tokens_in} in / {tokens_out} out")
    tree = Tree(header)
    if trace.spans:
        _add_node(tree, trace.tree(), content, console.width)
    console.print(tree)


def _add_node(parent: Tree, node: SpanNode, content: bool, width: int) -> None:
    """Add `node` and everything under it to `parent`, iteratively (a chain thousands of
    runs deep cannot reach Python's recursion limit). Indentation stops at
    `_indent_levels(width)`: deeper spans are drawn at that level, each label starting
    with `[depth N]`, so no span is lost to a terminal too narrow for its indentation."""
    from rich.text import Text

    levels = _indent_levels(width)
    stack: list[tuple[Tree, SpanNode, int]] = [(parent, node, 0)]
    while stack:
        into, current, depth = stack.pop()
        text = _span_label(current.span)
        if depth > levels:
            text = Text.assemble((f"[depth {depth}] ", "dim"), text)
        label: RenderableType = text
        if content:
            from rich.console import Group

            label = Group(label, *_content_lines(current.span, width))
        branch = into.add(label)
        below = branch if depth < levels else into
        stack.extend((below, child, depth + 1) for child in reversed(current.children))


def _indent_levels(width: int) -> int:
    """How many tree levels `show` indents on a console this wide (4 columns each),
    leaving at least 40 columns for the labels."""
    return max(8, (width - 40) // 4)


def _span_label(span: Span) -> Text:
    from rich.text import Text

    facts = [visible(span.run_type), f"{span.duration_ns / 1e6:.1f} ms"]
    first_chunk, first_token = span.time_to_first_chunk_ns, span.time_to_first_token_ns
    if first_chunk is not None and first_chunk != first_token:
        facts.append(f"first chunk {first_chunk / 1e6:.1f} ms")
    if first_token is not None:
        facts.append(f"first token {first_token / 1e6:.1f} ms")
    if span.usage is not None and span.usage.total_tokens is not None:
        facts.append(f"{span.usage.total_tokens} tokens")
    elif span.run_type in MODEL_RUN_TYPES:
        facts.append("tokens unknown")
    if span.model:
        facts.append(visible(span.model))
    label = Text.assemble(
        visible(span.name),
        f" ({', '.join(facts)}) ",
        (visible(span.status), STATUS_STYLE.get(span.status, "")),
    )
    if span.error:
        label.append(f" {visible(span.error.type)}: {visible(span.error.message)}")
    return label


def _content_lines(span: Span, width: int) -> list[Text]:
    """A span's inputs, outputs, tool calls and error, one line each, cut to `width`."""
    from rich.text import Text

    lines: list[tuple[str, str]] = []
    if span.inputs is not None:
        lines.append(("in", _summary(span.inputs)))
    if span.outputs is not None:
        lines.append(("out", _summary(span.outputs)))
    calls = [c for m in _messages(span.outputs) for c in getattr(m, "tool_calls", None) or ()]
    if calls:
        lines.append(("tool calls", ", ".join(_tool_call(c) for c in calls)))
    if span.error is not None:
        lines.append(("error", f"{span.error.type}: {span.error.message}"))
    return [
        Text.assemble(
            (f"{key}: ", "dim"), one_line(value, width), no_wrap=True, overflow="ellipsis"
        )
        for key, value in lines
    ]


def _summary(value: Any) -> str:
    """Content as a short readable string: messages as `type: text`, prompt values by
    their messages, containers by their parts."""
    if isinstance(value, str):
        return value
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        return _summary(to_messages())
    if hasattr(value, "content") and isinstance(getattr(value, "type", None), str):
        text = value.content
        if not isinstance(text, str):
            text = " ".join(str(b.get("text", b)) if isinstance(b, dict) else str(b) for b in text)
        kind = value.type  # "ai", "human"...; a streamed message's is "AIMessageChunk"
        if kind.endswith("MessageChunk"):
            kind = kind.removesuffix("MessageChunk").lower()
        return f"{kind}: {text}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_summary(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " | ".join(_summary(v) for v in value)
    return str(value)


def _messages(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [m for v in value for m in _messages(v)]
    return [value] if hasattr(value, "tool_calls") else []


def _tool_call(call: Any) -> str:
    if not isinstance(call, dict):
        return str(call)
    args = json.dumps(call.get("args"), ensure_ascii=False, default=str)
    return f"{call.get('name')}({args})"


MAX_JSON_DEPTH = 100
"""`show --json` nests spans this many levels below the root at most; see `_trace_json`."""


def _trace_json(trace: Trace) -> dict[str, Any]:
    """A trace as JSON: spans nested under `root` through their `children`, built without
    recursion. A span `MAX_JSON_DEPTH` or more levels below the root (the root is level 0)
    goes in the trace's `deep_spans` list instead, depth first, with its `depth`; its
    parent's `children`, and the `children` of every span in `deep_spans`, list span ids."""

    def node(n: SpanNode) -> dict[str, Any]:
        s = n.span
        return {
            "name": s.name,
            "span_id": s.span_id,
            "parent_id": s.parent_id,
            "run_type": s.run_type,
            "status": s.status,
            "duration_ms": s.duration_ns / 1e6,
            "first_chunk_ms": _ms(s.time_to_first_chunk_ns),
            "first_token_ms": _ms(s.time_to_first_token_ns),
            "chunk_count": s.chunk_count,
            "input_tokens": s.usage.input_tokens if s.usage else None,
            "output_tokens": s.usage.output_tokens if s.usage else None,
            "total_tokens": s.usage.total_tokens if s.usage else None,
            "model": s.model,
            "error": None
            if s.error is None
            else {"type": s.error.type, "message": s.error.message},
            "children": [],
        }

    root: dict[str, Any] | None = None
    deep: list[dict[str, Any]] = []
    if trace.spans:
        tree = trace.tree()
        root = node(tree)
        stack: list[tuple[SpanNode, dict[str, Any], int]] = [(tree, root, 0)]
        while stack:
            current, shown, depth = stack.pop()
            if depth >= MAX_JSON_DEPTH:
                shown["depth"] = depth
                deep.append(shown)
            entries = [node(child) for child in current.children]
            shown["children"].extend(
                entry if depth + 1 < MAX_JSON_DEPTH else entry["span_id"] for entry in entries
            )
            stack.extend(
                (child, entry, depth + 1)
                for child, entry in reversed(list(zip(current.children, entries, strict=True)))
            )

    model_spans = [s for s in trace.spans if s.run_type in MODEL_RUN_TYPES]
    return {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "status": trace.status,
        "duration_ms": (trace.end_ns - trace.start_ns) / 1e6,
        "input_tokens": _tokens(model_spans, "input").total,
        "output_tokens": _tokens(model_spans, "output").total,
        "root": root,
        "deep_spans": deep,
    }


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


# -- stats ---------------------------------------------------------------------------------


class _Tokens:
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


def _tokens(spans: Sequence[Span], kind: str) -> _Tokens:
    """The spans' `{kind}_tokens` (input, output, total) added up."""
    counts = [getattr(s.usage, f"{kind}_tokens") if s.usage else None for s in spans]
    known = [c for c in counts if c is not None]
    return _Tokens(sum(known) if known else None, 0 < len(known) < len(counts))


def _percentile(values: Sequence[float | None], q: float) -> float | None:
    """Nearest-rank percentile of the known values; None when none is known."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


MAX_NAME_CELL = 40
_STATS_HEADERS = {
    "name": "name",
    "model": "model",
    "level": "level",
    "count": "count",
    "error_rate": "error_rate",
    "latency_p50_ms": "p50_ms",
    "latency_p95_ms": "p95_ms",
    "latency_p99_ms": "p99_ms",
    "first_chunk_p50_ms": "ttfc_p50",
    "first_chunk_p95_ms": "ttfc_p95",
    "first_chunk_p99_ms": "ttfc_p99",
    "first_token_p50_ms": "ttft_p50",
    "first_token_p95_ms": "ttft_p95",
    "first_token_p99_ms": "ttft_p99",
    "input_tokens": "tokens_in",
    "output_tokens": "tokens_out",
    "total_tokens": "tokens_total",
}


def _stats(args: argparse.Namespace) -> int:
    traces = _selected(args)
    if traces is None:
        return 0
    groups: dict[tuple[str, str, str], list[Span]] = defaultdict(list)
    for trace in traces:
        root_id = _root_id(trace)
        for span in trace.spans:
            level = "root" if span.span_id == root_id else "nested"
            groups[(level, span.name, span.model or "")].append(span)
    rows: list[dict[str, Any]] = []
    tokens: list[dict[str, _Tokens]] = []
    for (level, name, model), spans in sorted(groups.items(), key=_roots_first):
        latency = [s.duration_ns / 1e6 for s in spans]
        first_chunk = [_ms(s.time_to_first_chunk_ns) for s in spans]
        first_token = [_ms(s.time_to_first_token_ns) for s in spans]
        sums = {f"{kind}_tokens": _tokens(spans, kind) for kind in ("input", "output", "total")}
        tokens.append(sums)
        rows.append(
            {
                "name": name,
                "model": model or None,
                "level": level,
                "count": len(spans),
                "error_rate": sum(s.status == "error" for s in spans) / len(spans),
                **{f"latency_p{q}_ms": _percentile(latency, q) for q in (50, 95, 99)},
                **{f"first_chunk_p{q}_ms": _percentile(first_chunk, q) for q in (50, 95, 99)},
                **{f"first_token_p{q}_ms": _percentile(first_token, q) for q in (50, 95, 99)},
                **{key: value.total for key, value in sums.items()},
                "spans_with_usage": sum(s.usage is not None for s in spans),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [
            one_line(row[key] or "–", MAX_NAME_CELL)
            if key in ("name", "model")
            else _cell(tokens[i].get(key, row[key]))
            for key in _STATS_HEADERS
        ]
        for i, row in enumerate(rows)
    ]
    columns = list(_STATS_HEADERS.values())
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for cells in table:
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())
    return 0


def _roots_first(group: tuple[tuple[str, str, str], list[Span]]) -> tuple[bool, str, str]:
    (level, name, model), _ = group
    return level != "root", name, model


def _root_id(trace: Trace) -> str | None:
    try:
        return trace.root.span_id
    except LookupError:
        return None


def _cell(value: Any) -> str:
    """A table cell: text made visible, floats to two places, unknown as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    return visible(value)


# -- validate, replay ----------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from lcel_trace.reader import read_traces

    traces = read_traces(args.file)
    spans = sum(len(t.spans) for t in traces)
    events = sum(len(t.trace_events) for t in traces)
    print(f"{visible(args.file)}: ok, {len(traces)} traces, {spans} spans, {events} events")
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Spans go out as OpenTelemetry JSON (`--console`, escaped by `json`) or OTLP/HTTP,
    in batches; a batch the collector refused or never received makes the exit code 1."""
    import importlib

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    from lcel_trace.replay import reexport

    # `lcel_trace.exporters` lives in the top-level exporters/ folder of the source tree.
    otel_exporter: Any = importlib.import_module("lcel_trace.exporters").OtelExporter
    conventions = ("gen_ai", "openinference") if args.conventions == "both" else (args.conventions,)
    service = args.service_name or os.environ.get("OTEL_SERVICE_NAME") or "lcel-trace"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if args.console:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        exporter = otel_exporter(provider, conventions=conventions)
        sent = reexport(args.file, [exporter])
        exporter.shutdown()
        provider.shutdown()
        print(f"replayed {sent} traces from {visible(args.file)}", file=sys.stderr)
        return 0

    endpoint, timeout_s = _otlp_target(args)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ValueError(
            "--otlp-endpoint needs the otlp extra: pip install 'lcel-trace[otlp]'"
        ) from None
    # the SDK logs each failed request; the outcome is told here, in one line
    sdk_log = logging.getLogger("opentelemetry.exporter.otlp")
    failures = _FailureLog()
    sdk_log.addHandler(failures)
    propagate, sdk_log.propagate = sdk_log.propagate, False
    try:
        checked = _CheckedExporter(OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s))
        export_ms = int(timeout_s * 1000) + 1000
        provider.add_span_processor(
            BatchSpanProcessor(cast("Any", checked), export_timeout_millis=export_ms)
        )
        exporter = otel_exporter(provider, conventions=conventions)
        sent = reexport(args.file, [exporter])
        exporter.shutdown()
        flushed = provider.force_flush(int((timeout_s + 5) * 1000))
        provider.shutdown()
    finally:
        sdk_log.removeHandler(failures)
        sdk_log.propagate = propagate
    if checked.failed or not flushed:
        why = failures.reason() or ("timed out" if not flushed else "export failed")
        print(
            f"lcel-trace: error: {checked.failed or 'some'} span(s) not delivered to "
            f"{visible(endpoint)}: {visible(why)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"replayed {sent} traces ({checked.delivered} spans) from {visible(args.file)} "
        f"to {visible(endpoint)}",
        file=sys.stderr,
    )
    return 0


def _otlp_target(args: argparse.Namespace) -> tuple[str, float]:
    """The traces URL and per-batch time limit, resolved as the OpenTelemetry SDK does:
    a base endpoint gets /v1/traces appended, a signal-specific one is used as is."""
    env = os.environ
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r} is not supported; use http/protobuf")
    if args.otlp_endpoint:
        base = args.otlp_endpoint.rstrip("/")
        endpoint = base if base.endswith("/v1/traces") else base + "/v1/traces"
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
    else:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
        endpoint = base.rstrip("/") + "/v1/traces"
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"OTLP endpoint {endpoint!r} is not an http:// or https:// URL")
    timeout_s = args.timeout
    if timeout_s is None:
        text = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
            or "10"
        )
        try:
            timeout_s = float(text)
        except ValueError:
            raise ValueError(f"OTLP timeout {text!r} is not a number of seconds") from None
    if timeout_s <= 0:
        raise ValueError(f"--timeout must be positive, got {timeout_s}")
    return endpoint, float(timeout_s)


class _CheckedExporter:
    """An OTel span exporter that delegates, and counts spans in batches that failed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = 0
        self.delivered = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.delivered += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class _FailureLog(logging.Handler):
    """Keeps the last warning or error the OTLP exporter logged, as the reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.messages.append(" ".join(message.split())[:300])

    def reason(self) -> str | None:
        return " | ".join(dict.fromkeys(self.messages)) or None


# -- html ----------------------------------------------------------------------------------


def _html(args: argparse.Namespace) -> int:
    from lcel_trace.reader import read_traces
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
    """Follow the file like `tail -F` and print each trace when its `trace_end` arrives.

    Reads with the same reader as every other command (`lcel_trace.reader`): same line
    limit, same validation. The file as it stands is read first, quietly, so a trace that
    began before `tail` started is still shown whole when it ends (`--from-start` shows
    the finished ones too); then `following FILE` goes to stderr. Waits for a file that
    does not exist yet, starts over on a truncated file and reopens a replaced one
    (rotation). A bad line is reported on stderr and skipped; a file that is not a trace
    file ends the command."""
    from rich.console import Console

    from lcel_trace.reader import LineBuffer, TraceFileError, TraceReader

    console = Console(highlight=False)
    path: Path = args.file
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    reader = TraceReader(path)
    lines = LineBuffer()
    shown = 0
    quiet = not args.from_start  # the traces already finished when tail starts
    handle: Any = None
    identity: tuple[int, int] | None = None

    def note(message: str) -> None:
        print(f"lcel-trace: {message}", file=sys.stderr, flush=True)

    def read_available() -> bool:
        nonlocal shown
        progressed = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for number, raw in lines.read_from(handle):
                progressed = True
                try:
                    finished = reader.feed(number, raw)
                except TraceFileError as exc:
                    if exc.reason.startswith("not an lcel-trace file"):
                        raise
                    note(f"error: {visible(exc)} (line skipped)")
                    continue
                finally:
                    for warning in caught:
                        note(f"warning: {visible(warning.message)}")
                    caught.clear()
                if finished is not None and not quiet:
                    _print_tree(console, finished)
                    sys.stdout.flush()
                    shown += 1
                    if args.exit_after is not None and shown >= args.exit_after:
                        break
        return progressed

    try:
        waited = False  # for the file to appear (or reappear): then all of it is new
        while args.exit_after is None or shown < args.exit_after:
            if deadline is not None and time.monotonic() > deadline:
                note(f"tail: --timeout {args.timeout:g} s reached, {shown} traces shown")
                break
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - kept open across iterations
                except FileNotFoundError:
                    if not waited:
                        note(f"waiting for {path}")
                        waited = True
                    time.sleep(0.05)  # polling for the file to appear
                    continue
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                lines.reset()
                quiet = quiet and not waited
                read_available()
                quiet = False
                note(f"following {path}")
                continue
            if read_available():
                continue
            current: os.stat_result | None
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or (current.st_dev, current.st_ino) != identity:
                handle.close()
                handle = None
                note(f"{path} was replaced or removed; following the new file")
                waited = True
                continue
            if current.st_size < handle.tell():
                note(f"{path} was truncated; reading it from the start")
                handle.seek(0)
                lines.reset()
                continue
            time.sleep(0.05)  # polling: nothing new in the file yet
    finally:
        if handle is not None:
            handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
