"""What tracing costs: traced vs plain streaming of prompt | chat model | parser.

One process, interleaved rounds (every mode once per round, in rotating order), and
ratios paired within a round, because this machine has slow phases. Prints a table
per stream length and, with --markdown, writes it as Markdown.

    python tests/benchmarks/bench_core.py            # 1,000 and 10,000 tokens
    python tests/benchmarks/bench_core.py --quick    # a smoke run for CI
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from lcel_trace import Span, capture, trace
from lcel_trace.export import processor_for
from lcel_trace.exporters import JsonlExporter

INPUT = {"topic": "parrots"}


def make_chain(tokens: int) -> Runnable[Any, str]:
    text = " ".join(f"t{i % 10}" for i in range(tokens // 2))  # words and spaces: `tokens` chunks
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


@dataclass
class Sample:
    wall_ns: int
    ttft_ns: int | None
    chunks: int


@dataclass
class Mode:
    name: str
    baseline: str  # the plain mode its ratio is paired with
    run: Callable[[], Coroutine[Any, Any, Sample]]
    samples: list[Sample] = field(default_factory=list)


async def time_astream(stream_factory: Callable[[], Any]) -> Sample:
    start = time.perf_counter_ns()
    first = None
    count = 0
    async for _ in stream_factory():
        if first is None:
            first = time.perf_counter_ns()
        count += 1
    return Sample(time.perf_counter_ns() - start, None if first is None else first - start, count)


def time_sync(call: Callable[[], Any], streaming: bool) -> Sample:
    start = time.perf_counter_ns()
    first = None
    count = 0
    if streaming:
        for _ in call():
            if first is None:
                first = time.perf_counter_ns()
            count += 1
    else:
        call()
        count = 1
    return Sample(time.perf_counter_ns() - start, None if first is None else first - start, count)


class StuckExporter:
    """Blocks on its first batch until released: the queue fills, then batches drop."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[Span]) -> None:
        self.release.wait()

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return self.release.is_set()

    def shutdown(self) -> None:
        self.release.set()


def build_modes(tokens: int, jsonl: JsonlExporter, stuck: StuckExporter) -> list[Mode]:
    chain = make_chain(tokens)
    bare = trace(make_chain(tokens))
    with_jsonl = trace(make_chain(tokens), exporters=[jsonl])
    with_stuck = trace(make_chain(tokens), exporters=[stuck])

    async def astream() -> Sample:
        return await time_astream(lambda: chain.astream(INPUT))

    async def astream_events() -> Sample:
        async def events() -> Any:
            async for event in chain.astream_events(INPUT, version="v2"):
                if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                    yield event

        return await time_astream(events)

    async def traced() -> Sample:
        return await time_astream(lambda: bare.astream(INPUT))

    async def traced_capture() -> Sample:
        with capture():
            return await time_astream(lambda: bare.astream(INPUT))

    async def traced_jsonl() -> Sample:
        sample = await time_astream(lambda: with_jsonl.astream(INPUT))
        jsonl.force_flush(30)  # outside the timed region
        return sample

    async def traced_stuck() -> Sample:
        return await time_astream(lambda: with_stuck.astream(INPUT))

    async def stream() -> Sample:
        return time_sync(lambda: chain.stream(INPUT), streaming=True)

    async def traced_stream() -> Sample:
        return time_sync(lambda: bare.stream(INPUT), streaming=True)

    async def invoke() -> Sample:
        return time_sync(lambda: chain.invoke(INPUT), streaming=False)

    async def traced_invoke() -> Sample:
        return time_sync(lambda: bare.invoke(INPUT), streaming=False)

    return [
        Mode("astream", "astream", astream),
        Mode("astream_events v2", "astream", astream_events),
        Mode("trace().astream", "astream", traced),
        Mode("trace().astream + capture()", "astream", traced_capture),
        Mode("trace().astream + JSONL", "astream", traced_jsonl),
        Mode("trace().astream + stuck exporter", "astream", traced_stuck),
        Mode("stream (sync)", "stream (sync)", stream),
        Mode("trace().stream (sync)", "stream (sync)", traced_stream),
        Mode("invoke", "invoke", invoke),
        Mode("trace().invoke", "invoke", traced_invoke),
    ]


async def measure(tokens: int, rounds: int) -> list[Mode]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        stuck = StuckExporter()
        with JsonlExporter(path) as jsonl:
            modes = build_modes(tokens, jsonl, stuck)
            reference = {m.name: (await m.run()).chunks for m in modes}  # warm-up round
            for m in modes:
                if (
                    m.name not in ("invoke", "trace().invoke")
                    and reference[m.name] != reference["astream"]
                ):
                    sys.exit(
                        f"{m.name} gave {reference[m.name]} chunks, astream {reference['astream']}"
                    )
            for r in range(rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for mode in order:
                    gc.collect()
                    mode.samples.append(await mode.run())
                path.write_bytes(b"")  # keep the disk from growing between rounds
        dropped = processor_for(stuck).dropped_records
        stuck.release.set()
    print(f"stuck exporter at {tokens:,} tokens: {dropped:,} records dropped (counted)")
    return modes


def paired(mode: Mode, base: Mode) -> list[float]:
    return [m.wall_ns / b.wall_ns for m, b in zip(mode.samples, base.samples, strict=True)]


def report(tokens: int, modes: list[Mode]) -> tuple[str, list[str]]:
    by_name = {m.name: m for m in modes}
    events = by_name["astream_events v2"]
    lines = [
        f"| mode ({tokens:,} tokens) | median ms | µs/token | × plain (paired, median [min–max]) "
        "| × astream_events | TTFT ms | TTFT added ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base_ttft = statistics.median(s.ttft_ns or 0 for s in by_name["astream"].samples)
    for m in modes:
        wall = statistics.median(s.wall_ns for s in m.samples)
        ratios = paired(m, by_name[m.baseline])
        vs_plain = f"{statistics.median(ratios):.3f} [{min(ratios):.2f}–{max(ratios):.2f}]"
        vs_events = "–"
        if m.baseline == "astream":
            ev = paired(m, events)
            vs_events = f"{statistics.median(ev):.3f} [{min(ev):.2f}–{max(ev):.2f}]"
        ttfts = [s.ttft_ns for s in m.samples if s.ttft_ns is not None]
        ttft = f"{statistics.median(ttfts) / 1e6:.2f}" if ttfts else "–"
        added = (
            f"{(statistics.median(ttfts) - base_ttft) / 1e6:+.2f}"
            if ttfts and m.baseline == "astream"
            else "–"
        )
        lines.append(
            f"| {m.name} (vs {m.baseline}) | {wall / 1e6:.1f} | {wall / tokens / 1e3:.1f} "
            f"| {vs_plain} | {vs_events} | {ttft} | {added} |"
        )
    jsonl_vs_events = statistics.median(paired(by_name["trace().astream + JSONL"], events))
    sync_ratio = statistics.median(
        paired(by_name["trace().stream (sync)"], by_name["stream (sync)"])
    )
    ttft_added = (
        statistics.median(s.ttft_ns or 0 for s in by_name["trace().astream + JSONL"].samples)
        - base_ttft
    ) / 1e6
    verdicts = [
        f"traced astream + JSONL vs astream_events: {jsonl_vs_events:.3f}× (target ≤ 1.03): "
        f"{'holds' if jsonl_vs_events <= 1.03 else 'MISSED'}",
        f"traced sync stream vs plain stream: {sync_ratio:.3f}× (target ≤ 1.2): "
        f"{'holds' if sync_ratio <= 1.2 else 'MISSED'}",
        f"TTFT added by tracing with JSONL: {ttft_added:+.3f} ms (target ≤ 0.3): "
        f"{'holds' if ttft_added <= 0.3 else 'MISSED'}",
    ]
    return "\n".join(lines), verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=None, help="default: 15 at 1k, 5 at 10k")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args()
    sizes = [200] if args.quick else args.tokens
    print(
        f"python {platform.python_version()} · langchain-core {metadata.version('langchain-core')}"
        f" · lcel-trace {metadata.version('lcel-trace')} · {os.cpu_count()} CPUs"
    )
    sections = []
    for tokens in sizes:
        rounds = 2 if args.quick else args.rounds or (15 if tokens <= 2_000 else 5)
        modes = asyncio.run(measure(tokens, rounds))
        table, verdicts = report(tokens, modes)
        section = f"{table}\n\n" + "\n".join(f"- {v}" for v in verdicts)
        print(f"\n{tokens:,} tokens, {rounds} rounds\n{section}")
        sections.append(section)
    if args.markdown:
        args.markdown.write_text("\n\n".join(sections) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
