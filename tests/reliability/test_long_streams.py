"""A long stream through trace() + JSONL keeps memory flat: peak RSS must not grow with
the number of chunks (each size runs in its own process, see memory_probe.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lcel_trace.replay import read_traces

PROBE = Path(__file__).with_name("memory_probe.py")


def peak_rss_kib(chunks: int, path: Path) -> int:
    result = subprocess.run(
        [sys.executable, str(PROBE), str(chunks), str(path), "root"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_stays_flat_from_ten_thousand_to_a_million_chunks(tmp_path: Path) -> None:
    peaks = {n: peak_rss_kib(n, tmp_path / f"{n}.jsonl") for n in (10_000, 100_000, 1_000_000)}
    growth_mib = (peaks[1_000_000] - peaks[10_000]) / 1024
    # Keeping every chunk would cost well over 100 MiB at a million chunks; the bounded
    # hand-off queue (100,000 records and chunks) is what may be held at the peak.
    assert growth_mib < 48, peaks
    for n in peaks:
        (written,) = read_traces(tmp_path / f"{n}.jsonl")
        assert written.status == "ok"
        assert written.root.chunk_count == n


def test_a_ten_megabyte_input_is_cut_visibly_in_lines_and_attributes(tmp_path: Path) -> None:
    from langchain_core.runnables import RunnableLambda
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter, OtelExporter

    huge = "x" * 10_000_000
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    path = tmp_path / "huge.jsonl"
    with JsonlExporter(path) as jsonl, OtelExporter(provider) as otel:
        assert trace(RunnableLambda(len), exporters=[jsonl, otel]).invoke(huge) == 10_000_000
    (written,) = read_traces(path)
    assert written.root.inputs == "x" * 1_000_000 + "…[truncated 9000000 chars]"
    assert written.root.outputs == 10_000_000
    assert max(len(line) for line in path.read_bytes().splitlines()) < 2_100_000
    (span,) = memory.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["lcel.input"] == "x" * 4096 + "…[truncated 9995904 chars]"
