"""`lcel-trace show`: each trace as a tree, or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lcel_trace.cli.common import (
    MODEL_RUN_TYPES,
    add_files_arg,
    add_selection_args,
    ms,
    new_console,
    stream_selected,
    token_sum,
)
from lcel_trace.cli.render import print_tree
from lcel_trace.span import SpanNode, Trace


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show_help = "a tree per trace: type, duration, first chunk and token, tokens, model, status"
    show = commands.add_parser("show", help=show_help, description=show_help)
    add_files_arg(show)
    show.add_argument("--json", action="store_true", help="print the traces as JSON")
    show.add_argument(
        "--content",
        action="store_true",
        help="under each span, its inputs, outputs, tool calls and error (one line each)",
    )
    add_selection_args(show)
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    """Each trace is printed as soon as it is read (when its trace_end is), so memory
    holds only the traces still open, whatever the files' size."""
    traces = stream_selected(args)
    if args.json:
        # the same text as json.dumps(list, indent=2), one trace at a time
        opened = False
        for trace in traces:
            item = json.dumps(_trace_json(trace), indent=2).replace("\n", "\n  ")
            print(("[\n  " if not opened else ",\n  ") + item, end="")
            opened = True
        if opened:
            print("\n]")
        return 0
    console = new_console()
    for trace in traces:
        print_tree(console, trace, content=args.content)
    return 0


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
            "first_chunk_ms": ms(s.time_to_first_chunk_ns),
            "first_token_ms": ms(s.time_to_first_token_ns),
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
        "input_tokens": token_sum(model_spans, "input").total,
        "output_tokens": token_sum(model_spans, "output").total,
        "root": root,
        "deep_spans": deep,
    }
