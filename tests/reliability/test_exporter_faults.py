"""Raising, hanging and slow exporters: the chain's output is untouched, flush and
shutdown come back within their timeouts, and losses are counted, not hidden."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from lcel_trace import Span, exporter_stats, trace
from lcel_trace.export import BaseExporter, ExporterCapabilities

ANSWER = "a b c d e f g"


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=ANSWER)] * 1000))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


class SlowExporter(BaseExporter):
    """Takes 100 ms per span, like a collector on a bad day."""

    shutdown_timeout_s = 0.3

    def __init__(self) -> None:
        super().__init__()
        self.exported = 0

    def export(self, spans: Sequence[Span]) -> None:
        for _ in spans:
            time.sleep(0.1)
            self.exported += 1


class HungExporter(BaseExporter):
    capabilities = ExporterCapabilities(receives="records", max_queue=30)
    shutdown_timeout_s = 0.2

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def export(self, spans: Sequence[Span]) -> None:
        self.gate.wait()


def returns_within(call: object, limit_s: float) -> object:
    """Run `call` in a thread; fail if it is still running after `limit_s` (a liveness
    check with a generous bound, not a timing measurement)."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(call()))  # type: ignore[operator]
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"did not return within {limit_s} s"
    return result[0]


def test_slow_exporter_changes_nothing_and_flush_honours_its_timeout() -> None:
    slow = SlowExporter()
    traced = trace(chain(), exporters=[slow])
    assert [traced.invoke({"q": "x"}) for _ in range(3)] == [ANSWER] * 3
    assert list(traced.stream({"q": "x"})) == list(chain().stream({"q": "x"}))
    assert returns_within(lambda: slow.force_flush(timeout_s=0.05), 5) is False
    assert returns_within(lambda: slow.force_flush(timeout_s=30), 35) is True
    assert slow.exported == 16
    assert exporter_stats(slow).dropped_records == 0
    slow.shutdown()


def test_hung_exporter_is_bounded_counted_and_shut_down_within_its_timeout() -> None:
    hung = HungExporter()
    traced = trace(chain(), exporters=[hung])
    outputs = [traced.invoke({"q": "x"}) for _ in range(20)]
    assert outputs == [ANSWER] * 20
    stats = exporter_stats(hung)
    assert stats.queued <= hung.max_queue
    assert stats.dropped_records > 0
    returns_within(hung.shutdown, 5)
    returns_within(hung.shutdown, 5)  # idempotent
    assert traced.invoke({"q": "x"}) == ANSWER  # refused after shutdown, chain unaffected
    assert exporter_stats(hung).dropped_records > stats.dropped_records
    hung.gate.set()


@pytest.mark.parametrize("calls", [1, 30])
def test_raising_exporter_failures_are_counted(calls: int) -> None:
    class Raising(BaseExporter):
        def export(self, spans: Sequence[Span]) -> None:
            raise OSError("disk full")

    raising = Raising()
    traced = trace(chain(), exporters=[raising])
    assert [traced.invoke({"q": "x"}) for _ in range(calls)] == [ANSWER] * calls
    assert raising.force_flush(10) is True
    assert exporter_stats(raising).failed_calls == calls


def test_otel_exporter_pointed_at_a_closed_port_changes_nothing() -> None:
    import socket

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from lcel_trace.exporters import OtelExporter

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    provider = TracerProvider()
    dead = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=1)
    provider.add_span_processor(BatchSpanProcessor(dead, schedule_delay_millis=20))
    otel = OtelExporter(provider)
    traced = trace(chain(), exporters=[otel])
    assert [traced.invoke({"q": "x"}) for _ in range(5)] == [ANSWER] * 5
    assert list(traced.stream({"q": "x"})) == list(chain().stream({"q": "x"}))
    returns_within(lambda: otel.force_flush(timeout_s=2), 30)
    returns_within(otel.shutdown, 30)
    assert exporter_stats(otel).failed_calls == 0  # the SDK absorbs the dead collector
    provider.shutdown()


def test_traces_whose_records_were_dropped_leave_no_state_behind_in_the_exporters(
    tmp_path: object,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from lcel_trace.exporters import JsonlExporter, OtelExporter

    gate = threading.Event()

    class Blocking(OtelExporter):
        def on_trace_start(self, start: object) -> None:  # type: ignore[override]
            gate.wait(30)
            super().on_trace_start(start)  # type: ignore[arg-type]

    otel = Blocking(TracerProvider(), max_queue=40)
    jsonl = JsonlExporter(f"{tmp_path}/runs.jsonl", max_queue=40)
    traced = trace(chain(), exporters=[otel, jsonl])
    for _ in range(30):  # far more than a 40-record queue holds while the exporter waits
        assert traced.invoke({"q": "x"}) == ANSWER
    assert exporter_stats(otel).dropped_records > 0
    gate.set()
    assert otel.force_flush(30)
    assert jsonl.force_flush(30)
    # every trace's start and end got through, so nothing is kept for a trace that ended
    assert dict(otel._pending) == {}
    assert jsonl._roots == {}
    otel.shutdown()
    jsonl.shutdown()


def test_an_exception_whose_str_raises_costs_its_message_not_the_trace() -> None:
    from langchain_core.runnables import RunnableLambda

    from lcel_trace import capture

    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message for you")

    def fail(_: object) -> None:
        raise UnprintableError

    with capture() as cap, pytest.raises(UnprintableError):
        trace(RunnableLambda(fail, name="fail")).invoke(1)
    (recorded,) = cap.traces
    assert recorded.status == "error"
    span = recorded.span("fail")
    assert span.status == "error"
    assert span.error is not None
    assert span.error.type.endswith("UnprintableError")
    assert "__str__ raised" in span.error.message
