"""structlog: span logs from the exporter, and log lines correlated with their run."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from langchain_core.documents import Document
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from structlog.testing import capture_logs

from lcel_trace import capture, trace
from lcel_trace.exporters import StructlogExporter
from lcel_trace.structlog import TraceContextFilter, add_trace_context

log = structlog.get_logger("app")


def chain() -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a b c")] * 100))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


class JsonLines:
    """A structlog logger factory writing JSON lines we can parse back."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self.lock:
            self.buffer.write(message + "\n")

    info = warning = error = debug = msg

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


def test_exporter_logs_one_event_per_span_and_one_per_trace_parsed_back() -> None:
    sink = JsonLines()
    logger = structlog.wrap_logger(
        sink, processors=[structlog.processors.JSONRenderer()], wrapper_class=structlog.BoundLogger
    )
    exporter = StructlogExporter(logger)
    with capture() as cap:
        trace(chain(), exporters=[exporter]).invoke({"q": "hi"})
    assert exporter.force_flush(5)
    records = sink.records()
    spans = [r for r in records if r["event"] == "span"]
    (summary,) = [r for r in records if r["event"] == "trace"]
    (recorded,) = cap.traces
    assert {r["span_id"] for r in spans} == {s.span_id for s in recorded.spans}
    assert all(r["trace_id"] == recorded.trace_id for r in records)
    root = next(r for r in spans if r["span_id"] == recorded.root.span_id)
    assert root["name"] == "RunnableSequence"
    assert root["status"] == "ok"
    assert json.loads(root["outputs"]) == "a b c"
    assert summary["status"] == "ok"
    assert summary["span_count"] == 4


def test_exporter_reports_errors_and_leaves_out_content_when_asked() -> None:
    def boom(_: object) -> None:
        raise KeyError("missing")

    with capture_logs() as logs:
        exporter = StructlogExporter(capture_content=False)
        with pytest.raises(KeyError):
            trace(RunnableLambda(boom), exporters=[exporter]).invoke("secret words")
        assert exporter.force_flush(5)
    (span,) = [entry for entry in logs if entry["event"] == "span"]
    assert span["status"] == "error"
    assert span["error_type"] == "KeyError"
    assert "inputs" not in span
    assert "secret words" not in repr(logs)


def test_bad_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        StructlogExporter(level="loud")


class Shelf(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        log.info("retrieving", query=query)
        return [Document(page_content=query)]


@tool
def lookup(query: str) -> str:
    """Look something up."""
    log.info("tool running")
    return query


async def test_log_lines_inside_runs_carry_their_own_trace_and_span_ids() -> None:
    def sync_step(x: str) -> str:
        log.info("sync step")
        return x

    async def async_step(x: str) -> str:
        await asyncio.sleep(0)
        log.info("async step")
        return x

    def async_step_in_threads(x: str) -> str:  # what `batch` runs in its worker threads
        log.info("async step")
        return x

    pipeline = (
        RunnableLambda(sync_step)
        | RunnableLambda(async_step_in_threads, afunc=async_step, name="async_step")
        | lookup
        | RunnableLambda(lambda q: Shelf().invoke(q), name="<lambda>")
    )
    traced = trace(pipeline)
    with capture() as cap, capture_logs(processors=[add_trace_context]) as logs:
        await asyncio.gather(*(traced.ainvoke(f"q{i}") for i in range(20)))
        await asyncio.to_thread(traced.batch, [f"b{i}" for i in range(6)])
    assert len(cap.traces) == 26
    spans = {s.span_id: s for t in cap.traces for s in t.spans}
    by_event: dict[str, int] = {}
    for entry in logs:
        by_event[entry["event"]] = by_event.get(entry["event"], 0) + 1
        span = spans[entry["span_id"]]
        assert span.trace_id == entry["trace_id"]
        expected = {
            "sync step": "sync_step",
            "async step": "async_step",
            "tool running": "lookup",
            # LangChain runs a retriever's body in its caller's context, so its lines
            # carry the span of the step that called it (here, the lambda).
            "retrieving": "<lambda>",
        }[entry["event"]]
        assert span.name == expected
    assert by_event == {"sync step": 26, "async step": 26, "tool running": 26, "retrieving": 26}


def test_outside_a_traced_run_nothing_is_added() -> None:
    with capture_logs(processors=[add_trace_context]) as logs:
        log.info("plain")
    assert logs == [{"event": "plain", "log_level": "info"}]


@pytest.fixture
def stdlib_records() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger("app.stdlib")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)


def test_stdlib_filter_sets_ids_on_records(stdlib_records: list[logging.LogRecord]) -> None:
    def step(x: str) -> str:
        logging.getLogger("app.stdlib").info("inside")
        return x

    logging.getLogger("app.stdlib").info("outside")
    with capture() as cap:
        trace(RunnableLambda(step)).invoke("x")
    outside, inside = stdlib_records
    assert (outside.trace_id, outside.span_id) == ("-", "-")  # type: ignore[attr-defined]
    assert inside.trace_id == cap.traces[0].trace_id  # type: ignore[attr-defined]
    assert inside.span_id == cap.traces[0].root.span_id  # type: ignore[attr-defined]
