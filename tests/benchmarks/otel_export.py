"""What `OtelExporter` costs per traced invoke, against the OpenTelemetry SDK's own floor
and, for scale, OpenLLMetry (issue 27).

    .venv/bin/python tests/benchmarks/otel_export.py [blocks] [calls]

Two measurements, each in processes of its own, all in one run:

- The exporter alone. A process runs `calls` traced invokes of the per-call chain
  (`prompt | FakeListChatModel | StrOutputParser`, 4 runs) and keeps the records
  lcel-trace's worker hands an exporter (`on_trace_start`, `export`, `on_trace_end`),
  freezes them out of the garbage collector's way, then times, in alternating rounds:
  `ours`, a fresh `OtelExporter` fed those records, and `SDK floor`, the SDK's tracer
  making the very spans that exporter made (same names, kinds, parents, times,
  attributes, events, status) with nothing else. Both into a `BatchSpanProcessor` and an
  in-memory exporter drained inside the timed block, so process CPU counts the SDK's
  thread too. `ours - floor` is what the mapping adds (the target of issue 27's item 5).
- The traced call. `tests/benchmarks/per_call.py`'s child processes, one per tracer
  (plain, lcel-trace without exporters, lcel-trace + OtelExporter, OpenLLMetry when
  installed: `pip install -e .[bench]`): process CPU per `invoke`, exporters drained.

Every number is a median over blocks; CPU is `time.process_time` (all threads).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from per_call import INPUT, PEERS, chain, installed, otel_sink, run_child

ROUNDS = 3
TRACERS = ("plain", "lcel-trace", "lcel-trace+otel", "openllmetry")


def exporter_child(calls: int) -> dict[str, Any]:
    """Inside a subprocess: the exporter alone and the SDK floor, CPU µs per invoke."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context

    from lcel_trace import trace
    from lcel_trace.exporters import OtelExporter

    calls_made: list[tuple[str, Any]] = []

    class Recording(OtelExporter):
        """Keeps what the worker hands it, in order; emits nothing."""

        def on_trace_start(self, start: Any) -> None:
            calls_made.append(("on_trace_start", start))

        def export(self, spans: Any) -> None:
            calls_made.append(("export", list(spans)))

        def on_trace_end(self, end: Any) -> None:
            calls_made.append(("on_trace_end", end))

    provider, memory = otel_sink()
    recording = Recording(provider)
    traced = trace(chain(), exporters=[recording])
    for _ in range(calls):
        traced.invoke(INPUT)
    recording.force_flush(60)

    def ours() -> None:
        exporter = OtelExporter(provider)
        for method, argument in calls_made:
            getattr(exporter, method)(argument)
        provider.force_flush()
        memory.clear()

    ours()  # warm, and what the floor makes again
    exporter = OtelExporter(provider)
    for method, argument in calls_made:
        getattr(exporter, method)(argument)
    provider.force_flush()
    made: dict[int, list[Any]] = {}
    for span in memory.get_finished_spans():
        made.setdefault(span.context.trace_id, []).append(span)
    memory.clear()
    traces = [sorted(spans, key=lambda s: s.start_time) for spans in made.values()]
    tracer = provider.get_tracer("sdk-floor")

    def floor() -> None:
        for spans in traces:
            contexts: dict[int, Any] = {}
            for span in spans:
                parent = span.parent.span_id if span.parent is not None else None
                otel_span = tracer.start_span(
                    span.name,
                    context=contexts.get(parent, Context()) if parent else Context(),
                    kind=span.kind,
                    attributes=dict(span.attributes),
                    start_time=span.start_time,
                )
                for event in span.events:
                    otel_span.add_event(event.name, event.attributes, timestamp=event.timestamp)
                contexts[span.context.span_id] = otel_trace.set_span_in_context(
                    otel_span, Context()
                )
                otel_span.set_status(span.status)
                otel_span.end(end_time=span.end_time)
        provider.force_flush()
        memory.clear()

    floor()
    gc.collect()
    gc.freeze()  # the kept records are not what is measured: keep collections off them
    cpu: dict[str, list[float]] = {"ours": [], "floor": [], "mapping": []}
    for _ in range(ROUNDS):
        for name, run in (("ours", ours), ("floor", floor)):
            gc.collect()
            start = time.process_time()
            run()
            cpu[name].append((time.process_time() - start) / calls * 1e6)
    gc.unfreeze()
    calls_made.clear()
    for _ in range(ROUNDS):
        cpu["mapping"].append(live_mapping(calls, provider, memory))
    return {name: statistics.median(values) for name, values in cpu.items()}


def live_mapping(calls: int, provider: Any, memory: Any) -> float:
    """CPU µs per invoke the exporter's thread spends planning spans (names, attributes,
    events: the mapping, without the SDK) in a live traced loop, records fresh."""
    from lcel_trace import trace
    from lcel_trace.exporters import OtelExporter

    class Timed(OtelExporter):
        spent_ns = 0

        def planned(self, pending: Any) -> Any:
            start = time.thread_time_ns()
            plans = list(super().planned(pending))
            self.spent_ns += time.thread_time_ns() - start
            return iter(plans)

    exporter = Timed(provider)
    traced = trace(chain(), exporters=[exporter])
    for _ in range(calls):
        traced.invoke(INPUT)
    exporter.force_flush(60)
    memory.clear()
    exporter.spent_ns = 0
    for _ in range(calls):
        traced.invoke(INPUT)
    exporter.force_flush(60)
    memory.clear()
    return exporter.spent_ns / calls / 1e3


def main(blocks: int, calls: int) -> None:
    tracers = [t for t in TRACERS if t not in PEERS or installed(PEERS[t])]
    alone: dict[str, list[float]] = {"ours": [], "floor": [], "added": [], "mapping": []}
    invoke: dict[str, list[float]] = {t: [] for t in tracers}
    for block in range(blocks):
        data = run_child_here(["--exporter-child", str(calls)])
        alone["ours"].append(data["ours"])
        alone["floor"].append(data["floor"])
        alone["added"].append(data["ours"] - data["floor"])
        alone["mapping"].append(data["mapping"])
        order = tracers[block % len(tracers) :] + tracers[: block % len(tracers)]
        for tracer in order:
            row = run_child(["--child", tracer, str(calls), "2"])
            invoke[tracer].append(statistics.median(row["invoke"]["cpu_us"]))

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} [{min(values):.1f}–{max(values):.1f}]"

    print(f"OtelExporter per invoke of the 4-run chain, {blocks} blocks x {calls} invokes")
    print("CPU µs per invoke, median [min–max] over blocks, SDK threads counted")
    print(f"  the exporter alone, fed recorded records   {med(alone['ours'])}")
    print(f"  the SDK floor: the same spans, SDK only     {med(alone['floor'])}")
    print(f"  ours above the floor                        {med(alone['added'])}")
    print(f"  the mapping alone, live loop, its thread    {med(alone['mapping'])}")
    plain = invoke["plain"]
    for tracer in tracers:
        ratios = [t / p for t, p in zip(invoke[tracer], plain, strict=True)]
        print(
            f"  invoke, {tracer:<16} {med(invoke[tracer]):>24}   × plain "
            f"{statistics.median(ratios):.2f} (paired per block)"
        )
    for tracer, distribution in PEERS.items():
        if tracer in TRACERS and tracer not in tracers:
            print(f"  {tracer}: not installed, not compared (pip install {distribution})")


def run_child_here(argv: list[str]) -> dict[str, Any]:
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "?")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--exporter-child":
        print(json.dumps(exporter_child(int(sys.argv[2]))))
    else:
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 4,
            int(sys.argv[2]) if len(sys.argv) > 2 else 500,
        )
