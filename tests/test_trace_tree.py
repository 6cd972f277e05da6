"""`Trace.tree()` and `SpanNode`: linear, no recursion, never loops."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from lcel_trace.reader import read_traces
from lcel_trace.records import Record, encode_line
from lcel_trace.span import Span, Trace, TraceEnd, TraceStart

T0 = 1_800_000_000_000_000_000


def span(span_id: str, parent_id: str | None, start: int = 0, name: str = "s") -> Span:
    return Span(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        run_type="chain",
        start_ns=T0 + start,
        end_ns=T0 + 10_000,
        status="ok",
    )


def chain_of(depth: int) -> list[Span]:
    ids = [str(uuid.UUID(int=n + 1)) for n in range(depth)]
    return [span(ids[i], ids[i - 1] if i else None, i, f"s{i}") for i in range(depth)]


def test_a_two_thousand_deep_chain_reads_builds_walks_and_renders(tmp_path: Path) -> None:
    spans = chain_of(2_000)
    path = tmp_path / "deep.jsonl"
    records: list[Record] = [
        TraceStart("ab" * 16, "deep", T0, spans[0].span_id),
        *spans,
        TraceEnd("ab" * 16, "ok", T0 + 10_000, len(spans), 0),
    ]
    path.write_bytes(b"".join(encode_line(r) for r in records))
    (trace,) = read_traces(path)
    tree = trace.tree()
    assert [node.span.name for node in tree.walk()] == [f"s{i}" for i in range(2_000)]
    rendered = tree.render().splitlines()
    assert len(rendered) == 2_000
    assert rendered[2].startswith("   └─ s2 [chain, ok")
    shape = tree.shape()
    for i in range(1_999):
        (shape,) = shape[f"s{i}"]
    assert shape == {"s1999": []}


def test_children_come_in_start_order_and_render_as_before() -> None:
    root = span("r", None, 0, "root")
    late, early = span("b", "r", 5, "late"), span("a", "r", 1, "early")
    grandchild = span("c", "b", 6, "leaf")
    trace = Trace("ab" * 16, "t", "ok", T0, T0 + 10_000, (root, late, grandchild, early), (), "r")
    assert trace.tree().shape() == {"root": [{"early": []}, {"late": [{"leaf": []}]}]}
    assert trace.children(root) == [early, late]
    assert [line.split(" [")[0] for line in trace.tree().render().splitlines()] == [
        "root",
        "├─ early",
        "└─ late",
        "   └─ leaf",
    ]


def test_tree_never_loops_on_cycles_or_repeated_ids() -> None:
    root = span("r", None)
    looped = (span("x", "y"), span("y", "x"), span("z", "z"))
    repeated = tuple(span(f"d{i % 2}", "r" if i < 2 else f"d{(i - 1) % 2}") for i in range(40))
    trace = Trace("ab" * 16, "t", "ok", T0, T0 + 1, (root, *looped, *repeated), (), "r")
    nodes = list(trace.tree().walk())
    assert len(nodes) <= len(trace.spans)
    assert len({id(node.span) for node in nodes}) == len(nodes)


def test_a_wide_trace_builds_in_linear_time() -> None:
    """Was quadratic (20,000 spans: 12 s). At 200,000 spans quadratic takes hours; the
    timeout only stops a hang, it does not time the tree."""
    script = textwrap.dedent(
        """
        from tests.test_trace_tree import span
        spans = [span("root", None)] + [span(f"c{i}", "root", i) for i in range(200_000)]
        from lcel_trace.span import Trace
        trace = Trace("ab" * 16, "t", "ok", 0, 1, tuple(spans), (), "root")
        print(sum(1 for _ in trace.tree().walk()))
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root
    )
    assert done.stdout.strip() == "200001", done.stderr
