"""The per-call path: what tracing adds to `invoke`, `ainvoke`, `batch` and `abatch`.

    python tests/benchmarks/bench.py --per-call          # these rows only
    python tests/benchmarks/bench.py --per-call --quick  # CI's smoke size

The chain is `prompt | FakeListChatModel | StrOutputParser` (4 runs per call). Each
tracer runs in processes of its own (OpenInference and OpenLLMetry instrument LangChain
globally, for the life of the process), and every block runs one plain process and one
process per tracer, in rotating order; ratios are paired within a block (this machine
has slow phases). A timed block is N traced calls *and the drain of every exporter*
(lcel-trace's queues, the BatchSpanProcessor's thread, the JSONL writes), so wall time
and process CPU time (`time.process_time`, every thread of the process) both include
the exporter threads' work: it is the user's CPU too. For scale, one more process runs
the chain with an inline callback handler that does nothing: LangChain's own price for
any handler, which no tracer built on callbacks can go below.

Sustained throughput: a tight loop of traced `invoke`s for 20 s (5 s in --quick) with
the default queue sizes, then `exporter_stats`: calls per second and records dropped.

    python tests/benchmarks/bench.py --per-call --baseline /path/to/older/checkout

adds "… (before)" rows: lcel-trace's processes again, importing `lcel_trace` (and its
`exporters`) from that checkout, in the same blocks and paired with the same plain
processes: a before/after from one run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

CHECKOUT_VARIABLE = "LCEL_TRACE_BENCH_CHECKOUT"


def import_from_checkout(root: str) -> None:
    """Make `lcel_trace`, and `lcel_trace.exporters` (the checkout's `exporters/`
    folder), import from the checkout `root`, whatever is installed (an editable install
    maps both to its own tree ahead of PYTHONPATH)."""
    import importlib.abc
    import importlib.machinery
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    class CheckoutFinder(importlib.abc.MetaPathFinder):
        def find_spec(
            self,
            fullname: str,
            path: Sequence[str] | None,
            target: ModuleType | None = None,
        ) -> ModuleSpec | None:
            if fullname in ("lcel_trace", "lcel_trace.exporters"):
                return importlib.machinery.PathFinder.find_spec(fullname, [root])
            return None

    sys.meta_path.insert(0, CheckoutFinder())


if os.environ.get(CHECKOUT_VARIABLE):  # a "(before)" child: before lcel_trace is imported
    import_from_checkout(os.environ[CHECKOUT_VARIABLE])

from lcel_trace import progress  # noqa: E402

INPUT = {"topic": "parrots"}
BATCH = 50
ENTRIES = ("invoke", "ainvoke", "batch 50", "abatch 50")
OURS = ("lcel-trace", "lcel-trace+jsonl", "lcel-trace+otel")
PEERS = {
    "openinference": "openinference-instrumentation-langchain",
    "openllmetry": "opentelemetry-instrumentation-langchain",
}
TARGETS = {
    ("lcel-trace+jsonl", "invoke"): 1.50,
    ("lcel-trace+otel", "invoke"): 1.75,
    ("lcel-trace+jsonl", "abatch 50"): 1.45,
    ("lcel-trace+otel", "abatch 50"): 1.65,
}
"""CPU × plain, exporter threads counted (issue 27)."""
BEFORE = " (before)"
"""Suffix of a tracer run from the `--baseline` checkout."""
SUSTAINED = ("plain", "lcel-trace+jsonl", "lcel-trace+otel")
NOOP = "do-nothing handler"
"""Not a tracer: an inline callback handler that does nothing, attached with
`with_config`: what LangChain itself charges a call for having any handler at all."""


def chain() -> Any:
    """prompt | FakeListChatModel | StrOutputParser: four runs per call."""
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    model = FakeListChatModel(responses=["Parrots repeat what they hear, and more."])
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


@dataclass
class Setup:
    """One process's tracer: what to call, and how to drain its exporters."""

    runnable: Any
    drain: Callable[[], None]
    exporter: Any = None
    spans: Any = None  # the in-memory OpenTelemetry sink, when there is one


def otel_sink() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(spans))
    return provider, spans


def setup(tracer: str, tmp: Path) -> Setup:
    tracer = tracer.removesuffix(BEFORE)  # the same setup, another checkout's lcel_trace
    provider, spans = otel_sink()

    def drain_provider() -> None:
        provider.force_flush()
        spans.clear()

    if tracer == "plain":
        return Setup(chain(), lambda: None)
    if tracer == NOOP:
        from langchain_core.callbacks import BaseCallbackHandler

        class DoNothing(BaseCallbackHandler):
            run_inline = True  # called in line, as lcel-trace's recorder is

        return Setup(chain().with_config(callbacks=[DoNothing()]), lambda: None)
    if tracer.startswith("lcel-trace"):
        from lcel_trace import trace
        from lcel_trace.exporters import JsonlExporter, OtelExporter

        exporter: Any = None
        if tracer == "lcel-trace+jsonl":
            path = tmp / "per-call.jsonl"
            exporter = JsonlExporter(path)

            def drain() -> None:
                exporter.force_flush(60)
                os.truncate(path, 0)  # keep the disk from growing

        elif tracer == "lcel-trace+otel":
            exporter = OtelExporter(provider)

            def drain() -> None:
                exporter.force_flush(60)  # our queue, then the provider's
                spans.clear()

        else:
            drain = lambda: None  # noqa: E731
        exporters = [exporter] if exporter is not None else []
        return Setup(trace(chain(), exporters=exporters), drain, exporter, spans)
    if tracer == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=provider)
    elif tracer == "openllmetry":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=provider)
    return Setup(chain(), drain_provider, spans=spans)


def timed_block(run: Callable[[], None], drain: Callable[[], None]) -> tuple[int, float]:
    """Wall ns and CPU seconds of `run()` followed by the drain of every exporter."""
    gc.collect()
    wall, cpu = time.perf_counter_ns(), time.process_time()
    run()
    drain()
    return time.perf_counter_ns() - wall, time.process_time() - cpu


def child(tracer: str, calls: int, rounds: int) -> dict[str, Any]:
    """Inside a subprocess: `rounds` timed blocks of `calls` traces per entry point."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        s = setup(tracer, Path(tmp))
        r = s.runnable
        loop = asyncio.new_event_loop()

        def invoke(n: int) -> None:
            for _ in range(n):
                r.invoke(INPUT)

        async def ainvoke(n: int) -> None:
            for _ in range(n):
                await r.ainvoke(INPUT)

        def batch(n: int) -> None:
            for _ in range(max(1, n // BATCH)):
                r.batch([INPUT] * BATCH)

        async def abatch(n: int) -> None:
            for _ in range(max(1, n // BATCH)):
                await r.abatch([INPUT] * BATCH)

        runs: dict[str, Callable[[int], None]] = {
            "invoke": invoke,
            "ainvoke": lambda n: loop.run_until_complete(ainvoke(n)),
            "batch 50": batch,
            "abatch 50": lambda n: loop.run_until_complete(abatch(n)),
        }
        for entry, run in runs.items():
            traces = calls if not entry.endswith(str(BATCH)) else max(1, calls // BATCH) * BATCH
            run(min(calls, 2 * BATCH))  # warm-up
            s.drain()
            walls, cpus = [], []
            for _ in range(rounds):
                wall, cpu = timed_block(lambda: run(calls), s.drain)  # noqa: B023
                walls.append(wall / traces / 1e3)
                cpus.append(cpu / traces * 1e6)
            out[entry] = {"wall_us": walls, "cpu_us": cpus}
        loop.close()
    return out


def sustained_child(tracer: str, seconds: float) -> dict[str, Any]:
    """Inside a subprocess: traced invokes in a tight loop for `seconds`, default queues."""
    from lcel_trace import exporter_stats

    with tempfile.TemporaryDirectory() as tmp:
        s = setup(tracer, Path(tmp))
        r = s.runnable
        for _ in range(50):
            r.invoke(INPUT)
        s.drain()
        path = Path(tmp) / "per-call.jsonl"
        calls, peak_queued, sink_spans = 0, 0, 0
        deadline = time.perf_counter() + seconds
        wall, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() < deadline:
            for _ in range(100):
                r.invoke(INPUT)
            calls += 100
            stats = exporter_stats(s.exporter) if s.exporter is not None else None
            peak_queued = max(peak_queued, stats.queued if stats else 0)
            if calls % 2000 == 0:  # keep the sinks from growing (they are not the test)
                if s.spans is not None:
                    sink_spans += len(s.spans.get_finished_spans())
                    s.spans.clear()
                if path.exists():
                    os.truncate(path, 0)
        loop_s = time.perf_counter() - wall
        if s.exporter is not None:  # the backlog left at the end is part of the work
            s.exporter.force_flush(60)
        total_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        stats = exporter_stats(s.exporter) if s.exporter is not None else None
        if s.spans is not None:
            sink_spans += len(s.spans.get_finished_spans())
    return {
        "calls": calls,
        "loop_s": loop_s,
        "total_s": total_s,
        "cpu_s": cpu_s,
        "dropped_records": stats.dropped_records if stats else 0,
        "dropped_chunks": stats.dropped_chunks if stats else 0,
        "peak_queued": peak_queued,
        "sink_spans": sink_spans if s.spans is not None and s.exporter is not None else None,
    }


def sdk_floor_child(calls: int) -> dict[str, Any]:
    """Inside a subprocess: the OpenTelemetry SDK's own cost for one call's spans. The 4
    spans lcel-trace + OTel emits for one invoke (same names, kinds, parents, times and
    attributes, read back from a real traced call) made again with the SDK's tracer into
    a BatchSpanProcessor, drained: what any exporter building SDK spans pays, per call."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context

    from lcel_trace import trace
    from lcel_trace.exporters import OtelExporter

    provider, spans = otel_sink()
    exporter = OtelExporter(provider)
    trace(chain(), exporters=[exporter]).invoke(INPUT)
    exporter.force_flush(60)
    recorded = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    spans.clear()
    tracer = provider.get_tracer("sdk-floor")

    def one_call() -> None:
        contexts: dict[int, Any] = {}
        for span in recorded:
            parent = span.parent.span_id if span.parent is not None else None
            made = tracer.start_span(
                span.name,
                context=contexts.get(parent, Context()) if parent else Context(),
                kind=span.kind,
                attributes=dict(span.attributes or {}),
                start_time=span.start_time,
            )
            contexts[span.context.span_id] = otel_trace.set_span_in_context(made, Context())
            made.set_status(span.status)
            made.end(end_time=span.end_time)

    for _ in range(200):
        one_call()
    provider.force_flush()
    spans.clear()
    cpus = []
    for _ in range(3):
        gc.collect()
        cpu = time.process_time()
        for _ in range(calls):
            one_call()
        provider.force_flush()
        cpus.append((time.process_time() - cpu) / calls * 1e6)
        spans.clear()
    return {"cpu_us": statistics.median(cpus), "spans": len(recorded)}


_THIS_CHECKOUT = Path(__file__).resolve().parents[2]


def run_child(argv: list[str], baseline: Path | None = None) -> dict[str, Any]:
    """Run this file with `argv` in a new process, importing lcel-trace from the checkout
    `baseline` or else this file's own, and return the JSON it prints last."""
    env = {**os.environ, CHECKOUT_VARIABLE: str((baseline or _THIS_CHECKOUT).resolve())}
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "?")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@dataclass
class PerCallResult:
    table: str
    ratios: dict[str, dict[str, float]]  # tracer -> entry -> wall × plain
    cpu_ratios: dict[str, dict[str, float]]  # tracer -> entry -> CPU × plain
    sustained: str
    drops: dict[str, int]  # tracer -> records dropped in the sustained loop
    missing: list[str]
    sdk_floor_us: float | None = None  # the OTel SDK alone for one invoke's spans, CPU
    plain_invoke_cpu_us: float | None = None


def per_call(
    *,
    quick: bool,
    blocks: int | None = None,
    peers: bool = True,
    baseline: Path | None = None,
) -> PerCallResult:
    """The per-call rows: plain and tracer processes alternated in blocks, paired; with
    `baseline`, lcel-trace's rows again from that checkout."""
    calls, rounds = (100, 2) if quick else (500, 3)
    blocks = blocks or (1 if quick else 4)
    tracers = ["plain", NOOP, *OURS]
    if baseline is not None:
        tracers += [f"{tracer}{BEFORE}" for tracer in OURS]
    missing = []
    for tracer, distribution in PEERS.items():
        if peers and installed(distribution):
            tracers.append(tracer)
        elif peers:
            missing.append(f"{tracer} (pip install {distribution})")
    samples: dict[str, list[dict[str, Any]]] = {t: [] for t in tracers}
    failed: dict[str, str] = {}
    seconds = 5.0 if quick else 20.0
    phases = {
        f"per-call processes ({len(tracers)} tracers x {blocks} blocks)": blocks * len(tracers),
        f"sustained loop ({len(SUSTAINED)} x {seconds:.0f} s)": len(SUSTAINED),
        "OTel SDK floor": 1,
    }
    timed, loop, sdk = phases
    with progress.steps(phases) as shown:
        shown.begin(timed)
        for block in range(blocks):
            order = tracers[block % len(tracers) :] + tracers[: block % len(tracers)]
            for tracer in order:
                if tracer in failed:
                    shown.advance(timed)
                    continue
                try:
                    data = run_child(
                        ["--child", tracer, str(calls), str(rounds)],
                        baseline if tracer.endswith(BEFORE) else None,
                    )
                except RuntimeError as exc:
                    failed[tracer] = str(exc)
                    continue
                finally:
                    shown.advance(timed)
                samples[tracer].append(data)
        shown.begin(loop)
        sustained, drops = sustained_rows(seconds, lambda: shown.advance(loop))
        shown.begin(sdk)
        floor = run_child(["--sdk-floor", str(calls)])["cpu_us"]
        shown.advance(sdk)
    if "plain" in failed:
        raise RuntimeError(f"plain per-call process failed: {failed['plain']}")

    def med(data: dict[str, Any], entry: str, key: str) -> float:
        return statistics.median(data[entry][key])

    lines = [
        "| tracer | entry | wall µs/call | × plain (paired) | CPU µs/call | CPU × plain "
        "| added CPU µs/call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    ratios: dict[str, dict[str, float]] = {}
    cpu_ratios: dict[str, dict[str, float]] = {}
    for entry in ENTRIES:
        for tracer in tracers:
            if tracer in failed:
                lines.append(f"| {tracer} | {entry} | failed: {failed[tracer]} | | | | |")
                continue
            pairs = list(zip(samples[tracer], samples["plain"], strict=True))
            wall = [med(t, entry, "wall_us") / med(p, entry, "wall_us") for t, p in pairs]
            cpu = [med(t, entry, "cpu_us") / med(p, entry, "cpu_us") for t, p in pairs]
            wall_us = statistics.median(med(t, entry, "wall_us") for t, _ in pairs)
            cpu_us = statistics.median(med(t, entry, "cpu_us") for t, _ in pairs)
            plain_cpu = statistics.median(med(p, entry, "cpu_us") for _, p in pairs)
            ratios.setdefault(tracer, {})[entry] = statistics.median(wall)
            cpu_ratios.setdefault(tracer, {})[entry] = statistics.median(cpu)
            lines.append(
                f"| {tracer} | {entry} | {wall_us:.0f} | {_spread(wall)} | {cpu_us:.0f} "
                f"| {_spread(cpu)} | {cpu_us - plain_cpu:+.0f} |"
            )
    plain_invoke = statistics.median(med(p, "invoke", "cpu_us") for p in samples["plain"])
    table = (
        f"#### Per call: prompt | FakeListChatModel | StrOutputParser, 4 runs per call "
        f"({blocks} blocks of one process per tracer; {rounds} timed blocks of {calls} calls "
        f"per entry and process, exporters drained inside the timed block)\n\n" + "\n".join(lines)
    )
    return PerCallResult(table, ratios, cpu_ratios, sustained, drops, missing, floor, plain_invoke)


def sustained_rows(seconds: float, done: Callable[[], None]) -> tuple[str, dict[str, int]]:
    """One process per tracer in SUSTAINED; `done()` after each."""
    lines = [
        "| tracer | calls/s (loop) | calls/s (incl. final drain) | CPU µs/call "
        "| records dropped | chunks dropped | peak queued | OTel spans at the sink / sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    drops: dict[str, int] = {}
    for tracer in SUSTAINED:
        d = run_child(["--sustained", tracer, str(seconds)])
        done()
        drops[tracer] = d["dropped_records"]
        lost = "–"
        if tracer.endswith("otel") and d["sink_spans"] is not None:  # the SDK's own queue
            lost = f"{d['sink_spans']} / {4 * d['calls']}"
        lines.append(
            f"| {tracer} | {d['calls'] / d['loop_s']:.0f} | {d['calls'] / d['total_s']:.0f} "
            f"| {d['cpu_s'] / d['calls'] * 1e6:.0f} | {d['dropped_records']} "
            f"| {d['dropped_chunks']} | {d['peak_queued']} | {lost} |"
        )
    return (
        f"#### Sustained: traced invokes in a tight loop for {seconds:.0f} s, default queues\n\n"
        + "\n".join(lines),
        drops,
    )


def per_call_targets(result: PerCallResult) -> list[str]:
    lines = []

    def verdict(text: str, value: float, limit: float) -> str:
        ok = "holds" if value <= limit else "MISSED"
        return f"{text}: {value:.3f} (target ≤ {limit:.2f}): {ok}"

    cpu = result.cpu_ratios
    for (tracer, entry), limit in TARGETS.items():  # CPU: steadier than wall when shared
        if tracer in cpu:
            text = f"per call: traced {entry} ({tracer}), CPU × plain"
            if f"{tracer}{BEFORE}" in cpu:
                text += f" (before: {cpu[f'{tracer}{BEFORE}'][entry]:.3f})"
            lines.append(verdict(text, cpu[tracer][entry], limit))
    for tracer in ("lcel-trace+jsonl", "lcel-trace+otel"):
        if tracer in result.drops:
            dropped = result.drops[tracer]
            ok = "holds" if dropped == 0 else "MISSED"
            lines.append(f"sustained loop ({tracer}): {dropped} records dropped (target 0): {ok}")
    peers = [p for p in PEERS if p in cpu]
    if peers and "lcel-trace+otel" in cpu:
        for entry in ENTRIES:
            cheaper = min(peers, key=lambda p: cpu[p][entry])
            ours, theirs = cpu["lcel-trace+otel"][entry], cpu[cheaper][entry]
            ok = "holds" if ours <= theirs else "MISSED"
            lines.append(
                f"per call {entry}: lcel-trace+OTel {ours:.3f}× vs the cheaper peer "
                f"({cheaper}) {theirs:.3f}× plain, CPU: {ok} (never slower)"
            )
    if NOOP in cpu:
        floors = ", ".join(f"{entry} {cpu[NOOP][entry]:.3f}×" for entry in ENTRIES)
        lines.append(f"for scale, LangChain's own price for any handler ({NOOP}), CPU: {floors}")
    if result.sdk_floor_us and result.plain_invoke_cpu_us:
        sdk = result.sdk_floor_us / result.plain_invoke_cpu_us
        line = (
            f"for scale, the OpenTelemetry SDK alone making one invoke's 4 spans (same "
            f"attributes, BatchSpanProcessor): {result.sdk_floor_us:.0f} µs CPU = {sdk:.3f}× "
            f"plain invoke"
        )
        if NOOP in cpu:
            line += (
                f"; with the handler's price, no callback tracer emitting SDK spans can go "
                f"below {cpu[NOOP]['invoke'] + sdk:.2f}× on invoke"
            )
        lines.append(line)
    for name in result.missing:
        lines.append(f"peer not installed, not compared: {name}")
    return lines


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.2f}–{max(values):.2f}]"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif len(sys.argv) > 2 and sys.argv[1] == "--sdk-floor":
        print(json.dumps(sdk_floor_child(int(sys.argv[2]))))
    elif len(sys.argv) > 2 and sys.argv[1] == "--sustained":
        print(json.dumps(sustained_child(sys.argv[2], float(sys.argv[3]))))
    else:
        quick = "--quick" in sys.argv
        before = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
        result = per_call(quick=quick, peers=not quick, baseline=Path(before) if before else None)
        print(result.table, result.sustained, *per_call_targets(result), sep="\n\n")
