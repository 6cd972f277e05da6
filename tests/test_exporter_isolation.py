"""Exporters never get in the caller's way: failures, hangs and full queues stay inside."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from lcel_trace import Span, flush_all, trace
from lcel_trace.export import ExporterCapabilities, processor_for

ANSWER = "a b c d e f"


def chain() -> Runnable[dict[str, str], str]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=ANSWER)] * 1000))
    return ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()


class RaisingExporter:
    def export(self, spans: Sequence[Span]) -> None:
        raise RuntimeError("collector is down")

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        return None


class HangingExporter:
    capabilities = ExporterCapabilities(max_queue=40)

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[Span]) -> None:
        self.release.wait()
        self.received += len(spans)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        self.release.set()


class CollectingExporter:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def export(self, spans: Sequence[Span]) -> None:
        self.spans.extend(spans)

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return processor_for(self).drain(timeout_s)

    def shutdown(self) -> None:
        return None


@pytest.fixture
def hanging() -> Iterator[HangingExporter]:
    exporter = HangingExporter()
    yield exporter
    exporter.release.set()
    processor_for(exporter).drain(5)


def test_raising_exporter_leaves_output_unchanged_and_other_exporters_served() -> None:
    healthy = CollectingExporter()
    traced = trace(chain(), exporters=[RaisingExporter(), healthy])
    assert traced.invoke({"q": "x"}) == chain().invoke({"q": "x"})
    assert list(traced.stream({"q": "x"})) == list(chain().stream({"q": "x"}))
    assert healthy.force_flush(5)
    assert len(healthy.spans) == 8


def test_failures_are_counted_and_logged_once_then_at_powers_of_ten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class OncePerKindExporter(RaisingExporter):
        pass

    exporter = OncePerKindExporter()
    traced = trace(chain(), exporters=[exporter])
    with caplog.at_level(logging.WARNING, logger="lcel_trace"):
        for _ in range(12):
            traced.invoke({"q": "x"})
        assert flush_all(5)
    warnings = [r for r in caplog.records if getattr(r, "source", "") == "OncePerKindExporter"]
    assert [getattr(r, "occurrences", None) for r in warnings] == [1, 10]
    assert processor_for(exporter).failed_calls == 12


def test_hung_exporter_drops_beyond_its_bounded_queue_and_flush_times_out(
    hanging: HangingExporter,
) -> None:
    traced = trace(chain(), exporters=[hanging])
    outputs = [traced.invoke({"q": "x"}) for _ in range(30)]
    assert outputs == [ANSWER] * 30
    processor = processor_for(hanging)
    assert processor.dropped_records > 0
    assert processor._queued_records <= hanging.capabilities.max_queue
    assert flush_all(timeout_s=0.2) is False
    hanging.release.set()
    assert processor.drain(5) is True


def test_exporter_that_is_not_one_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="lacks export, force_flush, shutdown"):
        trace(chain(), exporters=[object()])  # type: ignore[list-item]


def test_library_logs_go_to_stdlib_logging_never_stdout(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lcel_trace"):
        trace(chain(), exporters=[RaisingExporter()]).invoke({"q": "x"})
        flush_all(5)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert any(r.name == "lcel_trace" for r in caplog.records) or captured.err == ""
