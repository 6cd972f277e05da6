"""LangServe, both sides: a traced chain served by `add_routes`, and a client recording
the remote chain's tree from `RemoteRunnable.astream_events` with `trace_events`.

A real FastAPI app under uvicorn on a free port, its chain calling ChatOpenAI against
the bundled OpenAI-compatible server (real HTTP both ways). The server's traces leave
through an exporter (the requests run on uvicorn's thread, outside any `capture()`),
and tests wait for an observable record of them, never a fixed time.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

pytest.importorskip("langserve")

import uvicorn
from fastapi import FastAPI, Request
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from langserve import RemoteRunnable, add_routes

from lcel_trace import Span, capture, trace
from lcel_trace.events import trace_events
from lcel_trace.span import TraceEnd
from lcel_trace.testing.openai_server import OpenAIServer

pytestmark = [
    # LangServe's own /stream_log route calls LangChain's deprecated astream_log
    pytest.mark.filterwarnings("ignore:astream_log is deprecated"),
    # LangServe 0.3.3 reads `model_fields` off instances (deprecated since Pydantic 2.11)
    pytest.mark.filterwarnings("ignore:Accessing the 'model_fields' attribute"),
]

REPLY = "Parrots can learn many words"
DEADLINE_S = 30.0
_request_ids = itertools.count(1)


class Collected:
    """An exporter keeping every span and trace end, per trace, as the server exports them."""

    def __init__(self) -> None:
        self.spans: dict[str, list[Span]] = {}
        self.ends: dict[str, TraceEnd] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Span]) -> None:
        with self._lock:
            for span in spans:
                self.spans.setdefault(span.trace_id, []).append(span)

    def on_trace_end(self, end: TraceEnd) -> None:
        with self._lock:
            self.ends[end.trace_id] = end

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        pass

    def traces_of(self, request_id: str) -> dict[str, list[Span]]:
        """The finished traces whose root carries this request's id in its metadata."""
        with self._lock:
            return {
                trace_id: list(spans)
                for trace_id, spans in self.spans.items()
                if trace_id in self.ends
                and any(
                    s.parent_id is None and s.metadata.get("request_id") == request_id
                    for s in spans
                )
            }


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it returns something truthy, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def with_request_metadata(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """LangServe's per-request hook: the caller's headers become run metadata."""
    metadata = {
        **config.get("metadata", {}),
        "request_id": request.headers.get("x-request-id", ""),
        "user": request.headers.get("x-user", ""),
    }
    return {**config, "metadata": metadata}


def served_chain(model_url: str) -> Runnable[Any, Any]:
    model = ChatOpenAI(base_url=model_url, api_key="test", model="fake-gpt", stream_usage=True)
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


class Served:
    def __init__(self, url: str, exporter: Collected, model: OpenAIServer) -> None:
        self.url = url
        self.exporter = exporter
        self.model = model

    def headers(self, user: str = "ada") -> dict[str, str]:
        return {"x-request-id": f"req-{next(_request_ids)}", "x-user": user}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    model = OpenAIServer([REPLY], token_delay_s=0.0).start()
    exporter = Collected()
    app = FastAPI()
    add_routes(
        app,
        trace(served_chain(model.base_url), exporters=[exporter]),
        path="/chain",
        per_req_config_modifier=with_request_metadata,
        # /batch keeps only these keys of the modified config (LangServe's default
        # is "configurable" alone, which would drop the per-request metadata there)
        config_keys=("configurable", "metadata"),
    )
    slow_model = OpenAIServer([" ".join(["word"] * 200)], token_delay_s=0.05).start()
    add_routes(
        app,
        trace(served_chain(slow_model.base_url), exporters=[exporter]),
        path="/slow",
        per_req_config_modifier=with_request_metadata,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), "the LangServe app to start")
        assert thread.is_alive()
        yield Served(f"http://127.0.0.1:{port}", exporter, model)
    finally:
        server.should_exit = True
        thread.join(10)
        model.stop()
        slow_model.stop()


def one_trace(served: Served, headers: dict[str, str]) -> list[Span]:
    traces = wait_for(lambda: served.exporter.traces_of(headers["x-request-id"]), "the trace")
    (spans,) = traces.values()
    return spans


def assert_whole_chain(spans: list[Span], *, user: str) -> None:
    by_type = {s.run_type: s for s in spans}
    assert set(by_type) == {"chain", "prompt", "chat_model", "parser"}
    assert all(s.status == "ok" for s in spans)
    assert all(s.metadata.get("user") == user for s in spans)
    model = by_type["chat_model"]
    assert model.model == "fake-gpt"
    assert model.usage is not None
    assert model.usage.output_tokens == len(REPLY.split())


@pytest.mark.parametrize("route", ["input_schema", "output_schema", "config_schema", "playground/"])
def test_schema_routes_and_the_playground_answer(served: Served, route: str) -> None:
    response = httpx.get(f"{served.url}/chain/{route}")
    assert response.status_code == 200
    assert response.text


def test_invoke_records_one_trace_with_the_requests_metadata(served: Served) -> None:
    headers = served.headers(user="grace")
    response = httpx.post(
        f"{served.url}/chain/invoke", json={"input": {"topic": "parrots"}}, headers=headers
    )
    assert response.json()["output"] == REPLY
    assert_whole_chain(one_trace(served, headers), user="grace")


def test_batch_records_one_trace_per_input(served: Served) -> None:
    headers = served.headers()
    remote = RemoteRunnable(f"{served.url}/chain/", headers=headers)
    assert remote.batch([{"topic": "a"}, {"topic": "b"}, {"topic": "c"}]) == [REPLY] * 3
    traces = wait_for(
        lambda: len(t := served.exporter.traces_of(headers["x-request-id"])) == 3 and t,
        "three traces",
    )
    for spans in traces.values():
        assert_whole_chain(spans, user="ada")


@pytest.mark.parametrize("route", ["stream", "stream_events", "stream_log"])
def test_streaming_routes_record_one_whole_trace(served: Served, route: str) -> None:
    headers = served.headers()
    with httpx.stream(
        "POST", f"{served.url}/chain/{route}", json={"input": {"topic": "x"}}, headers=headers
    ) as response:
        body = response.read().decode()
    assert response.status_code == 200
    assert "event: end" in body
    spans = one_trace(served, headers)
    assert_whole_chain(spans, user="ada")
    root = next(s for s in spans if s.parent_id is None)
    if route == "stream":
        assert root.chunk_count > 1


def test_a_client_that_disconnects_mid_stream_ends_the_trace_cancelled(served: Served) -> None:
    headers = served.headers()
    with httpx.stream(
        "POST", f"{served.url}/slow/stream", json={"input": {"topic": "x"}}, headers=headers
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and "word" in line:
                break  # leave with the model still streaming
    request_id = headers["x-request-id"]

    def ended() -> list[TraceEnd]:
        traces = served.exporter.traces_of(request_id)
        return [served.exporter.ends[trace_id] for trace_id in traces]

    (end,) = wait_for(ended, "the disconnected request's trace to end")
    assert end.status == "cancelled"
    spans = one_trace(served, headers)
    by_type = {s.run_type: s for s in spans}
    assert by_type["prompt"].status == "ok"
    assert by_type["chat_model"].status == "cancelled"
    assert by_type["chain"].status == "cancelled"


async def test_the_client_records_the_remote_chains_whole_tree(served: Served) -> None:
    headers = served.headers()
    remote = RemoteRunnable(f"{served.url}/chain/", headers=headers)
    streamed = [chunk async for chunk in remote.astream({"topic": "parrots"})]

    restreamed = []
    with capture() as cap:
        events = remote.astream_events({"topic": "parrots"})
        async for event in trace_events(events):
            if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                restreamed.append(event["data"]["chunk"])
    assert restreamed == streamed
    (client,) = cap.traces
    assert client.status == "ok"

    server_traces = wait_for(
        lambda: len(t := served.exporter.traces_of(headers["x-request-id"])) == 2 and t,
        "the server's traces of both requests",
    )
    server_spans = next(
        spans
        for spans in server_traces.values()
        if any(s.span_id == client.root_run_id for s in spans)
    )

    def tree(spans: Sequence[Span]) -> set[tuple[Any, ...]]:
        return {
            (s.span_id, s.parent_id, s.name, s.run_type, s.chunk_count, s.usage, s.model)
            for s in spans
        }

    assert tree(client.spans) == tree(server_spans)
    model = next(s for s in client.spans if s.run_type == "chat_model")
    assert model.usage is not None
    assert model.usage.output_tokens == len(REPLY.split())
    assert json.dumps(client.root.outputs if client.root else None) == json.dumps(REPLY)
