"""What tracing costs, against plain LangChain and against the other LangChain tracers.

    bash tests/benchmarks/run.sh               # the full run (sets up .venv with the peers)
    bash tests/benchmarks/run.sh --quick       # a smoke run, small sizes (CI)
    bash tests/benchmarks/run.sh --profile stream "chat 1k"   # where the time goes
    python tests/benchmarks/bench.py --help

In-process part: per workload (prompt | model | parser at 1,000 and 10,000 tokens, a
4-branch RunnableParallel of 500 tokens each, 50 lambdas in sequence, 100 concurrent
calls), every mode runs once per round in rotating order, ratios are paired within a
round (this machine has slow phases), and the table gives medians with min to max. Peak
memory is a separate pass per mode under tracemalloc (Python allocations, all threads),
so it never slows the timed rounds.

Peers: OpenInference and OpenLLMetry instrument LangChain globally, and OpenLLMetry's
`uninstrument()` leaves it active, so each tracer runs in processes of its own that are
instrumented for their whole life, alternated with plain processes of the same script
(the baseline); lcel-trace + OTel is measured the same way for a like-for-like row. Every
tracer exports to the same sink: a BatchSpanProcessor into an in-memory exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from per_call import PerCallResult, installed, per_call, per_call_targets
from workloads import QUICK, WORKLOADS, Workload

PEER_ROUNDS = 2
PEERS = {
    "lcel-trace+otel": "lcel-trace",
    "openinference": "openinference-instrumentation-langchain",
    "openllmetry": "opentelemetry-instrumentation-langchain",
}


@dataclass
class Mode:
    name: str
    baseline: str  # the plain mode its ratios are paired with
    run: Callable[[], Any]  # returns (chunks, ttft_ns); sync or a coroutine
    after: Callable[[], None] = lambda: None  # untimed: drain exporters between rounds
    walls: list[int] = field(default_factory=list)
    ttfts: list[int] = field(default_factory=list)
    peak_bytes: int = 0


async def call(mode: Mode) -> tuple[int, int | None, int]:
    start = time.perf_counter_ns()
    result = mode.run()
    if asyncio.iscoroutine(result):
        result = await result
    wall = time.perf_counter_ns() - start
    chunks, ttft = result
    return chunks, ttft, wall


def otel_sink() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(spans))
    return provider, spans


def build_modes(workload: Workload, jsonl_path: Path) -> list[Mode]:
    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter, OtelExporter

    chain = workload.make()
    provider, memory = otel_sink()
    jsonl = JsonlExporter(jsonl_path)
    otel = OtelExporter(provider)
    bare = trace(workload.make())
    with_jsonl = trace(workload.make(), exporters=[jsonl])
    with_otel = trace(workload.make(), exporters=[otel])

    def drain_jsonl() -> None:
        jsonl.force_flush(60)
        jsonl_path.write_bytes(b"")  # keep the disk from growing between rounds

    def drain_otel() -> None:
        otel.force_flush(60)
        provider.force_flush()
        memory.clear()

    modes = [
        Mode("astream", "astream", workload.astream(chain)),
        Mode("astream_events v2", "astream", workload.astream_events(chain)),
        Mode("trace().astream", "astream", workload.astream(bare)),
        Mode("trace().astream + JSONL", "astream", workload.astream(with_jsonl), drain_jsonl),
        Mode("trace().astream + OTel", "astream", workload.astream(with_otel), drain_otel),
    ]
    sync = "stream" if workload.inputs == 1 else "batch"
    if workload.inputs == 1:
        modes += [
            Mode("stream (sync)", "stream (sync)", workload.stream(chain)),
            Mode("trace().stream (sync)", "stream (sync)", workload.stream(bare)),
        ]
    plain_call = "invoke" if sync == "stream" else "batch"
    modes += [
        Mode(plain_call, plain_call, workload.invoke(chain)),
        Mode(f"trace().{plain_call}", plain_call, workload.invoke(bare)),
    ]
    return modes


async def measure(workload: Workload, rounds: int) -> list[Mode]:
    with tempfile.TemporaryDirectory() as tmp:
        modes = build_modes(workload, Path(tmp) / "bench.jsonl")
        expected = None
        for mode in modes:  # warm-up, and every mode must give the same output size
            chunks, _, _ = await call(mode)
            mode.after()
            if mode.baseline == "astream":
                if expected is not None and chunks != expected:
                    sys.exit(f"{workload.name}: {mode.name} gave {chunks} chunks, not {expected}")
                expected = chunks
        for r in range(rounds):
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                gc.collect()
                _, ttft, wall = await call(mode)
                mode.after()
                mode.walls.append(wall)
                if ttft is not None:
                    mode.ttfts.append(ttft)
        for mode in modes:
            gc.collect()
            tracemalloc.start()
            await call(mode)
            mode.peak_bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            mode.after()
    return modes


def paired(mode: Mode, base: Mode) -> list[float]:
    return [m / b for m, b in zip(mode.walls, base.walls, strict=True)]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.2f}–{max(values):.2f}]"


@dataclass
class Result:
    workload: Workload
    modes: dict[str, Mode]

    def ratio(self, name: str, base: str) -> float:
        return statistics.median(paired(self.modes[name], self.modes[base]))

    def ttft_added_ms(self, name: str) -> float | None:
        mode, plain = self.modes[name], self.modes["astream"]
        if not mode.ttfts or not plain.ttfts:
            return None
        return (statistics.median(mode.ttfts) - statistics.median(plain.ttfts)) / 1e6

    def memory_ratio(self, name: str) -> float:
        return self.modes[name].peak_bytes / self.modes["astream_events v2"].peak_bytes

    def table(self) -> str:
        w = self.workload
        lines = [
            f"| {w.name} | median ms | µs/token | × plain (paired) | × astream_events "
            "| TTFT ms | TTFT added ms | peak MiB | peak × astream_events |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        events = self.modes["astream_events v2"]
        for mode in self.modes.values():
            wall = statistics.median(mode.walls)
            per_token = f"{wall / w.tokens / 1e3:.1f}" if w.tokens else "–"
            is_async = mode.baseline == "astream"
            vs_events = spread(paired(mode, events)) if is_async else "–"
            ttft = f"{statistics.median(mode.ttfts) / 1e6:.2f}" if mode.ttfts else "–"
            added = self.ttft_added_ms(mode.name) if is_async else None
            lines.append(
                f"| {mode.name} (vs {mode.baseline}) | {wall / 1e6:.1f} | {per_token} "
                f"| {spread(paired(mode, self.modes[mode.baseline]))} | {vs_events} | {ttft} "
                f"| {'–' if added is None else f'{added:+.2f}'} "
                f"| {mode.peak_bytes / 2**20:.2f} "
                f"| {self.memory_ratio(mode.name) if is_async else float('nan'):.2f} |"
            )
        return "\n".join(lines).replace("| nan |", "| – |")


# -- peers: each tracer in processes of its own ----------------------------------------------


def child(tracer: str, kind: str, names: list[str], rounds: int) -> dict[str, Any]:
    """Inside a subprocess: `rounds` timed astreams per workload, then one under tracemalloc."""
    provider, memory = otel_sink()
    wrap: Callable[[Any], Any] = lambda runnable: runnable  # noqa: E731
    if kind == "traced":
        if tracer == "lcel-trace+otel":
            from lcel_trace import trace
            from lcel_trace.exporters import OtelExporter

            exporter = OtelExporter(provider)
            wrap = lambda runnable: trace(runnable, exporters=[exporter])  # noqa: E731
        elif tracer == "openinference":
            from openinference.instrumentation.langchain import LangChainInstrumentor

            LangChainInstrumentor().instrument(tracer_provider=provider)
        else:
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor

            LangchainInstrumentor().instrument(tracer_provider=provider)
    out: dict[str, Any] = {}

    async def main() -> None:
        for name in names:
            workload = {**WORKLOADS, **QUICK}[name]
            run = workload.astream(wrap(workload.make()))
            walls, ttfts = [], []
            await run()  # warm-up
            for _ in range(rounds):
                provider.force_flush()
                memory.clear()
                gc.collect()
                start = time.perf_counter_ns()
                _, ttft = await run()
                walls.append(time.perf_counter_ns() - start)
                ttfts.append(ttft or 0)
            gc.collect()
            tracemalloc.start()
            await run()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            provider.force_flush()
            out[name] = {
                "walls": walls,
                "ttfts": ttfts,
                "peak": peak,
                "spans": len(memory.get_finished_spans()),
            }

    asyncio.run(main())
    return out


def run_child(tracer: str, kind: str, names: list[str], rounds: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", tracer, kind, "--rounds", str(rounds), *names]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr else "?")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def peers(names: list[str], rounds: int, blocks: int) -> tuple[str, dict[str, dict[str, float]]]:
    """Alternate plain and traced processes per tracer; ratios of medians per workload."""
    lines = [
        "| tracer | " + " | ".join(f"{n}: × plain astream" for n in names) + " | TTFT added ms "
        "(first workload) | peak × plain (first workload) |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    ratios: dict[str, dict[str, float]] = {}
    for tracer, distribution in PEERS.items():
        if not installed(distribution):
            lines.append(f"| {tracer} | not installed: pip install {distribution} |")
            continue
        samples: dict[str, dict[str, list[Any]]] = {"plain": {}, "traced": {}}
        try:
            for block in range(blocks):
                for kind in ("plain", "traced") if block % 2 == 0 else ("traced", "plain"):
                    for name, data in run_child(tracer, kind, names, rounds).items():
                        entry = samples[kind].setdefault(name, [])
                        entry.append(data)
        except RuntimeError as exc:
            lines.append(f"| {tracer} | failed: {exc} |")
            continue
        cells = []
        ratios[tracer] = {}
        for name in names:
            plain = [w for d in samples["plain"][name] for w in d["walls"]]
            traced = [w for d in samples["traced"][name] for w in d["walls"]]
            per_block = [
                statistics.median(t["walls"]) / statistics.median(p["walls"])
                for t, p in zip(samples["traced"][name], samples["plain"][name], strict=True)
            ]
            ratio = statistics.median(traced) / statistics.median(plain)
            ratios[tracer][name] = ratio
            cells.append(f"{ratio:.3f} [{min(per_block):.2f}–{max(per_block):.2f}]")
        first = names[0]
        ttft_plain = statistics.median(t for d in samples["plain"][first] for t in d["ttfts"])
        ttft_traced = statistics.median(t for d in samples["traced"][first] for t in d["ttfts"])
        peak = statistics.median(d["peak"] for d in samples["traced"][first]) / statistics.median(
            d["peak"] for d in samples["plain"][first]
        )
        lines.append(
            f"| {tracer} | " + " | ".join(cells) + f" | {(ttft_traced - ttft_plain) / 1e6:+.2f} "
            f"| {peak:.2f} |"
        )
    return "\n".join(lines), ratios


# -- targets ----------------------------------------------------------------------------------


def verdict(text: str, value: float, limit: float) -> str:
    return f"{text}: {value:.3f} (target ≤ {limit}): {'holds' if value <= limit else 'MISSED'}"


def targets(results: list[Result], peer_ratios: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    for r in results:
        name = r.workload.name
        jsonl_vs_events = r.ratio("trace().astream + JSONL", "astream_events v2")
        lines.append(
            verdict(f"{name}: traced astream + JSONL × astream_events", jsonl_vs_events, 1.03)
        )
        if "trace().stream (sync)" in r.modes:
            sync = r.ratio("trace().stream (sync)", "stream (sync)")
            lines.append(verdict(f"{name}: traced sync stream × plain stream", sync, 1.2))
        added = r.ttft_added_ms("trace().astream + JSONL")
        if added is not None and r.workload.inputs == 1 and r.workload.tokens:  # streams
            lines.append(verdict(f"{name}: TTFT added with JSONL, ms", added, 0.3))
        if name == "chat 10k":
            lines.append(
                verdict(
                    f"{name}: peak memory × astream_events",
                    r.memory_ratio("trace().astream + JSONL"),
                    1.1,
                )
            )
            lines.append(
                verdict(
                    f"{name}: traced astream + JSONL × plain astream (fast path)",
                    r.ratio("trace().astream + JSONL", "astream"),
                    1.15,
                )
            )
    ours = peer_ratios.get("lcel-trace+otel", {})
    peers = [p for p in peer_ratios if p != "lcel-trace+otel"]
    for name in ours:
        measured = [p for p in peers if name in peer_ratios[p]]
        if not measured:
            continue
        cheaper = min(measured, key=lambda p: peer_ratios[p][name])
        theirs = peer_ratios[cheaper][name]
        lines.append(
            f"{name}: lcel-trace+OTel {ours[name]:.3f}× vs the cheaper peer ({cheaper}) "
            f"{theirs:.3f}× plain astream: {'holds' if ours[name] <= theirs else 'MISSED'} "
            f"(never slower)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workloads", nargs="*", help=f"default: all of {list(WORKLOADS)}")
    parser.add_argument("--rounds", type=int, help="timed rounds per workload (default by size)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds, no peers")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer processes")
    parser.add_argument("--blocks", type=int, default=2, help="plain/traced process pairs per peer")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument(
        "--profile",
        choices=("astream", "stream"),
        help="instead of timing: cProfile the traced call of the (first) named workload",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="only the lcel-trace command rows (start-up; show, stats... on 2,000 traces)",
    )
    parser.add_argument(
        "--per-call",
        action="store_true",
        help="only the per-call rows (invoke, ainvoke, batch/abatch of 50; sustained loop)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="with --per-call: also lcel-trace's rows imported from the checkout DIR "
        "(rows marked '(before)'), paired in the same blocks",
    )
    parser.add_argument(
        "--cli-bytes",
        type=float,
        metavar="N",
        help="with --cli: also the data rows (validate/stats/show/export/sql/html --trace, "
        "peak RSS and s/GB beside DuckDB's read_json) on a generated file of N bytes (1e9)",
    )
    parser.add_argument("--child", nargs=2, metavar=("TRACER", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.workloads, args.rounds or 3)))
        return
    catalogue = QUICK if args.quick else WORKLOADS
    names = args.workloads or list(catalogue)
    if args.profile:
        profile({**WORKLOADS, **QUICK}[names[0]], args.profile)
        return
    header = (
        f"python {platform.python_version()} · langchain-core {metadata.version('langchain-core')}"
        f" · lcel-trace {metadata.version('lcel-trace')} · {os.cpu_count()} CPUs"
    )
    print(header, flush=True)
    sections, results = [header], []
    if args.cli:
        section = cli_section(args.rounds or 3)
        print(f"\n{section}", flush=True)
        if args.cli_bytes:
            from cli_data import large_file_section

            data_section = large_file_section(
                int(args.cli_bytes), cli_trace_file, rounds=args.rounds or 1
            )
            print(f"\n{data_section}", flush=True)
            section += f"\n\n{data_section}"
        if args.markdown:
            args.markdown.write_text(f"{header}\n\n{section}\n", encoding="utf-8")
        return
    if args.per_call:
        result = per_call(
            quick=args.quick,
            blocks=args.blocks if args.blocks != 2 else None,
            peers=not args.no_peers,
            baseline=args.baseline,
        )
        sections += per_call_sections(result)
        if args.markdown:
            args.markdown.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
        return
    for name in names:
        workload = {**WORKLOADS, **QUICK}[name]
        rounds = args.rounds or (2 if args.quick else default_rounds(workload))
        modes = asyncio.run(measure(workload, rounds))
        result = Result(workload, {m.name: m for m in modes})
        results.append(result)
        section = f"### {name} ({rounds} rounds)\n\n{result.table()}"
        print(f"\n{section}", flush=True)
        sections.append(section)
    peer_ratios: dict[str, dict[str, float]] = {}
    if not (args.quick or args.no_peers):
        table, peer_ratios = peers(names, rounds=PEER_ROUNDS, blocks=args.blocks)
        section = (
            f"### Peers: each in its own processes ({args.blocks} plain/traced pairs × "
            f"{PEER_ROUNDS} rounds)"
            f"\n\n{table}"
        )
        print(f"\n{section}", flush=True)
        sections.append(section)
    per_call_result = None
    if not args.workloads:  # the per-call rows run with the whole suite
        per_call_result = per_call(quick=args.quick, peers=not (args.quick or args.no_peers))
        for section in (per_call_result.table, per_call_result.sustained):
            print(f"\n{section}", flush=True)
            sections.append(section)
    if not args.quick:
        section = cli_section(3)
        print(f"\n{section}", flush=True)
        sections.append(section)
    lines = targets(results, peer_ratios)
    if per_call_result is not None:
        lines += per_call_targets(per_call_result)
    verdicts = "### Targets\n\n" + "\n".join(f"- {v}" for v in lines)
    print(f"\n{verdicts}")
    sections.append(verdicts)
    if args.markdown:
        args.markdown.write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def per_call_sections(result: PerCallResult) -> list[str]:
    """Print and return the per-call tables and their targets (`--per-call`)."""
    verdicts = "### Targets (per call)\n\n" + "\n".join(f"- {v}" for v in per_call_targets(result))
    out = [result.table, result.sustained, verdicts]
    for section in out:
        print(f"\n{section}", flush=True)
    return out


def profile(workload: Workload, entry: str) -> None:
    """cProfile one traced call (JSONL exporter attached): where the time goes, by function."""
    import cProfile
    import pstats

    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    with tempfile.TemporaryDirectory() as tmp, JsonlExporter(Path(tmp) / "p.jsonl") as jsonl:
        traced = trace(workload.make(), exporters=[jsonl])
        if entry == "stream":
            run_sync = workload.stream(traced)
            run_sync()
            profiler = cProfile.Profile()
            profiler.runcall(run_sync)
        else:
            run = workload.astream(traced)
            asyncio.run(run())
            profiler = cProfile.Profile()
            profiler.runcall(asyncio.run, run())
    stats = pstats.Stats(profiler).sort_stats("tottime")
    stats.print_stats(25)
    stats.sort_stats("cumtime").print_stats("lcel_trace", 15)


def default_rounds(workload: Workload) -> int:
    if workload.tokens >= 10_000:
        return 3
    return 6 if workload.tokens else 12


# -- the lcel-trace command: start-up and whole-file commands ------------------------------

CLI_TRACES = 2_000
CLI_TARGET_BYTES = 36 * 1024 * 1024


def cli_trace_file(
    path: Path, traces: int = CLI_TRACES, target_bytes: int = CLI_TARGET_BYTES
) -> int:
    """A JSONL file of `traces` quickstart-shaped traces (chain, prompt, chat model,
    parser; inputs, outputs and 100 recorded root chunks each), about 36 MB for 2,000;
    returns its size in bytes."""
    from lcel_trace.records import encode_line
    from lcel_trace.span import Span, TraceEnd, TraceEvent, TraceStart, Usage

    def one(n: int, text: str) -> bytes:
        trace_id = f"{n + 1:032x}"
        ids = [f"{n:08x}-0000-4000-8000-{k:012x}" for k in range(4)]
        t0 = 1_800_000_000_000_000_000 + n * 1_000_000_000
        chunks = [[t0 + 1_000_000 + k * 10_000, f"tok{k} "] for k in range(100)]
        stream = TraceEvent(
            trace_id,
            "stream",
            "on_chain_stream",
            ids[0],
            (),
            "RunnableSequence",
            "chain",
            (),
            {},
            {"chunks": chunks},
            t0 + 1_000_000,
        )
        spans = [
            Span(
                trace_id,
                ids[1],
                ids[0],
                "ChatPromptTemplate",
                "prompt",
                t0 + 10,
                t0 + 500,
                "ok",
                inputs={"topic": text},
                outputs=text,
            ),
            Span(
                trace_id,
                ids[2],
                ids[0],
                "ChatOpenAI",
                "chat_model",
                t0 + 600,
                t0 + 9_000_000,
                "ok",
                inputs=text,
                outputs=text,
                chunk_count=100,
                first_chunk_ns=t0 + 900_000,
                first_token_ns=t0 + 1_000_000,
                usage=Usage(12, 100, 112),
                model="fake-gpt",
            ),
            Span(
                trace_id,
                ids[3],
                ids[0],
                "StrOutputParser",
                "parser",
                t0 + 700,
                t0 + 9_100_000,
                "ok",
                inputs=text,
                outputs=text,
                chunk_count=100,
                first_chunk_ns=t0 + 1_000_000,
                first_token_ns=t0 + 1_000_000,
            ),
            Span(
                trace_id,
                ids[0],
                None,
                "RunnableSequence",
                "chain",
                t0,
                t0 + 9_200_000,
                "ok",
                inputs={"topic": text},
                outputs=text,
                chunk_count=100,
                first_chunk_ns=t0 + 1_000_000,
                first_token_ns=t0 + 1_000_000,
            ),
        ]
        records = [
            TraceStart(trace_id, "joke", t0, ids[0]),
            stream,
            *spans,
            TraceEnd(trace_id, "ok", t0 + 9_300_000, 4, 1),
        ]
        return b"".join(encode_line(r) for r in records)

    base = len(one(0, ""))
    per_char = len(one(0, "x" * 1000)) - base
    size = max(0, target_bytes // traces - base) * 1000 // max(per_char, 1)
    text = ("parrots repeat what they hear " * (size // 30 + 1))[:size]
    with path.open("wb") as out:
        for n in range(traces):
            out.write(one(n, text))
    return path.stat().st_size


_CLI_LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call([sys.executable, "-m", "lcel_trace", *sys.argv[1:]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
elapsed = time.perf_counter() - started
print(code, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def cli_run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `python -m lcel_trace ...` process.

    A small launcher process starts it and reads `getrusage(RUSAGE_CHILDREN)`: a child
    forked from this process would count this process's own memory as its peak."""
    done = subprocess.run(
        [sys.executable, "-c", _CLI_LAUNCHER, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    code, elapsed, max_rss_kib = done.stdout.split()
    if code != "0":
        raise RuntimeError(f"lcel-trace {' '.join(args)} exited {code}")
    return float(elapsed), int(max_rss_kib) / 1024  # ru_maxrss is in KiB on Linux


def cli_section(rounds: int) -> str:
    """The CLI rows: `--help` start-up, then show/stats/validate/html on a 2,000-trace file."""

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.jsonl"
        size = cli_trace_file(path)
        commands = {
            "--help": ["--help"],
            "--version": ["--version"],
            "show": ["show", str(path)],
            "show --json": ["show", "--json", str(path)],
            "stats": ["stats", str(path)],
            "validate": ["validate", str(path)],
            "html": ["html", str(path), "-o", str(Path(tmp) / "page.html")],
        }
        rows = [
            "| command | median s | min–max s | peak RSS MiB |",
            "|---|---:|---:|---:|",
        ]
        for label, args in commands.items():
            runs = [cli_run(args) for _ in range(rounds)]
            times = [t for t, _ in runs]
            rows.append(
                f"| `lcel-trace {label}` | {statistics.median(times):.2f} | "
                f"{min(times):.2f}–{max(times):.2f} | {max(r for _, r in runs):.0f} |"
            )
    return (
        f"### The lcel-trace command ({rounds} runs each; file: {CLI_TRACES:,} traces, "
        f"{size / 1e6:.1f} MB)\n\n" + "\n".join(rows)
    )


if __name__ == "__main__":
    main()
