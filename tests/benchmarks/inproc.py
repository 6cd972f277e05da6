"""Quick in-process paired CPU measure of traced invoke (none / JSONL / OTel).

    .venv/bin/python tests/benchmarks/inproc.py [blocks] [calls]

Each round runs plain, none, jsonl, otel blocks in rotating order; each traced block
includes the drain of its exporter. Prints median CPU us per invoke and the added us
(paired per round against the plain block of the same round)."""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from per_call import setup, timed_block

from lcel_trace import flush_all

BLOCKS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
NAMES = ("plain", "lcel-trace", "lcel-trace+jsonl", "lcel-trace+otel")
INPUT = {"topic": "parrots"}


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    setups = {n: setup(n, tmp) for n in NAMES}
    for s in setups.values():
        for _ in range(200):
            s.runnable.invoke(INPUT)
        s.drain()
    flush_all()
    cpu: dict[str, list[float]] = {n: [] for n in NAMES}
    for b in range(BLOCKS):
        order = NAMES[b % 4 :] + NAMES[: b % 4]
        for n in order:
            s = setups[n]

            def run(s=s) -> None:
                for _ in range(CALLS):
                    s.runnable.invoke(INPUT)

            _, c = timed_block(run, s.drain)
            cpu[n].append(c / CALLS * 1e6)
    plain = statistics.median(cpu["plain"])
    print(f"plain {plain:.0f} us")
    for n in NAMES[1:]:
        added = statistics.median(t - p for t, p in zip(cpu[n], cpu["plain"], strict=True))
        mid = statistics.median(cpu[n])
        print(f"{n:18s} {mid:6.0f} us  +{added:5.0f} us  x{mid / plain:.2f}")


if __name__ == "__main__":
    main()
