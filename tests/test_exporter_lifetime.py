"""A shut-down exporter nobody references is freed: the library keeps no hold on it."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter


def test_a_shut_down_unreferenced_jsonl_exporter_is_freed(tmp_path: Path) -> None:
    for attempt in range(10):
        exporter = JsonlExporter(tmp_path / f"runs{attempt}.jsonl")
        traced = trace(RunnableLambda(lambda x: x), exporters=[exporter])
        traced.invoke(attempt)  # starts the exporter's worker thread
        exporter.shutdown()
        gone = weakref.ref(exporter)
        del exporter, traced
        gc.collect()
        assert gone() is None, f"attempt {attempt}: still referenced by {gc.get_referrers(gone())}"
    assert (tmp_path / "runs9.jsonl").read_text().count('"type":"trace_end"') == 1
