"""Compare two sets of traces (main and a branch, a recording and its replay).

Per step, keyed by (name, model, level) as `lcel-trace stats` groups them: counts, error
rates, latency p50/p95 with a Mann-Whitney U test, tokens and cost per call; steps seen
on one side only; and, for traces whose root inputs are equal on both sides, the root
outputs that differ. `--fail-on` thresholds turn the comparison into a CI verdict.

The U test uses the normal approximation with tie and continuity corrections (what
SciPy's `mannwhitneyu(method="asymptotic")` computes; SciPy is too heavy a dependency
for one formula). Below `MIN_SAMPLES` calls on either side it gives no verdict: "no
evidence" is said rather than a p-value nobody should trust. Both sides are read as
streams; what is kept per step is one float per call.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lcel_trace.cost import MODEL_RUN_TYPES, span_cost
from lcel_trace.serialize import to_jsonable
from lcel_trace.span import Span, Trace

__all__ = [
    "ALPHA",
    "MIN_SAMPLES",
    "DiffReport",
    "LatencyTest",
    "OutputChange",
    "StepDiff",
    "Threshold",
    "compare",
    "mann_whitney_u",
    "parse_fail_on",
]

MIN_SAMPLES = 8
"""Calls needed on each side before the U test's normal approximation is used."""
ALPHA = 0.05
"""A latency change counts as shown when the test's two-sided p-value is below this."""
MAX_OUTPUT_EXAMPLES = 20
PREVIEW_CHARS = 200

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
GroupKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class LatencyTest:
    """Mann-Whitney U on the two sides' latencies: `verdict` is "slower", "faster",
    "no significant change" or "no evidence" (too few calls to say)."""

    verdict: str
    p_value: float | None
    u: float | None


@dataclass(frozen=True, slots=True)
class Side:
    """One side's facts for a step."""

    count: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    input_tokens_per_call: float | None
    output_tokens_per_call: float | None
    cost_per_call_usd: float | None
    cost_usd: float | None
    cost_unknown_calls: int


@dataclass(frozen=True, slots=True)
class StepDiff:
    name: str
    model: str | None
    level: str
    a: Side | None
    b: Side | None
    latency: LatencyTest | None

    @property
    def only_in(self) -> Literal["a", "b"] | None:
        if self.b is None:
            return "a"
        if self.a is None:
            return "b"
        return None


@dataclass(frozen=True, slots=True)
class OutputChange:
    """A root input seen on both sides whose outputs differ."""

    name: str
    inputs: str
    a_output: str
    b_output: str


@dataclass(frozen=True, slots=True)
class Totals:
    traces: int
    errors: int
    cost_per_trace_usd: float | None
    tokens_per_trace: float | None


@dataclass
class DiffReport:
    a: Totals
    b: Totals
    steps: list[StepDiff]
    equal_inputs: int
    """Root inputs found on both sides."""
    changed_outputs: int
    output_examples: list[OutputChange] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """The `--fail-on` thresholds crossed, in words (empty when none or none asked)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for step, shown in zip(self.steps, data["steps"], strict=True):
            shown["only_in"] = step.only_in
        return data


# -- the U test ----------------------------------------------------------------------------


def mann_whitney_u(a: list[float], b: list[float]) -> LatencyTest:
    """Two-sided Mann-Whitney U test of `b` against `a` (normal approximation with tie and
    continuity corrections); "slower" means `b` tends to be larger."""
    n1, n2 = len(a), len(b)
    if n1 < MIN_SAMPLES or n2 < MIN_SAMPLES:
        return LatencyTest(f"no evidence ({n1} vs {n2} calls, need {MIN_SAMPLES})", None, None)
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    rank_sum_b = 0.0
    ties = 0.0
    i, n = 0, n1 + n2
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # average rank of the tied run, 1-based
        size = j - i + 1
        ties += size**3 - size
        rank_sum_b += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 1)
        i = j + 1
    u_b = rank_sum_b - n2 * (n2 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:  # every value equal
        return LatencyTest("no significant change", 1.0, u_b)
    z = (abs(u_b - mean) - 0.5) / math.sqrt(variance)
    p = min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    verdict = "no significant change" if p >= ALPHA else "slower" if u_b > mean else "faster"
    return LatencyTest(verdict, p, u_b)


# -- reading one side ----------------------------------------------------------------------


@dataclass
class _Group:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    input_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    unknown_cost: int = 0


@dataclass
class _SideData:
    groups: dict[GroupKey, _Group] = field(default_factory=dict)
    traces: int = 0
    errors: int = 0
    trace_costs: list[float] = field(default_factory=list)
    trace_tokens: list[int] = field(default_factory=list)
    outputs: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    """input digest -> (trace name, input preview, output digest, output preview)"""


def _read_side(paths: Paths) -> _SideData:
    from lcel_trace.reader import stream_traces

    data = _SideData()
    for trace in stream_traces(paths):
        _add_trace(data, trace)
    return data


def _add_trace(data: _SideData, trace: Trace) -> None:
    data.traces += 1
    data.errors += trace.status == "error"
    root = _root(trace)
    cost_sum, cost_known, tokens, tokens_known = 0.0, True, 0, False
    for span in trace.spans:
        level = "root" if root is not None and span.span_id == root.span_id else "nested"
        key = (span.name, span.model or "", level)
        group = data.groups.get(key)
        if group is None:
            group = data.groups[key] = _Group()
        group.latencies.append(span.duration_ns / 1e6)
        group.errors += span.status == "error"
        if span.usage is not None:
            if span.usage.input_tokens is not None:
                group.input_tokens.append(span.usage.input_tokens)
            if span.usage.output_tokens is not None:
                group.output_tokens.append(span.usage.output_tokens)
            if span.usage.total_tokens is not None and span.run_type in MODEL_RUN_TYPES:
                tokens += span.usage.total_tokens
                tokens_known = True
        if span.run_type in MODEL_RUN_TYPES:
            cost = span_cost(span)
            if cost is None:
                group.unknown_cost += 1
                cost_known = False
            else:
                group.costs.append(cost.total_usd)
                cost_sum += cost.total_usd
    if cost_known:
        data.trace_costs.append(cost_sum)
    if tokens_known:
        data.trace_tokens.append(tokens)
    if root is not None and root.inputs is not None and trace.status == "ok":
        inputs = _canonical_text(root.inputs)
        output = _canonical_text(root.outputs)
        digest = _digest(trace.name + "\0" + inputs)
        data.outputs.setdefault(
            digest, (trace.name, _preview(inputs), _digest(output), _preview(output))
        )


def _root(trace: Trace) -> Span | None:
    try:
        return trace.root
    except LookupError:
        return None


def _canonical(value: Any) -> Any:
    """What an output *says*: messages by type, content and tool calls (not their ids,
    timings or provider metadata, which differ on every run); containers by parts."""
    content = getattr(value, "content", None)
    kind = getattr(value, "type", None)
    if content is not None and isinstance(kind, str):
        calls = [
            {"name": c.get("name"), "args": c.get("args")}
            for c in getattr(value, "tool_calls", None) or ()
            if isinstance(c, dict)
        ]
        return {
            "type": kind.removesuffix("MessageChunk").lower(),
            "content": content,
            "calls": calls,
        }
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        return [_canonical(m) for m in to_messages()]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return to_jsonable(value)


def _canonical_text(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, ensure_ascii=False, default=str)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


# -- comparing -----------------------------------------------------------------------------


def compare(a: Paths, b: Paths, fail_on: str | None = None) -> DiffReport:
    """Read both sides (files, directories, globs, .jsonl.gz) and compare them; with
    `fail_on` (see `parse_fail_on`), `failures` lists the thresholds crossed."""
    thresholds = parse_fail_on(fail_on) if fail_on else []
    side_a, side_b = _read_side(a), _read_side(b)
    steps: list[StepDiff] = []
    for key in sorted(side_a.groups.keys() | side_b.groups.keys(), key=_roots_first):
        group_a, group_b = side_a.groups.get(key), side_b.groups.get(key)
        latency = None
        if group_a is not None and group_b is not None:
            latency = mann_whitney_u(group_a.latencies, group_b.latencies)
        name, model, level = key
        steps.append(StepDiff(name, model or None, level, _side(group_a), _side(group_b), latency))
    equal = changed = 0
    examples: list[OutputChange] = []
    for digest, (name, inputs, out_a, preview_a) in side_a.outputs.items():
        seen = side_b.outputs.get(digest)
        if seen is None:
            continue
        equal += 1
        if seen[2] != out_a:
            changed += 1
            if len(examples) < MAX_OUTPUT_EXAMPLES:
                examples.append(OutputChange(name, inputs, preview_a, seen[3]))
    report = DiffReport(_totals(side_a), _totals(side_b), steps, equal, changed, examples)
    report.failures = [f for t in thresholds if (f := t.crossed(report))]
    return report


def _side(group: _Group | None) -> Side | None:
    if group is None:
        return None
    count = len(group.latencies)
    ordered = sorted(group.latencies)
    return Side(
        count=count,
        errors=group.errors,
        error_rate=group.errors / count if count else 0.0,
        p50_ms=_percentile(ordered, 50),
        p95_ms=_percentile(ordered, 95),
        input_tokens_per_call=_mean(group.input_tokens),
        output_tokens_per_call=_mean(group.output_tokens),
        cost_per_call_usd=_mean(group.costs) if not group.unknown_cost else None,
        cost_usd=sum(group.costs) if group.costs and not group.unknown_cost else None,
        cost_unknown_calls=group.unknown_cost,
    )


def _totals(side: _SideData) -> Totals:
    return Totals(
        traces=side.traces,
        errors=side.errors,
        cost_per_trace_usd=_mean(side.trace_costs),
        tokens_per_trace=_mean(side.trace_tokens),
    )


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile, as `lcel-trace stats` computes it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _mean(values: list[int] | list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _roots_first(key: GroupKey) -> tuple[bool, str, str]:
    name, model, level = key
    return level != "root", name, model


# -- thresholds ----------------------------------------------------------------------------

METRICS = ("p50", "p95", "errors", "cost", "tokens")
_CONDITION = re.compile(
    r"\s*(?P<metric>[a-z0-9_]+)\s*(?P<op>[<>])\s*(?P<value>[+-]?\d+(?:\.\d+)?)(?P<pct>%?)\s*"
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One `--fail-on` condition, e.g. `p95>+20%`.

    - `p50`, `p95`: a step's latency percentile, relative (`%`) or in ms; only counts
      when the U test shows the shift in that direction (latency is noisy).
    - `errors`: a step's error rate, in percentage points (`errors>0`: any rise).
    - `cost`: cost per trace, relative or in USD (only when known on both sides).
    - `tokens`: tokens per trace, relative or absolute.
    """

    metric: str
    op: str
    value: float
    relative: bool

    def __str__(self) -> str:
        sign = "+" if self.value >= 0 else ""
        return f"{self.metric}{self.op}{sign}{self.value:g}{'%' if self.relative else ''}"

    def _beyond(self, before: float | None, after: float | None) -> float | None:
        """The change, when it crosses the threshold."""
        if before is None or after is None:
            return None
        if self.relative:
            if before == 0:
                change = math.inf if after > 0 else 0.0
            else:
                change = (after - before) / before * 100
        else:
            change = after - before
        crossed = change > self.value if self.op == ">" else change < self.value
        return change if crossed else None

    def crossed(self, report: DiffReport) -> str | None:
        """What crossed this threshold, in words; None when nothing did."""
        unit = "%" if self.relative else ""
        if self.metric in ("cost", "tokens"):
            field_name = "cost_per_trace_usd" if self.metric == "cost" else "tokens_per_trace"
            before, after = getattr(report.a, field_name), getattr(report.b, field_name)
            change = self._beyond(before, after)
            if change is None:
                return None
            return (
                f"{self}: {self.metric} per trace {before:.6g} -> {after:.6g} ({change:+.1f}{unit})"
            )
        hits: list[str] = []
        for step in report.steps:
            label = f"{step.name}" + (f" [{step.model}]" if step.model else "") + f" ({step.level})"
            if self.metric == "errors":
                before = step.a.error_rate * 100 if step.a else 0.0
                after = step.b.error_rate * 100 if step.b else None
                change = self._beyond(before, after)
                if change is not None:
                    hits.append(f"{label} error rate {before:.1f}% -> {after:.1f}%")
                continue
            if step.a is None or step.b is None or step.latency is None:
                continue
            wanted = "slower" if self.op == ">" else "faster"
            if step.latency.verdict != wanted:
                continue
            key = "p50_ms" if self.metric == "p50" else "p95_ms"
            before, after = getattr(step.a, key), getattr(step.b, key)
            change = self._beyond(before, after)
            if change is not None:
                hits.append(
                    f"{label} {self.metric} {before:.1f} -> {after:.1f} ms "
                    f"({change:+.1f}{unit or ' ms'}, p={step.latency.p_value:.2g})"
                )
        return f"{self}: " + "; ".join(hits) if hits else None


def parse_fail_on(text: str) -> list[Threshold]:
    """`"p95>+20%,cost>+10%,errors>0"` as thresholds; a malformed one is a ValueError
    that says what is allowed."""
    thresholds = []
    for part in text.split(","):
        match = _CONDITION.fullmatch(part)
        if match is None or match["metric"] not in METRICS:
            raise ValueError(
                f"--fail-on: cannot read {part.strip()!r}; write METRIC>VALUE or METRIC<VALUE "
                f"(a trailing % for relative), METRIC one of {', '.join(METRICS)}, "
                "e.g. p95>+20%,cost>+10%,errors>0"
            )
        relative = bool(match["pct"])
        if match["metric"] == "errors" and relative:
            raise ValueError("--fail-on: errors are compared in percentage points, without %")
        thresholds.append(Threshold(match["metric"], match["op"], float(match["value"]), relative))
    return thresholds
