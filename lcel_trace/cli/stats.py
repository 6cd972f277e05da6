"""`lcel-trace stats`: latency, first chunk/token and token sums per span name."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from lcel_trace.cli.common import (
    FILE_HELP,
    MODEL_RUN_TYPES,
    Tokens,
    add_selection_args,
    cell,
    ms,
    percentile,
    root_span_id,
    selected,
    token_sum,
)
from lcel_trace.span import Span
from lcel_trace.terminal import one_line


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats_help = (
        "per span name, model and level (root or nested): count, error rate, latency and "
        "time to first chunk (ttfc) and token (ttft) percentiles, tokens in/out/total"
    )
    stats = commands.add_parser("stats", help=stats_help, description=stats_help)
    stats.add_argument("file", type=Path, help=FILE_HELP)
    stats.add_argument("--json", action="store_true", help="print the table as JSON")
    add_selection_args(stats)
    stats.set_defaults(handler=_stats)


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
    traces = selected(args)
    if traces is None:
        return 0
    groups: dict[tuple[str, str, str], list[Span]] = defaultdict(list)
    counted: dict[tuple[str, str, str], list[Span]] = defaultdict(list)  # whose tokens add up
    for trace in traces:
        root_id = root_span_id(trace)
        models = [s for s in trace.spans if s.run_type in MODEL_RUN_TYPES]
        for span in trace.spans:
            level = "root" if span.span_id == root_id else "nested"
            groups[(level, span.name, span.model or "")].append(span)
            # a root carries its trace's totals: the model calls under it, or its own
            own = level == "nested" or span.run_type in MODEL_RUN_TYPES
            counted[(level, span.name, span.model or "")].extend([span] if own else models)
    rows: list[dict[str, Any]] = []
    tokens: list[dict[str, Tokens]] = []
    for (level, name, model), spans in sorted(groups.items(), key=_roots_first):
        latency = [s.duration_ns / 1e6 for s in spans]
        first_chunk = [ms(s.time_to_first_chunk_ns) for s in spans]
        first_token = [ms(s.time_to_first_token_ns) for s in spans]
        usage = counted[(level, name, model)]
        sums = {f"{kind}_tokens": token_sum(usage, kind) for kind in ("input", "output", "total")}
        tokens.append(sums)
        rows.append(
            {
                "name": name,
                "model": model or None,
                "level": level,
                "count": len(spans),
                "error_rate": sum(s.status == "error" for s in spans) / len(spans),
                **{f"latency_p{q}_ms": percentile(latency, q) for q in (50, 95, 99)},
                **{f"first_chunk_p{q}_ms": percentile(first_chunk, q) for q in (50, 95, 99)},
                **{f"first_token_p{q}_ms": percentile(first_token, q) for q in (50, 95, 99)},
                **{key: value.total for key, value in sums.items()},
                "spans_with_usage": sum(s.usage is not None for s in usage),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [
            one_line(row[key] or "–", MAX_NAME_CELL)
            if key in ("name", "model")
            else cell(tokens[i].get(key, row[key]))
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
