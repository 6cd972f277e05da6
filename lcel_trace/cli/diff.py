"""`lcel-trace diff A B`: what changed from traces A to traces B, as text, Markdown (a
pull-request comment) or JSON; `--fail-on` exits 1 when a threshold is crossed (CI)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from lcel_trace.cost import format_usd
from lcel_trace.terminal import one_line, visible

if TYPE_CHECKING:
    from lcel_trace.diff import DiffReport, Side, StepDiff

EXIT_THRESHOLD_CROSSED = 1
MAX_CELL = 40


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diff_help = (
        "compare traces A with traces B per step (name, model, level): count, error rate, "
        "latency p50/p95 with a Mann-Whitney U test, tokens and cost per call; steps on one "
        "side only; outputs that differ for equal root inputs"
    )
    diff = commands.add_parser("diff", help=diff_help, description=diff_help)
    diff.add_argument("a", metavar="A", help="the baseline: a trace file, directory or glob")
    diff.add_argument("b", metavar="B", help="the candidate: a trace file, directory or glob")
    diff.add_argument(
        "--fail-on",
        metavar="RULES",
        help=(
            'exit 1 when a rule holds, e.g. "p95>+20%%,cost>+10%%,errors>0": p50/p95 per step '
            "(relative, or ms; only when the U test shows the change), errors per step "
            "(percentage points), cost and tokens per trace (relative, or absolute)"
        ),
    )
    output = diff.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the comparison as JSON")
    output.add_argument(
        "--markdown", action="store_true", help="print Markdown tables (a pull-request comment)"
    )
    diff.set_defaults(handler=_diff)


def _diff(args: argparse.Namespace) -> int:
    from lcel_trace.diff import compare, parse_fail_on

    if args.fail_on:
        parse_fail_on(args.fail_on)  # a typo is refused before reading gigabytes
    report = compare(args.a, args.b, fail_on=args.fail_on)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=True))
    else:
        _print_report(report, args, markdown=args.markdown)
    return EXIT_THRESHOLD_CROSSED if report.failures else 0


def _print_report(report: DiffReport, args: argparse.Namespace, *, markdown: bool) -> None:
    table = _markdown_table if markdown else _text_table
    title = (lambda text: f"### {text}") if markdown else (lambda text: text)
    a, b = report.a, report.b
    print(title(f"lcel-trace diff: A = {visible(args.a)}, B = {visible(args.b)}"))
    print()
    print(
        table(
            ["", "A", "B", "change"],
            [
                ["traces", str(a.traces), str(b.traces), _change(a.traces, b.traces)],
                [
                    "error traces",
                    str(a.errors),
                    str(b.errors),
                    _change(a.errors, b.errors, relative=False),
                ],
                [
                    "cost/trace (USD)",
                    _usd(a.cost_per_trace_usd),
                    _usd(b.cost_per_trace_usd),
                    _change(a.cost_per_trace_usd, b.cost_per_trace_usd),
                ],
                [
                    "tokens/trace",
                    _num(a.tokens_per_trace),
                    _num(b.tokens_per_trace),
                    _change(a.tokens_per_trace, b.tokens_per_trace),
                ],
            ],
        )
    )
    print()
    both = [s for s in report.steps if s.only_in is None]
    if both:
        print(title("Steps"))
        print()
        print(table(_STEP_HEADERS, [_step_row(s) for s in both]))
        print()
    for side, label in (("a", "A"), ("b", "B")):
        only = [s for s in report.steps if s.only_in == side]
        if only:
            print(title(f"Only in {label}"))
            print()
            rows = [[*_step_key(s), str(_one(s).count), _pct(_one(s).error_rate)] for s in only]
            print(table(["step", "model", "level", "count", "errors"], rows))
            print()
    print(
        f"Root inputs on both sides: {report.equal_inputs}; "
        f"outputs that differ: {report.changed_outputs}"
    )
    if report.output_examples:
        print()
        rows = [
            [
                one_line(c.name, 20),
                one_line(c.inputs, 50),
                one_line(c.a_output, 50),
                one_line(c.b_output, 50),
            ]
            for c in report.output_examples
        ]
        print(table(["trace", "inputs", "A output", "B output"], rows))
    if report.failures:
        print()
        print(title("Thresholds crossed"))
        print()
        for failure in report.failures:
            print(f"- {visible(failure)}")


_STEP_HEADERS = [
    "step",
    "model",
    "level",
    "count A→B",
    "errors A→B",
    "p50 ms A→B",
    "p95 ms A→B",
    "latency (U test)",
    "tokens in/out per call A→B",
    "cost/call A→B",
]


def _step_key(step: StepDiff) -> list[str]:
    return [one_line(step.name, MAX_CELL), one_line(step.model or "–", MAX_CELL), step.level]


def _one(step: StepDiff) -> Side:
    side = step.a or step.b
    assert side is not None
    return side


def _step_row(step: StepDiff) -> list[str]:
    a, b, test = step.a, step.b, step.latency
    assert a is not None
    assert b is not None
    assert test is not None
    verdict = test.verdict if test.p_value is None else f"{test.verdict} (p={test.p_value:.2g})"
    return [
        *_step_key(step),
        f"{a.count}→{b.count}",
        f"{_pct(a.error_rate)}→{_pct(b.error_rate)}",
        f"{_num(a.p50_ms)}→{_num(b.p50_ms)} ({_change(a.p50_ms, b.p50_ms)})",
        f"{_num(a.p95_ms)}→{_num(b.p95_ms)} ({_change(a.p95_ms, b.p95_ms)})",
        verdict,
        f"{_num(a.input_tokens_per_call)}/{_num(a.output_tokens_per_call)}→"
        f"{_num(b.input_tokens_per_call)}/{_num(b.output_tokens_per_call)}",
        f"{_call_cost(a)}→{_call_cost(b)}",
    ]


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.1f}"


def _usd(value: float | None) -> str:
    return "unknown" if value is None else format_usd(value)


def _call_cost(side: Side) -> str:
    """A step's cost per call: unknown when a model call could not be priced, a dash for
    steps that call no model."""
    if side.cost_per_call_usd is None and not side.cost_unknown_calls:
        return "–"
    return _usd(side.cost_per_call_usd)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _change(before: float | None, after: float | None, *, relative: bool = True) -> str:
    if before is None or after is None:
        return "–"
    if not relative:
        return f"{after - before:+g}"
    if before == 0:
        return "±0%" if after == 0 else "new"
    return f"{(after - before) / before * 100:+.1f}%"


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    cells = [headers, *[[visible(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(_md_cell(c) for c in row) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)])


def _md_cell(text: str) -> str:
    """A Markdown table cell: made visible, pipes and markup characters escaped."""
    escaped = visible(text).replace("\\", "\\\\")
    for char in "|`*_[]<>#":
        escaped = escaped.replace(char, "\\" + char)
    return escaped
