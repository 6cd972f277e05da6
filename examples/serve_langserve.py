"""Serve a traced chain with LangServe and trace the remote chain from the client.

Server side: `add_routes(app, trace(chain, exporters=[...]))` records one trace per
request (per input for /batch), whatever the route. Client side: `trace_events()` over
`RemoteRunnable.astream_events` records the remote chain's whole tree (names, run types,
parents, chunks, token usage) while passing every event on unchanged.

Offline by default: the chain's ChatOpenAI talks to the bundled OpenAI-compatible test
server. With OPENAI_API_KEY set, it calls OpenAI instead (LCEL_TRACE_MODEL, default
gpt-4o-mini).

    pip install 'lcel-trace[examples]' && python examples/serve_langserve.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from langserve import RemoteRunnable, add_routes
from pydantic import SecretStr

from lcel_trace import capture, flush_all, trace
from lcel_trace.events import trace_events
from lcel_trace.testing.openai_server import OpenAIServer


class RootSpans:
    """A tiny server-side exporter: keeps one line per finished root span."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def export(self, spans: Any) -> None:
        for span in spans:
            if span.parent_id is None:
                user = span.metadata.get("user", "?")
                self.lines.append(f"trace {span.trace_id} {span.name} for {user}: {span.status}")

    def force_flush(self, timeout_s: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def per_request(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """LangServe's per-request hook: who asked becomes run metadata, on every span."""
    metadata = {**config.get("metadata", {}), "user": request.headers.get("x-user", "anonymous")}
    return {**config, "metadata": metadata}


@contextlib.contextmanager
def model_url() -> Iterator[str | None]:
    if os.environ.get("OPENAI_API_KEY"):
        yield None
        return
    with OpenAIServer(["Parrots mimic sounds to bond with their flock."]) as server:
        yield server.base_url


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port, in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the LangServe app did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def client(url: str) -> None:
    remote: RemoteRunnable[Any, Any] = RemoteRunnable(f"{url}/joke/", headers={"x-user": "ada"})
    with capture() as cap:
        print("client streams:", end=" ", flush=True)
        async for event in trace_events(remote.astream_events({"topic": "parrots"})):
            if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                print(event["data"]["chunk"], end="", flush=True)
        print()
    (recorded,) = cap.traces
    print("client-side tree of the remote chain:")
    print(recorded.tree().render())


def main() -> None:
    with model_url() as base_url:
        model = (
            ChatOpenAI(
                base_url=base_url, api_key=SecretStr("offline"), model="fake-gpt", stream_usage=True
            )
            if base_url
            else ChatOpenAI(
                model=os.environ.get("LCEL_TRACE_MODEL", "gpt-4o-mini"), stream_usage=True
            )
        )
        chain = (
            ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()
        )
        app = FastAPI(title="lcel-trace + LangServe")
        server_side = RootSpans()
        add_routes(
            app,
            trace(chain, exporters=[server_side], name="joke"),
            path="/joke",
            per_req_config_modifier=per_request,
        )
        with serve(app) as url:
            asyncio.run(client(url))
        flush_all()
        print("server-side traces:")
        for line in server_side.lines:
            print(" ", line)


if __name__ == "__main__":
    main()
