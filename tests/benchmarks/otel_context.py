"""What making each run OpenTelemetry's current span costs (issue 24), in-process, paired.

    .venv/bin/python tests/benchmarks/otel_context.py [blocks] [calls]

Rows, CPU per call with the exporter drained inside the timed block, each round running
every row once in rotating order; added µs paired per round against `plain` (invoke of
the 4-run chain untraced) or against the row it varies:

- `otel, context off` vs `otel, context on`: traced invoke with `OtelExporter`, run
  registration switched off (`TraceOptions.otel_context=False`) or on (the default).
- `get_current(), no run`: `opentelemetry.context.get_current()` with the runtime context
  wrapped and no run executing (what every other instrumentation pays when no traced run
  is active), against the SDK's own, unwrapped.
- streaming: `astream` of a 1,000-token chat chain with `OtelExporter`, context off / on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from per_call import INPUT, otel_sink, timed_block
from per_call import chain as per_call_chain
from workloads import chat_chain

from lcel_trace import trace
from lcel_trace.exporters import OtelExporter

BLOCKS = int(sys.argv[1]) if len(sys.argv) > 1 else 12
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
GETS = 100_000
STREAMS = 10


def _context_off(traced: Any) -> Any:
    """The same traced runnable with run registration off (the code before issue 24)."""
    traced.options = dataclasses.replace(traced.options, otel_context=False)
    return traced


def _rows(tmp: Path) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    provider, spans = otel_sink()
    exporter = OtelExporter(provider)

    def drain() -> None:
        exporter.force_flush(60)
        spans.clear()

    plain = per_call_chain()
    on = trace(per_call_chain(), exporters=[exporter])
    off = _context_off(trace(per_call_chain(), exporters=[exporter]))
    stream_on = trace(chat_chain(1000), exporters=[exporter])
    stream_off = _context_off(trace(chat_chain(1000), exporters=[exporter]))
    loop = asyncio.new_event_loop()

    def invokes(runnable: Any) -> Callable[[], None]:
        def run() -> None:
            for _ in range(CALLS):
                runnable.invoke(INPUT)

        return run

    def streams(runnable: Any) -> Callable[[], None]:
        async def consume() -> None:
            for _ in range(STREAMS):
                async for _ in runnable.astream({"topic": "parrots"}):
                    pass

        return lambda: loop.run_until_complete(consume())

    from opentelemetry import context as otel_context

    from lcel_trace import otel_context as run_contexts

    wrapped = otel_context._RUNTIME_CONTEXT
    inner = run_contexts._inner()

    def gets(runtime: Any) -> Callable[[], None]:
        def run() -> None:
            get = runtime.get_current
            for _ in range(GETS):
                get()

        return run

    nothing = lambda: None  # noqa: E731
    return {
        "plain": (invokes(plain), nothing),
        "otel, context off": (invokes(off), drain),
        "otel, context on": (invokes(on), drain),
        "get_current(), SDK's own": (gets(inner), nothing),
        "get_current(), wrapped, no run": (gets(wrapped), nothing),
        "astream 1k, context off": (streams(stream_off), drain),
        "astream 1k, context on": (streams(stream_on), drain),
    }


def main() -> None:
    rows = _rows(Path(tempfile.mkdtemp()))
    for run, drain in rows.values():  # warm up
        run()
        drain()
    names = list(rows)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    started = time.monotonic()
    for block in range(BLOCKS):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            run, drain = rows[name]
            _, seconds = timed_block(run, drain)
            cpu[name].append(seconds)
    per = {
        "plain": CALLS,
        "otel, context off": CALLS,
        "otel, context on": CALLS,
        "get_current(), SDK's own": GETS,
        "get_current(), wrapped, no run": GETS,
        "astream 1k, context off": STREAMS,
        "astream 1k, context on": STREAMS,
    }
    us = {n: [c / per[n] * 1e6 for c in cpu[n]] for n in names}

    def paired(a: str, b: str) -> tuple[float, float]:
        added = statistics.median(y - x for x, y in zip(us[a], us[b], strict=True))
        return added, statistics.median(us[b]) / statistics.median(us[a])

    print(f"{BLOCKS} paired rounds in {time.monotonic() - started:.0f} s; CPU per call")
    print(f"{'row':34s} {'median':>10s} {'added':>10s} {'ratio':>7s}  against")
    for name, against in (
        ("plain", None),
        ("otel, context off", "plain"),
        ("otel, context on", "otel, context off"),
        ("get_current(), SDK's own", None),
        ("get_current(), wrapped, no run", "get_current(), SDK's own"),
        ("astream 1k, context off", None),
        ("astream 1k, context on", "astream 1k, context off"),
    ):
        mid = statistics.median(us[name])
        if against is None:
            print(f"{name:34s} {mid:8.2f}us")
            continue
        added, ratio = paired(against, name)
        print(f"{name:34s} {mid:8.2f}us {added:+8.2f}us {ratio:6.3f}x  {against}")


if __name__ == "__main__":
    main()
