"""End to end into a real collector: Arize Phoenix, fed by the standard OTLP/HTTP exporter.

Marked `real_collector`: Phoenix is large, so `.ci/run` installs it in a virtualenv of its
own and runs these with `LCEL_TRACE_PHOENIX=/path/to/phoenix pytest -m real_collector`.
Without that variable the tests fail and say why; they are never skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from lcel_trace import Trace, capture, trace
from lcel_trace.exporters import OtelExporter
from lcel_trace.testing.openai_server import OpenAIServer

pytestmark = pytest.mark.real_collector

READY_TIMEOUT_S = 90


@dataclass
class Phoenix:
    base_url: str

    def post_traces(self, body: bytes) -> int:
        request = urllib.request.Request(
            f"{self.base_url}/v1/traces",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span of `project`, as Phoenix's REST API returns them."""
        spans: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = f"?limit=1000{'&cursor=' + cursor if cursor else ''}"
            url = f"{self.base_url}/v1/projects/{project}/spans{query}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = json.load(response)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # the project appears with its first span
                    return []
                raise
            spans.extend(page["data"])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return spans

    def sessions(self, project: str) -> list[dict[str, Any]]:
        """Every session of `project` (spans grouped by their `session.id`), with traces."""
        sessions: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = f"?limit=100{'&cursor=' + cursor if cursor else ''}"
            url = f"{self.base_url}/v1/projects/{project}/sessions{query}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = json.load(response)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return []
                raise
            sessions.extend(page["data"])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return sessions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    executable = os.environ.get("LCEL_TRACE_PHOENIX")
    if not executable:
        pytest.fail("set LCEL_TRACE_PHOENIX to the `phoenix` command of an arize-phoenix install")
    workdir = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [executable, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Phoenix(f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(server, process, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(server: Phoenix, process: subprocess.Popen[bytes], log: Path) -> None:
    """Ready when an empty protobuf POST to /v1/traces answers 200; fail with its log if not."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"phoenix exited with {process.returncode} before it was ready:\n{tail}")
        try:
            if server.post_traces(b"") == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"phoenix was not ready after {READY_TIMEOUT_S} s:\n{tail}")


def provider_for(phoenix: Phoenix, project: str) -> TracerProvider:
    """The standard set-up a user has: OTLP/HTTP protobuf behind a BatchSpanProcessor."""
    resource = Resource.create({"openinference.project.name": project, "service.name": "tests"})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{phoenix.base_url}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def collected(phoenix: Phoenix, project: str, count: int) -> list[dict[str, Any]]:
    """Phoenix ingests asynchronously: poll until `count` spans are queryable."""
    deadline = time.monotonic() + 30
    spans = phoenix.spans(project)
    while len(spans) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        spans = phoenix.spans(project)
    assert len(spans) == count, f"phoenix holds {len(spans)} spans of {project}, not {count}"
    return spans


def export_through(phoenix: Phoenix, project: str, run: Any) -> list[Trace]:
    provider = provider_for(phoenix, project)
    exporter = OtelExporter(provider, conventions=("gen_ai", "openinference"))
    with capture() as cap:
        run(exporter)
    assert exporter.force_flush(10)
    assert provider.force_flush(10_000)
    provider.shutdown()
    return cap.traces


def by_span_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["context"]["span_id"]: s for s in spans}


def test_streamed_openai_chain_arrives_as_the_recorded_tree(phoenix: Phoenix) -> None:
    with OpenAIServer(replies=["Parrots mimic sounds."]) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="sk-test",  # type: ignore[arg-type]
            model="fake-gpt",
            temperature=0.3,
            max_tokens=40,
            stream_usage=True,
        )
        chain = ChatPromptTemplate.from_template("Tell me about {topic}") | model
        chain = chain | StrOutputParser()

        def run(exporter: OtelExporter) -> None:
            traced = trace(chain, exporters=[exporter], name="parrot-facts")
            assert "".join(traced.stream({"topic": "parrots"})) == "Parrots mimic sounds."

        (recorded,) = export_through(phoenix, "lcel-stream", run)

    spans = collected(phoenix, "lcel-stream", len(recorded.spans))
    received = by_span_id(spans)
    root = next(s for s in spans if s["parent_id"] is None)
    assert root["name"] == "invoke_workflow parrot-facts"
    assert root["attributes"]["lcel.run_name"] == "RunnableSequence"
    # the collector files the trace under the id that JSONL lines and log fields carry
    assert root["context"]["trace_id"] == recorded.trace_id
    assert root["status_code"] == "OK"
    assert root["span_kind"] == "CHAIN"  # Phoenix reads openinference.span.kind into this
    assert {s["name"] for s in spans} == {
        "invoke_workflow parrot-facts",
        "ChatPromptTemplate",
        "chat fake-gpt",
        "StrOutputParser",
    }
    children = [s for s in spans if s["parent_id"] == root["context"]["span_id"]]
    assert len(children) == 3  # prompt, model, parser all hang under the root
    assert all(s["parent_id"] in received for s in spans if s["parent_id"] is not None)

    chat = next(s for s in spans if s["name"] == "chat fake-gpt")
    recorded_chat = recorded.span("ChatOpenAI")
    assert recorded_chat.usage is not None
    attributes = chat["attributes"]
    assert chat["span_kind"] == "LLM"
    assert chat["status_code"] == "OK"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "fake-gpt"
    assert attributes["gen_ai.request.temperature"] == 0.3
    assert attributes["gen_ai.request.max_tokens"] == 40
    assert attributes["gen_ai.usage.input_tokens"] == recorded_chat.usage.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == recorded_chat.usage.output_tokens
    assert attributes["llm.token_count.prompt"] == recorded_chat.usage.input_tokens
    assert attributes["llm.token_count.completion"] == recorded_chat.usage.output_tokens
    assert attributes["lcel.chunk_count"] == recorded_chat.chunk_count
    assert attributes["lcel.run_id"] == recorded_chat.span_id
    assert attributes["llm.input_messages.0.message.role"] == "user"
    assert attributes["llm.input_messages.0.message.content"] == "Tell me about parrots"
    assert attributes["llm.output_messages.0.message.content"] == "Parrots mimic sounds."
    assert json.loads(attributes["gen_ai.output.messages"])[0]["finish_reason"] == "stop"


def test_failure_arrives_as_error_status_with_the_exception(phoenix: Phoenix) -> None:
    def explode(_: str) -> str:
        raise ValueError("the parrot flew off")

    chain = RunnableLambda(lambda s: s.upper()) | RunnableLambda(explode)

    def run(exporter: OtelExporter) -> None:
        traced = trace(chain, exporters=[exporter], name="doomed")
        with pytest.raises(ValueError, match="the parrot flew off"):
            traced.invoke("polly")

    (recorded,) = export_through(phoenix, "lcel-error", run)
    spans = collected(phoenix, "lcel-error", len(recorded.spans))
    statuses = {s["name"]: s["status_code"] for s in spans}
    assert statuses == {
        "invoke_workflow doomed": "ERROR",
        "RunnableLambda": "OK",
        "explode": "ERROR",
    }
    failed = next(s for s in spans if s["name"] == "explode")
    assert "the parrot flew off" in failed["status_message"]
    exception = next(e for e in failed["events"] if e["name"] == "exception")
    assert exception["attributes"]["exception.type"] == "ValueError"


def test_two_turns_of_one_conversation_are_one_phoenix_session(phoenix: Phoenix) -> None:
    """`session_id`/`user_id` in the run metadata become `session.id`/`user.id` on every
    span, which is what Phoenix groups its sessions by."""
    replies = ["Hello Polly!", "Your name is Polly.", "Squawk."]
    with OpenAIServer(replies=replies) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="sk-test",  # type: ignore[arg-type]
            model="fake-gpt",
            stream_usage=True,
        )
        prompt = ChatPromptTemplate.from_messages(
            [MessagesPlaceholder("history"), ("human", "{q}")]
        )
        chain = prompt | model | StrOutputParser()
        first = [HumanMessage("Hi, I am Polly"), AIMessage("Hello Polly!")]

        def run(exporter: OtelExporter) -> None:
            traced = trace(chain, exporters=[exporter], name="chat-turn")
            talk = {"metadata": {"session_id": "conv-1", "user_id": "polly"}}
            other = {"metadata": {"session_id": "conv-2", "user_id": "rio"}}
            assert traced.invoke({"history": [], "q": "Hi, I am Polly"}, config=talk) == replies[0]
            second = traced.invoke({"history": first, "q": "What is my name?"}, config=talk)
            assert second == replies[1]
            assert traced.invoke({"history": [], "q": "Hello"}, config=other) == replies[2]

        one, two, elsewhere = export_through(phoenix, "lcel-sessions", run)

    count = sum(len(t.spans) for t in (one, two, elsewhere))
    spans = collected(phoenix, "lcel-sessions", count)
    conversation = {one.trace_id, two.trace_id}
    for span in spans:
        attributes = span["attributes"]
        in_first = span["context"]["trace_id"] in conversation
        assert attributes["session.id"] == ("conv-1" if in_first else "conv-2")
        assert attributes["gen_ai.conversation.id"] == attributes["session.id"]
        assert attributes["user.id"] == ("polly" if in_first else "rio")

    deadline = time.monotonic() + 30
    sessions = phoenix.sessions("lcel-sessions")
    while len(sessions) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        sessions = phoenix.sessions("lcel-sessions")
    grouped = {s["session_id"]: {t["trace_id"] for t in s["traces"]} for s in sessions}
    assert grouped == {"conv-1": conversation, "conv-2": {elsewhere.trace_id}}
    session = next(s for s in sessions if s["session_id"] == "conv-1")
    usage = [t.span("ChatOpenAI").usage for t in (one, two)]
    assert all(u is not None and u.input_tokens for u in usage)
    assert session["token_count_prompt"] == sum(u.input_tokens or 0 for u in usage if u)
