"""A writer killed with SIGKILL mid-run leaves only whole lines (at most one partial last
line), and every trace whose end was handed off before the kill is complete on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from lcel_trace.replay import TruncatedTraceWarning, read_traces

WRITER = textwrap.dedent(
    """
    import itertools, sys
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    words = " ".join(f"word{i}" for i in range(400))
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=words)]))
    chain = ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()
    traced = trace(chain, exporters=[JsonlExporter(sys.argv[1], record_chunks="all")])
    print("ready", flush=True)
    for i in itertools.count():
        for _ in traced.stream({"q": "x" * 2000}):
            pass
    """
)


def has_trace_end(path: Path, scanned: list[int]) -> bool:
    """Whether a whole `trace_end` line was written (reading only what is new)."""
    with path.open("rb") as file:
        file.seek(max(0, scanned[0] - 32))  # a marker may straddle the last read
        data = file.read()
    scanned[0] += len(data) - min(32, scanned[0])
    return b'"trace_end"' in data


def kill_writer_mid_run(path: Path, min_bytes: int) -> None:
    """SIGKILL the writer once `path` holds `min_bytes` and at least one finished trace
    (on a busy machine the first trace may still be streaming at any byte count)."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            scanned = [0]
            ended = False
            while not path.exists() or path.stat().st_size < min_bytes or not ended:
                assert child.poll() is None, "writer died on its own"
                ended = ended or (path.exists() and has_trace_end(path, scanned))
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()


@pytest.mark.slow
@pytest.mark.parametrize("min_bytes", [200_000, 1_000_000])
def test_sigkill_leaves_whole_lines_and_complete_finished_traces(
    tmp_path: Path, min_bytes: int
) -> None:
    path = tmp_path / "crash.jsonl"
    kill_writer_mid_run(path, min_bytes)

    raw = path.read_bytes().split(b"\n")
    whole, last = raw[:-1], raw[-1]
    for line in whole:
        json.loads(line)  # every newline-terminated line is whole JSON
    if last:
        with pytest.raises(json.JSONDecodeError):
            json.loads(last)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traces = read_traces(path)
    assert all(issubclass(w.category, TruncatedTraceWarning) for w in caught)
    assert len(caught) == (1 if last else 0)

    ended = [t for t in traces if t.status != "incomplete"]
    assert ended, "no trace finished before the kill"
    ends = {rec["trace_id"]: rec for rec in map(json.loads, whole) if rec["type"] == "trace_end"}
    for t in ended:
        assert len(t.spans) == ends[t.trace_id]["span_count"] == 4
        assert t.root.outputs == " ".join(f"word{i}" for i in range(400))
        assert all(s.status == "ok" for s in t.spans)
