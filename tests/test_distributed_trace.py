"""One trace across two services, joined by OpenTelemetry's standard W3C propagation.

Two processes export OTLP/HTTP to one receiver (tests/otlp_receiver.py, in this process):
the server (tests/distributed_app.py `serve`) runs a LangServe app serving a traced
`prompt | ChatOpenAI | StrOutputParser` with `OtelExporter()`, FastAPI and httpx/httpx2
instrumented; the client (`call`) opens `client-request` and calls the chain through a
`RemoteRunnable`, httpx instrumented. The chat model talks to the bundled OpenAI-compatible
server, also in this process, which keeps each request's headers. lcel-trace puts nothing
on the wire: the `traceparent` headers are the instrumentations' own.

The joined tree (client `[C]`, server `[S]`):

    client-request                 [C] INTERNAL
      POST                         [C] CLIENT   httpx, sends traceparent
        POST /chain/invoke         [S] SERVER   the ASGI span, its remote parent the above
          invoke_workflow /chain   [S] INTERNAL lcel-trace's root
            ChatPromptTemplate     [S] INTERNAL
            chat fake-gpt          [S] CLIENT
              POST                 [S] CLIENT   httpx2: the model's HTTP call
            StrOutputParser        [S] INTERNAL

The model's HTTP span nests under `chat fake-gpt`: while a run executes, its span (with
the ids it is exported with) is OpenTelemetry's current span (`lcel_trace.otel_context`).

Processes start on free ports and are waited for by what they report (the port they
bound, `/healthz`, the spans they say they have sent), never a fixed time; the server is
always terminated.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("langserve")
pytest.importorskip("opentelemetry.instrumentation.fastapi")
pytest.importorskip("opentelemetry.instrumentation.httpx")

from lcel_trace.testing.openai_server import OpenAIServer
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

pytestmark = pytest.mark.slow

APP = Path(__file__).with_name("distributed_app.py")
REPLY = "Parrots can learn many words"
DEADLINE_S = 60.0  # two Python processes importing LangChain on two shared cores
LCEL_RUN_TYPES = {"chain", "prompt", "chat_model", "parser"}
# OTLP's SpanKind numbers, as the receiver keeps them
INTERNAL, SERVER, CLIENT = 1, 2, 3
KIND_NAMES = {INTERNAL: "INTERNAL", SERVER: "SERVER", CLIENT: "CLIENT"}


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll `condition` until it returns something truthy, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_S}s waiting for {what}")
        time.sleep(0.05)


def url_of(span: ReceivedSpan) -> str:
    """An HTTP client span's URL, under the stable or the older semantic conventions."""
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


def child_env() -> dict[str, str]:
    """This environment without OTEL_* settings: the processes configure themselves."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"the server exited with {self.process.returncode}:\n{self.output()}"
            )

    def healthy(self) -> bool:
        self.alive()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def sent(self) -> list[dict[str, Any]]:
        self.alive()
        spans: list[dict[str, Any]] = httpx.get(f"{self.url}/sent", timeout=5).json()
        return spans


def read_port(process: subprocess.Popen[str], log: Path) -> int:
    """The port the server bound, from the first line it prints."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], DEADLINE_S)
    line = process.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        raise AssertionError(f"the server printed no port ({line!r}):\n{log.read_text()}")
    return int(line)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as received:
        yield received


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer([REPLY]) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    model: OpenAIServer, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("distributed") / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(APP), "serve", model.base_url, receiver.endpoint],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=child_env(),
            text=True,
        )
    try:
        served = ServerProcess(f"http://127.0.0.1:{read_port(process, log)}", process, log)
        wait_for(served.healthy, "the server's /healthz")
        yield served
    finally:
        stop(process)


@dataclass
class Distributed:
    """One client call, and everything both processes and the receiver saw of it."""

    trace_id: str
    client_span_id: str
    client_ids: set[str]
    server_ids: set[str]
    received: dict[str, ReceivedSpan]  # every span the receiver holds, by span id
    model_headers: list[dict[str, str]]

    def span(self, span_id: str) -> ReceivedSpan:
        return self.received[span_id]

    def ancestry(self, span_id: str) -> list[ReceivedSpan]:
        """The span and its parents up to the trace's root (or the first one not received)."""
        chain = []
        while span_id in self.received:
            chain.append(self.received[span_id])
            span_id = self.received[span_id].parent_span_id
        return chain

    def tree(self) -> str:
        """The joined tree as text: names, process, kind, ids and parent links."""
        children: dict[str, list[ReceivedSpan]] = {}
        for span in self.received.values():
            parent = span.parent_span_id if span.parent_span_id in self.received else ""
            children.setdefault(parent, []).append(span)
        lines: list[str] = []

        def render(span: ReceivedSpan, depth: int) -> None:
            side = "C" if span.span_id in self.client_ids else "S"
            lines.append(
                f"{'  ' * depth}{span.name:<{44 - 2 * depth}} [{side}] "
                f"{KIND_NAMES.get(span.kind, span.kind):<8} trace={span.trace_id[:8]} "
                f"span={span.span_id} parent={span.parent_span_id or '-'}"
            )
            for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
                render(child, depth + 1)

        for root in sorted(children.get("", []), key=lambda s: s.start_ns):
            render(root, 0)
        return "\n".join(lines)


def call_the_chain(server: ServerProcess, receiver: OtlpReceiver) -> dict[str, Any]:
    """Run the client process to completion; its JSON report."""
    try:
        done = subprocess.run(
            [sys.executable, str(APP), "call", f"{server.url}/chain/", receiver.endpoint],
            capture_output=True,
            env=child_env(),
            text=True,
            timeout=DEADLINE_S,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"the client did not finish:\n{timeout.stderr}") from None
    assert done.returncode == 0, f"the client failed:\n{done.stderr}\nserver:\n{server.output()}"
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def distributed(server: ServerProcess, receiver: OtlpReceiver, model: OpenAIServer) -> Distributed:
    client = call_the_chain(server, receiver)
    assert client["output"] == REPLY

    def server_finished() -> list[dict[str, Any]]:
        # lcel-trace exports a trace's spans after its root ends, on its own thread
        sent = server.sent()
        run_types = {s["run_type"] for s in sent}
        return sent if run_types >= LCEL_RUN_TYPES and "SERVER" in {s["kind"] for s in sent} else []

    server_sent = wait_for(server_finished, "the server to send the request's spans")
    # each process lists a span once its OTLP export has returned, so the receiver has it
    received = {s.span_id: s for s in receiver.spans}
    joined = Distributed(
        trace_id=client["trace_id"],
        client_span_id=client["span_id"],
        client_ids={s["span_id"] for s in client["sent"]},
        server_ids={s["span_id"] for s in server_sent},
        received=received,
        model_headers=list(model.request_headers),
    )
    print(f"the joined tree:\n{joined.tree()}")
    return joined


def test_both_processes_spans_arrive_at_the_receiver_in_one_trace(
    distributed: Distributed,
) -> None:
    tree = distributed.tree()
    assert distributed.client_ids, tree
    assert distributed.server_ids, tree
    sent = distributed.client_ids | distributed.server_ids
    assert sent <= distributed.received.keys(), (
        f"not received: {sent - distributed.received.keys()}\n{tree}"
    )
    assert {s.trace_id for s in distributed.received.values()} == {distributed.trace_id}, tree
    roots = [s for s in distributed.received.values() if not s.parent_span_id]
    assert [s.span_id for s in roots] == [distributed.client_span_id], tree


def test_the_served_chains_root_hangs_under_the_asgi_span_of_the_clients_http_call(
    distributed: Distributed,
) -> None:
    tree = distributed.tree()
    (root,) = [s for s in distributed.received.values() if "gen_ai.workflow.name" in s.attributes]
    assert root.trace_id == distributed.trace_id, tree
    ancestry = distributed.ancestry(root.span_id)
    sides = ["C" if s.span_id in distributed.client_ids else "S" for s in ancestry]
    # lcel-trace's root -> the server's ASGI span (remote parent: the traceparent it got)
    # -> the client's httpx span that sent it -> client-request, the trace's root
    assert [(s.kind, side) for s, side in zip(ancestry, sides, strict=True)] == [
        (INTERNAL, "S"),
        (SERVER, "S"),
        (CLIENT, "C"),
        (INTERNAL, "C"),
    ], tree
    _, asgi, http_client, client_request = ancestry
    assert asgi.name == "POST /chain/invoke", tree
    assert url_of(http_client).endswith("/chain/invoke"), tree
    assert client_request.span_id == distributed.client_span_id, tree
    assert client_request.name == "client-request", tree
    assert not client_request.parent_span_id, tree

    under_root = {
        s.attributes.get("lcel.run_type", "http")
        for s in distributed.received.values()
        if root in distributed.ancestry(s.span_id)[1:]
    }
    assert under_root == (LCEL_RUN_TYPES - {"chain"}) | {"http"}, tree


def test_the_chat_models_http_call_carries_a_traceparent_of_the_same_trace(
    distributed: Distributed,
) -> None:
    tree = distributed.tree()
    (headers,) = distributed.model_headers
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", distributed.trace_id), tree
    assert int(flags, 16) & 0x01, f"not sampled: {headers['traceparent']}"
    assert span_id in distributed.server_ids, f"traceparent span {span_id}\n{tree}"
    model_call = distributed.span(span_id)
    assert model_call.kind == CLIENT, tree
    assert url_of(model_call).endswith("/v1/chat/completions"), tree
    # the instrumentation's span, under the chat span, so under the request's ASGI span
    # and the client
    ancestors = [distributed.span(s.span_id) for s in distributed.ancestry(span_id)]
    assert ancestors[-1].span_id == distributed.client_span_id, tree
    assert [s.name for s in ancestors[1:3]] == ["chat fake-gpt", "invoke_workflow /chain"], tree
    assert ancestors[3].kind == SERVER, tree


def test_the_readme_shows_this_tree(distributed: Distributed) -> None:
    """README's "One tree" sample: names, sides and kinds as this run joined them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```\nclient-request")
    sample = readme[start + 4 : readme.index("```", start + 4)].splitlines()

    def shape(line: str) -> tuple[str, ...]:
        return tuple(line.split("trace=")[0].split("  the model")[0].split())

    indents = [len(line) - len(line.lstrip()) for line in sample]
    joined = distributed.tree().splitlines()
    assert [shape(line) for line in sample] == [shape(line) for line in joined]
    assert indents == [len(line) - len(line.lstrip()) for line in joined]
