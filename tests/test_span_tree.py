"""One span-tree builder (`lcel_trace.span.span_tree`) behind `Trace.tree()`, the HTML
timeline and the OpenTelemetry exporter: the same root, the same order, and the same
rule for a span whose parent is not in the trace (it hangs under the root)."""

from __future__ import annotations

import json
import re

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace.export import ExportProcessor
from lcel_trace.exporters import OtelExporter
from lcel_trace.span import Span, Trace, TraceEnd, TraceStart, span_tree
from lcel_trace.timeline import render_html

TRACE_ID = "ab" * 16
T0 = 1_800_000_000_000_000_000
ROOT, STEP, LOST, LATE = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 5))


def span(span_id: str, parent_id: str | None, start: int, name: str) -> Span:
    return Span(TRACE_ID, span_id, parent_id, name, "chain", T0 + start, T0 + 100, "ok")


def spans() -> tuple[Span, ...]:
    """A root with one step, a span whose parent line was lost, and a late step."""
    return (
        span(STEP, ROOT, 10, "step"),
        span(LOST, "ffffffff-0000-4000-8000-000000000000", 5, "lost"),
        span(LATE, ROOT, 20, "late"),
        span(ROOT, None, 0, "root"),
    )


def test_a_span_whose_parent_is_not_in_the_trace_hangs_under_the_root() -> None:
    trace = Trace(TRACE_ID, "t", "ok", T0, T0 + 100, spans(), root_run_id=ROOT)
    assert trace.tree().shape() == {"root": [{"lost": []}, {"step": []}, {"late": []}]}
    assert span_tree(spans()).shape() == trace.tree().shape()  # root found without its id


def test_a_loop_of_parent_links_leaves_no_span_out_and_none_twice() -> None:
    looped = (
        span(ROOT, None, 0, "root"),
        span(STEP, LATE, 10, "a"),
        span(LATE, STEP, 20, "b"),
    )
    names = [node.span.name for node in span_tree(looped).walk()]
    assert sorted(names) == ["a", "b", "root"]


def test_the_timeline_draws_the_same_tree() -> None:
    trace = Trace(TRACE_ID, "t", "ok", T0, T0 + 100, spans(), root_run_id=ROOT)
    page = render_html([trace])
    data = re.search(r'<script type="application/json" id="lcel-trace-data">(.*?)</script>', page)
    assert data is not None, "the page embeds its data"
    (drawn,) = json.loads(data.group(1))["traces"]
    assert [(s["name"], s["depth"]) for s in drawn["spans"]] == [
        ("root", 0),
        ("lost", 1),
        ("step", 1),
        ("late", 1),
    ]


def test_the_otel_exporter_keeps_a_lost_parents_span_in_the_trace_under_the_root() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = OtelExporter(provider)
    processor = ExportProcessor(exporter)
    processor.submit(
        [
            TraceStart(TRACE_ID, "t", T0, ROOT),
            *spans(),
            TraceEnd(TRACE_ID, "ok", T0 + 100, 4, 0),
        ]
    )
    assert processor.drain(30)
    processor.close(30)
    emitted = {s.attributes["lcel.run_id"]: s for s in memory.get_finished_spans()}
    assert emitted.keys() == {ROOT, STEP, LOST, LATE}
    root = emitted[ROOT]
    assert {s.context.trace_id for s in emitted.values()} == {int(TRACE_ID, 16)}
    for child in (STEP, LOST, LATE):
        assert emitted[child].parent is not None
        assert emitted[child].parent.span_id == root.context.span_id
