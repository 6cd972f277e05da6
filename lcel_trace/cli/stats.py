"""`lcel-trace stats`: latency, first chunk/token, token and cost sums per span name,
from traces streamed in bounded memory."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from lcel_trace.cli.common import (
    MODEL_RUN_TYPES,
    Tokens,
    add_files_arg,
    add_selection_args,
    cell,
    percentile,
    root_span_id,
    stream_selected,
)
from lcel_trace.cost import format_usd, span_cost
from lcel_trace.span import Span
from lcel_trace.terminal import one_line


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats_help = (
        "per span name, model and level (root or nested): count, error rate, latency and "
        "time to first chunk (ttfc) and token (ttft) percentiles, tokens in/out/total, "
        "cost in USD (a root row: its traces' model calls; needs genai-prices)"
    )
    stats = commands.add_parser("stats", help=stats_help, description=stats_help)
    add_files_arg(stats)
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
    "cost_usd": "cost_usd",
    "cost_per_trace_usd": "usd/trace",
    "input_tokens": "tokens_in",
    "output_tokens": "tokens_out",
    "total_tokens": "tokens_total",
}


class _Group:
    """One row's numbers, gathered as traces stream by: floats, not spans, so memory
    grows with the span count only by a few numbers each."""

    def __init__(self) -> None:
        self.count = self.errors = self.with_usage = 0
        self.latency: list[float] = []
        self.first_chunk: list[float] = []
        self.first_token: list[float] = []
        self._tokens = {kind: [0, 0, 0] for kind in _TOKEN_KINDS}  # sum, known, spans
        self.cost = _CostSum()

    def add(self, span: Span, counted: Sequence[Span]) -> None:
        """`span` itself, and the spans whose tokens and cost this row adds up."""
        self.count += 1
        self.errors += span.status == "error"
        self.latency.append(span.duration_ns / 1e6)
        if span.first_chunk_ns is not None:
            self.first_chunk.append(span.time_to_first_chunk_ns / 1e6)  # type: ignore[operator]
        if span.first_token_ns is not None:
            self.first_token.append(span.time_to_first_token_ns / 1e6)  # type: ignore[operator]
        for kind in _TOKEN_KINDS:
            sums = self._tokens[kind]
            for counted_span in counted:
                value = getattr(counted_span.usage, f"{kind}_tokens", None)
                sums[2] += 1
                if value is not None:
                    sums[0] += value
                    sums[1] += 1
        self.with_usage += sum(s.usage is not None for s in counted)
        self.cost.add(counted)

    def tokens(self, kind: str) -> Tokens:
        total, known, spans = self._tokens[kind]
        return Tokens(total if known else None, 0 < known < spans)


class _CostSum:
    """The summed cost of model calls: unknown when none could be priced, a lower bound
    (shown `≥`) when only some could; a dash when there were no model calls."""

    __slots__ = ("known", "total", "unknown")

    def __init__(self, total: float | None = None, known: int = 0, unknown: int = 0) -> None:
        self.total, self.known, self.unknown = total, known, unknown

    @property
    def partial(self) -> bool:
        return self.known > 0 and self.unknown > 0

    def add(self, spans: Sequence[Span]) -> None:
        for span in spans:
            if span.run_type not in MODEL_RUN_TYPES:
                continue
            cost = span_cost(span)
            if cost is None:
                self.unknown += 1
            else:
                self.known += 1
                self.total = (self.total or 0.0) + cost.total_usd

    def per(self, count: int) -> _CostSum:
        total = None if self.total is None else self.total / count
        return _CostSum(total, self.known, self.unknown)

    def __str__(self) -> str:
        if self.total is None:
            return "unknown" if self.unknown else "–"
        return f"{'≥' if self.partial else ''}{format_usd(self.total)}"


_TOKEN_KINDS = ("input", "output", "total")


def _stats(args: argparse.Namespace) -> int:
    from lcel_trace import cost as pricing

    groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)
    traces = 0
    for trace in stream_selected(args):
        traces += 1
        root_id = root_span_id(trace)
        models = [s for s in trace.spans if s.run_type in MODEL_RUN_TYPES]
        for span in trace.spans:
            level = "root" if span.span_id == root_id else "nested"
            # a root carries its trace's totals: the model calls under it, or its own
            own = level == "nested" or span.run_type in MODEL_RUN_TYPES
            groups[(level, span.name, span.model or "")].add(span, [span] if own else models)
    if not traces:
        return 0
    priced = pricing.available()
    rows: list[dict[str, Any]] = []
    tokens: list[dict[str, Any]] = []
    for (level, name, model), group in sorted(groups.items(), key=_roots_first):
        sums = {f"{kind}_tokens": group.tokens(kind) for kind in _TOKEN_KINDS}
        cost_cells: dict[str, Any] = {"cost_usd": group.cost, "cost_per_trace_usd": "–"}
        if level == "root":
            cost_cells["cost_per_trace_usd"] = group.cost.per(group.count)
        tokens.append({**sums, **cost_cells})
        rows.append(
            {
                "name": name,
                "model": model or None,
                "level": level,
                "count": group.count,
                "error_rate": group.errors / group.count,
                **{f"latency_p{q}_ms": percentile(group.latency, q) for q in (50, 95, 99)},
                **{f"first_chunk_p{q}_ms": percentile(group.first_chunk, q) for q in (50, 95, 99)},
                **{f"first_token_p{q}_ms": percentile(group.first_token, q) for q in (50, 95, 99)},
                **{key: value.total for key, value in sums.items()},
                "spans_with_usage": group.with_usage,
                "cost_usd": group.cost.total if priced else None,
                "cost_partial": group.cost.partial,
                "cost_per_trace_usd": (
                    group.cost.per(group.count).total if priced and level == "root" else None
                ),
                "price_source": pricing.price_source() if priced else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = {k: v for k, v in _STATS_HEADERS.items() if priced or not k.startswith("cost")}
    table = [
        [
            one_line(row[key] or "–", MAX_NAME_CELL)
            if key in ("name", "model")
            else cell(tokens[i].get(key, row[key]))
            for key in headers
        ]
        for i, row in enumerate(rows)
    ]
    columns = list(headers.values())
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for cells in table:
        print("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())
    return 0


def _roots_first(group: tuple[tuple[str, str, str], _Group]) -> tuple[bool, str, str]:
    (level, name, model), _ = group
    return level != "root", name, model
