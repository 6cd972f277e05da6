"""lcel-trace against the other LangChain tracers, each in its own process.

OpenInference's and OpenLLMetry's instrumentors patch LangChain globally, so every
tracer runs in a subprocess of its own that alternates, round by round, a plain
`astream` (instrumentation switched off) with a traced one, and reports paired ratios.
The peers are benchmark-only dependencies:

    pip install openinference-instrumentation-langchain opentelemetry-instrumentation-langchain
    python tests/benchmarks/bench_peers.py [--tokens 1000] [--rounds 10]

Every tracer exports to the same kind of sink: OpenTelemetry spans through a
BatchSpanProcessor into an in-memory exporter (lcel-trace also with JSONL).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACERS = ("lcel-trace+otel", "lcel-trace+jsonl", "openinference", "openllmetry")


def make_chain(tokens: int) -> Any:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    text = " ".join(f"t{i % 10}" for i in range(tokens // 2))
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


def provider() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    return tracer_provider, spans


def run_one(tracer: str, tokens: int, rounds: int) -> dict[str, Any]:
    """Inside the subprocess: alternate plain and traced runs; return raw timings."""
    chain = make_chain(tokens)
    tracer_provider, spans = provider()
    on: Callable[[], None]
    off: Callable[[], None]
    runnable = chain
    if tracer.startswith("lcel-trace"):
        from lcel_trace import trace
        from lcel_trace.exporters import JsonlExporter, OtelExporter

        exporter: Any = (
            OtelExporter(tracer_provider)
            if tracer.endswith("otel")
            else JsonlExporter(Path(tempfile.mkdtemp()) / "bench.jsonl")
        )
        traced = trace(chain, exporters=[exporter])
        state = {"runnable": chain}

        def on() -> None:
            state["runnable"] = traced

        def off() -> None:
            state["runnable"] = chain

        def current() -> Any:
            return state["runnable"]
    else:
        if tracer == "openinference":
            from openinference.instrumentation.langchain import LangChainInstrumentor
        else:
            from opentelemetry.instrumentation.langchain import (  # type: ignore[no-redef]
                LangchainInstrumentor as LangChainInstrumentor,
            )
        instrumentor = LangChainInstrumentor()

        def on() -> None:
            instrumentor.instrument(tracer_provider=tracer_provider)

        def off() -> None:
            instrumentor.uninstrument()

        def current() -> Any:
            return runnable

    async def timed() -> tuple[int, int]:
        start = time.perf_counter_ns()
        first = 0
        async for _ in current().astream({"topic": "parrots"}):
            if not first:
                first = time.perf_counter_ns()
        return time.perf_counter_ns() - start, first - start

    plain: list[tuple[int, int]] = []
    traced_runs: list[tuple[int, int]] = []
    leaked = 0  # spans produced while switched off: un-instrumenting did not work
    for round_number in range(rounds + 1):  # round 0 warms up
        for mode in ("plain", "traced") if round_number % 2 else ("traced", "plain"):
            (on if mode == "traced" else off)()
            gc.collect()
            before = len(spans.get_finished_spans())
            sample = asyncio.run(timed())
            tracer_provider.force_flush()
            if mode == "plain":
                leaked += len(spans.get_finished_spans()) - before
            if round_number:
                (traced_runs if mode == "traced" else plain).append(sample)
        off()
    return {
        "plain": plain,
        "traced": traced_runs,
        "otel_spans": len(spans.get_finished_spans()),
        "leaked": leaked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--child", choices=TRACERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.tokens, args.rounds)))
        return
    print(
        f"prompt | model | parser, {args.tokens:,} tokens, {args.rounds} paired rounds per tracer"
    )
    header = ["tracer", "× plain astream (paired, median [min–max])", "µs/token added"]
    print("| " + " | ".join([*header, "TTFT added ms", "OTel spans"]) + " |")
    print("|---|---:|---:|---:|---:|")
    for tracer in TRACERS:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                tracer,
                "--tokens",
                str(args.tokens),
                "--rounds",
                str(args.rounds),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            reason = result.stderr.strip().splitlines()[-1] if result.stderr else "?"
            print(f"| {tracer} | failed: {reason} | | | |")
            continue
        data = json.loads(result.stdout.strip().splitlines()[-1])
        if data["leaked"]:
            print(
                f"| {tracer} | not comparable: {data['leaked']} spans while un-instrumented "
                "(its uninstrument() leaves it active) | | | |"
            )
            continue
        ratios = [t[0] / p[0] for t, p in zip(data["traced"], data["plain"], strict=True)]
        added_us = statistics.median(
            (t[0] - p[0]) / args.tokens / 1e3
            for t, p in zip(data["traced"], data["plain"], strict=True)
        )
        ttft = statistics.median(
            (t[1] - p[1]) / 1e6 for t, p in zip(data["traced"], data["plain"], strict=True)
        )
        print(
            f"| {tracer} | {statistics.median(ratios):.3f} [{min(ratios):.2f}–{max(ratios):.2f}] "
            f"| {added_us:+.1f} | {ttft:+.2f} | {data['otel_spans']} |"
        )


if __name__ == "__main__":
    main()
