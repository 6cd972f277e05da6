"""Secrets never leave the process: not in spans, events, JSONL lines, OpenTelemetry
attributes or log lines."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lcel_trace import capture, flush_all, trace
from lcel_trace.exporters import JsonlExporter, OtelExporter

KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"
BEARER = "Bearer abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def openai_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return os.environ["OPENAI_API_KEY"]


def test_key_from_the_environment_appears_nowhere_it_was_sent(
    openai_key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def leaky(payload: dict[str, str]) -> str:
        raise RuntimeError(f"upstream said: invalid key {openai_key}; header {BEARER}")

    class Broken:
        """An exporter whose failure message itself carries the key."""

        def export(self, spans: object) -> None:
            raise ValueError(f"collector rejected {openai_key}")

        def force_flush(self, timeout_s: float | None = None) -> bool:
            return True

        def shutdown(self) -> None:
            return None

    path = tmp_path / "runs.jsonl"
    provider = TracerProvider()
    otel_spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(otel_spans))
    chain = RunnableLambda(lambda d: d) | RunnableLambda(leaky)
    traced = trace(chain, exporters=[JsonlExporter(path), OtelExporter(provider), Broken()])
    config = {
        "metadata": {"authorization": BEARER, "note": f"key={openai_key}"},
        "tags": [f"k:{openai_key}"],
    }
    with caplog.at_level(logging.DEBUG, logger="lcel_trace"), capture() as cap:
        with pytest.raises(RuntimeError):
            traced.invoke({"api_key": openai_key, "prompt": f"use {openai_key}"}, config)
        with pytest.raises(RuntimeError):
            list(traced.stream({"password": "hunter2", "q": "x"}, config))
        flush_all(5)
    written = path.read_text(encoding="utf-8")
    assert written, "the trace was not written"
    assert openai_key not in written
    assert "hunter2" not in written
    assert BEARER not in written
    for span in cap.spans:
        assert openai_key not in repr(span)
        assert "hunter2" not in repr(span)
    for event in (e for t in cap.traces for e in t.trace_events):
        assert openai_key not in repr(event)
    exported = otel_spans.get_finished_spans()
    assert exported, "no OpenTelemetry span was exported"
    for otel_span in exported:
        attributes = repr(dict(otel_span.attributes or {})) + repr(otel_span.events)
        assert openai_key not in attributes
        assert "hunter2" not in attributes
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert openai_key not in logged


def test_secrets_in_tool_calls_metadata_and_models_appear_nowhere(tmp_path: Path) -> None:
    from langchain_core.messages import AIMessage
    from pydantic import BaseModel

    class Credentials(BaseModel):
        dbPassword: str  # noqa: N815 - a camelCase name is what is under test

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9Pl"
    reply = AIMessage(
        content=f"connect to postgres://app:hunter2@db.internal/app with {jwt}",
        tool_calls=[{"name": "login", "args": {"password": "s3cr3t-pw"}, "id": "call_1"}],
        additional_kwargs={"tool_calls": [{"function": {"arguments": '{"apiKey": "k-789"}'}}]},
        response_metadata={"headers": {"set-cookie": "session=abc987"}},
    )

    def respond(payload: dict[str, object]) -> AIMessage:
        return reply

    path = tmp_path / "runs.jsonl"
    provider = TracerProvider()
    otel_spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(otel_spans))
    traced = trace(RunnableLambda(respond), exporters=[JsonlExporter(path), OtelExporter(provider)])
    with capture() as cap:
        traced.invoke({"creds": Credentials(dbPassword="pg-pass-42"), "q": "x"})
        flush_all(5)
    exported = "".join(
        repr(dict(s.attributes or {})) + repr(s.events) for s in otel_spans.get_finished_spans()
    )
    everything = [path.read_text(encoding="utf-8"), repr(cap.spans), exported]
    for secret in ("hunter2", jwt, "s3cr3t-pw", "k-789", "abc987", "pg-pass-42"):
        for where in everything:
            assert secret not in where
    assert "db.internal" in everything[0]  # the host stays readable


def test_a_secret_split_across_streamed_chunks_is_not_recorded(tmp_path: Path) -> None:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser

    from lcel_trace.exporters import JsonlExporter
    from lcel_trace.replay import read_traces

    token = "abcdefghijklmnopqrstuvwx0123456789"
    reply = f"use Bearer {token} to call it, then say thanks to everyone involved here"
    chain = GenericFakeChatModel(messages=iter([AIMessage(content=reply)])) | StrOutputParser()
    path = tmp_path / "split.jsonl"
    with JsonlExporter(path) as jsonl:
        chunks = list(trace(chain, exporters=[jsonl]).stream("hi"))
    assert "".join(chunks) == reply  # the caller gets the secret: it is theirs
    assert any(c.strip() == "Bearer" for c in chunks)  # split across chunks indeed
    (written,) = read_traces(path)
    streamed = [
        chunk
        for event in written.trace_events
        if event.kind == "stream"
        for _, chunk in event.data["chunks"]
    ]
    assert len(streamed) == len(chunks)
    recorded = "".join(streamed)
    assert token not in recorded
    assert "[REDACTED]" in recorded
    assert recorded.endswith("say thanks to everyone involved here")
    assert token not in path.read_text()


def test_a_private_key_streamed_line_by_line_is_not_recorded(tmp_path: Path) -> None:
    """Each line is a chunk: the BEGIN line alone looks like a whole (empty) key block,
    and the body lines after it like nothing at all; only the text as it streamed shows
    them to be one key."""
    from langchain_core.runnables import RunnableGenerator

    from lcel_trace.replay import read_traces

    line = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
    body = "\n".join([line] * 5)
    text = f"here:\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nbye"

    def lines(_: object) -> Iterator[str]:
        yield from text.splitlines(keepends=True)

    path = tmp_path / "pem.jsonl"
    with JsonlExporter(path) as jsonl, capture() as cap:
        assert "".join(trace(RunnableGenerator(lines), exporters=[jsonl]).stream("x")) == text
    assert line not in path.read_text()
    assert line not in repr(cap.spans)
    (written,) = read_traces(path)
    streamed = [c for e in written.trace_events if e.kind == "stream" for _, c in e.data["chunks"]]
    assert "".join(streamed) == "here:\n[REDACTED]\nbye"


def test_run_names_trace_names_and_model_request_parameters_are_scrubbed(
    tmp_path: Path,
) -> None:
    from langchain_core.runnables import RunnableLambda
    from langchain_openai import ChatOpenAI

    from lcel_trace.exporters import JsonlExporter
    from lcel_trace.testing.openai_server import OpenAIServer

    secret = "sk-" + "q" * 40
    path = tmp_path / "names.jsonl"
    with OpenAIServer(["fine"]) as server, JsonlExporter(path) as jsonl:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="test",
            model="fake-gpt",
            model_kwargs={"user": f"token {secret}"},
            extra_body={"api_key": secret},
        )
        step = RunnableLambda(lambda x: x, name=f"step {secret}")
        traced = trace(step | model, exporters=[jsonl], name=f"job {secret}")
        with capture() as cap:
            assert traced.invoke("hi").content == "fine"
    text = path.read_text()
    assert "extra_body" in text or "api_key" in text  # the parameters were recorded
    assert secret not in text
    assert secret not in repr(cap.traces)
