"""Many traced calls at once: no span in the wrong trace, every span ended, one shared
JSONL file with no corrupted line."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from lcel_trace import Trace, capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import read_traces

ANSWER = "one two three"


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=ANSWER)]))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


def assert_well_formed(traces: list[Trace], expected: int, spans_each: int) -> None:
    assert len(traces) == expected
    assert len({t.trace_id for t in traces}) == expected
    for t in traces:
        ids = {s.span_id for s in t.spans}
        assert len(t.spans) == spans_each
        assert {s.trace_id for s in t.spans} == {t.trace_id}
        assert all(s.parent_id in ids for s in t.spans if s is not t.root)
        assert all(s.status == "ok" and s.end_ns >= s.start_ns for s in t.spans)


@pytest.mark.slow
def test_a_thousand_concurrent_ainvokes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"

    async def run() -> list[str]:
        with JsonlExporter(path) as exporter:
            traced = trace(chain(), exporters=[exporter])
            return await asyncio.gather(*(traced.ainvoke({"q": str(i)}) for i in range(1000)))

    with capture() as cap:
        outputs = asyncio.run(run())
    assert outputs == [ANSWER] * 1000
    assert_well_formed(cap.traces, 1000, 4)
    written = read_traces(path)
    assert_well_formed(written, 1000, 4)
    by_id = {t.trace_id: t for t in cap.traces}
    assert all(by_id[t.trace_id].spans == t.spans for t in written)


def test_batch_respects_max_concurrency_and_gives_one_trace_per_input() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow_step(value: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.01)
        with lock:
            running -= 1
        return value

    traced = trace(RunnableLambda(slow_step) | chain())
    with capture() as cap:
        outputs = traced.batch([{"q": str(i)} for i in range(24)], {"max_concurrency": 3})
    assert outputs == [ANSWER] * 24
    assert 1 < peak <= 3
    assert_well_formed(cap.traces, 24, 5)


def test_eight_threads_invoking_and_streaming_at_once(tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    results: list[object] = []
    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(chain(), exporters=[exporter])
        barrier = threading.Barrier(8)

        def work(n: int) -> None:
            barrier.wait()
            for _ in range(10):
                if n % 2:
                    results.append(traced.invoke({"q": str(n)}))
                else:
                    results.append("".join(traced.stream({"q": str(n)})))

        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(work, n))
            for n in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [ANSWER] * 80
    assert_well_formed(cap.traces, 80, 4)
    assert_well_formed(read_traces(path), 80, 4)


def test_recorded_outputs_are_the_values_at_return_not_later_mutations(tmp_path: Path) -> None:
    path = tmp_path / "snapshots.jsonl"

    def answer(n: int) -> dict[str, object]:
        return {"n": n, "items": [n], "tags": {"fresh"}, "meta": {"state": "returned"}}

    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(RunnableLambda(answer), exporters=[exporter])
        for n in range(300):
            out = traced.invoke(n)
            out["n"] = -1
            out["items"].append("later")  # type: ignore[attr-defined]
            out["tags"].add("later")  # type: ignore[attr-defined]
            out["meta"]["state"] = "mutated"  # type: ignore[index]
    expected = [answer(n) for n in range(300)]
    assert [t.root.outputs for t in cap.traces] == expected
    written = [t.root.outputs for t in read_traces(path)]
    assert [{**o, "tags": set(o["tags"])} for o in written] == expected


def test_a_step_changing_its_input_in_place_has_its_output_recorded_as_returned() -> None:
    def grow(state: dict[str, object]) -> dict[str, object]:
        state["added"] = True
        return state

    with capture() as cap:
        out = trace(RunnableLambda(lambda x: {"x": x}) | RunnableLambda(grow)).invoke(1)
    assert out == {"x": 1, "added": True}
    (t,) = cap.traces
    assert t.span("grow").outputs == t.root.outputs == {"x": 1, "added": True}
