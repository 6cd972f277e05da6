"""Reading commands hold the traces still open, not the file: peak RSS measured on a
small and a five times larger generated file barely moves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.benchmarks.bench import cli_trace_file  # the benchmark's own generator
from tests.benchmarks.cli_data import timed

MB = 1_000_000


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    cli_trace_file(small, traces=800, target_bytes=15 * MB)
    cli_trace_file(large, traces=4000, target_bytes=75 * MB)
    assert large.stat().st_size > 4.5 * small.stat().st_size
    commands = {
        "validate": ["validate"],
        "stats": ["stats"],
        "show": ["show"],
        "export": ["export", "-o", str(tmp_path / "out.parquet")],
    }
    grown = {}
    for name, args in commands.items():
        peaks = []
        for path in (small, large):
            argv = [sys.executable, "-m", "lcel_trace", *args[:1], str(path), *args[1:]]
            _, peak_mib = timed(argv)
            peaks.append(peak_mib)
        grown[name] = peaks
        assert peaks[1] < 250, f"{name}: {peaks[1]:.0f} MiB on a 75 MB file"
    # 60 MB more input may cost a few MiB (allocator slack, stats' numbers per span)
    assert {n: p[1] - p[0] < 25 for n, p in grown.items()} == dict.fromkeys(grown, True), grown
