"""Where a traced `invoke` spends what an exporter adds: parts switched off in turn.

    python tests/benchmarks/exporter_overhead.py [ROUNDS] [CALLS]

One process, the per-call chain (`per_call.chain()`, 4 runs per call), every setup
measured once per round in the same order, CPU µs per call (process time, worker threads
included, exporters drained inside the timed block), medians:

- plain; the do-nothing inline handler (LangChain's price for any handler); `trace()`
  with no exporter;
- `trace()` with a do-nothing exporter (it asks for event records, as JsonlExporter
  does, and writes nothing), then the same with one part switched off at a time: content
  redaction (`TraceRedaction.data` returns the data as it is), the hand-off (records are
  dropped instead of queued), and the hand-off kept but with no thread (records held as
  long as a worker's gathering would hold them, then dropped);
- `trace()` with JsonlExporter.

An ablation, not a supported mode: the switches monkeypatch lcel-trace's internals. The
garbage collector's share is read with `gc.callbacks`: collections per 1,000 calls and
the time spent in them, per call. Plain calls trigger none; records waiting in a queue
outlive the young generations and do.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from per_call import INPUT, NOOP, chain, setup

from lcel_trace import trace
from lcel_trace.export import ExportProcessor
from lcel_trace.exporters import JsonlExporter
from lcel_trace.redact import TraceRedaction
from lcel_trace.span import Record

GATHER_RECORDS = 1024  # what a worker's gathering holds at most (export.GATHER_MAX_RECORDS)


class DoNothingExporter(JsonlExporter):
    """Receives batches with event records, as JsonlExporter does, and writes nothing."""

    def on_batch(self, records: Sequence[Record]) -> None:
        return None


class Switches:
    """Which part is off for the calls being timed."""

    def __init__(self) -> None:
        self.off = ""
        self._held: list[Sequence[Record]] = []
        self._held_count = 0
        redact_data = TraceRedaction.data
        submit = ExportProcessor.submit

        def data(redaction: TraceRedaction, value: Any, *, whole: bool = True) -> Any:
            return value if self.off == "redaction" else redact_data(redaction, value, whole=whole)

        def hand_off(processor: ExportProcessor, batch: Sequence[Record]) -> bool:
            if self.off == "hand-off":
                return True
            if self.off == "thread":
                self._held.append(batch)
                self._held_count += len(batch)
                if self._held_count >= GATHER_RECORDS:
                    self._held, self._held_count = [], 0
                return True
            return submit(processor, batch)

        TraceRedaction.data = data  # type: ignore[method-assign]
        ExportProcessor.submit = hand_off  # type: ignore[method-assign]

    def release(self) -> None:
        self._held, self._held_count = [], 0


class GcClock:
    """Collections and the time spent in them, from `gc.callbacks`."""

    def __init__(self) -> None:
        self.collections = 0
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.seconds += time.perf_counter() - self._started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    tmp = Path(tempfile.mkdtemp())
    switches = Switches()
    nothing = DoNothingExporter(tmp / "nothing.jsonl")
    jsonl = JsonlExporter(tmp / "calls.jsonl")

    def drain_jsonl() -> None:
        jsonl.force_flush(60)
        os.truncate(tmp / "calls.jsonl", 0)

    with_nothing = trace(chain(), exporters=[nothing])
    setups: dict[str, tuple[Any, Callable[[], None], str]] = {
        "plain": (chain(), lambda: None, ""),
        NOOP: (setup(NOOP, tmp).runnable, lambda: None, ""),
        "trace(), no exporter": (trace(chain()), lambda: None, ""),
        "+ do-nothing exporter": (with_nothing, lambda: nothing.force_flush(60), ""),
        "  without content redaction": (with_nothing, lambda: nothing.force_flush(60), "redaction"),
        "  without the hand-off": (with_nothing, lambda: nothing.force_flush(60), "hand-off"),
        "  hand-off held, no thread": (with_nothing, lambda: nothing.force_flush(60), "thread"),
        "+ JsonlExporter": (trace(chain(), exporters=[jsonl]), drain_jsonl, ""),
    }
    for runnable, drain, off in setups.values():
        switches.off = off
        for _ in range(200):
            runnable.invoke(INPUT)
        drain()
        switches.release()
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    collected: dict[str, list[float]] = {name: [] for name in setups}
    in_gc: dict[str, list[float]] = {name: [] for name in setups}
    clock = GcClock()
    for _ in range(rounds):
        for name, (runnable, drain, off) in setups.items():
            switches.off = off
            gc.collect()
            before = (clock.collections, clock.seconds)
            started = time.process_time()
            for _ in range(calls):
                runnable.invoke(INPUT)
            drain()
            cpu[name].append((time.process_time() - started) / calls * 1e6)
            collected[name].append((clock.collections - before[0]) / calls * 1000)
            in_gc[name].append((clock.seconds - before[1]) / calls * 1e6)
            switches.release()
    plain = statistics.median(cpu["plain"])
    print(f"CPU per call, {rounds} rounds of {calls} calls, medians (plain {plain:.0f} µs)\n")
    print("| setup | CPU µs/call | × plain | GC collections / 1,000 calls | µs/call in GC |")
    print("|---|---:|---:|---:|---:|")
    for name in setups:
        us = statistics.median(cpu[name])
        print(
            f"| {name} | {us:.0f} | {us / plain:.3f} | {statistics.median(collected[name]):.0f} "
            f"| {statistics.median(in_gc[name]):.1f} |"
        )


if __name__ == "__main__":
    main()
