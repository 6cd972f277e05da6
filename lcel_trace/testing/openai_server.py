"""A local OpenAI-compatible server for tests and offline examples, over real HTTP.

It speaks the parts of the OpenAI API that `langchain-openai` uses: chat completions and
legacy completions, with and without `stream=true` (server-sent events in the API's wire
format, the final usage chunk when `stream_options.include_usage` is set, tool calls
streamed in pieces), and `/v1/models`. Replies are scripted, tokens can be paced, and
faults can be injected: HTTP 429 or 500, a connection dropped mid-stream, a malformed
chunk. Each answered request's body and headers are kept (`requests`, `request_headers`:
a `traceparent` sent by an instrumented client shows there). Built on starlette and
uvicorn (`pip install 'lcel-trace[openai-server]'`).

    with OpenAIServer(["Hello there!"]) as server:
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="fake-gpt")

Run it as a command: `python -m lcel_trace.testing.openai_server --port 8000`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FaultKind = Literal["http_429", "http_500", "drop_mid_stream", "malformed_chunk"]
# A token: a run of non-space characters with its leading space, except that CJK
# characters and punctuation are one token each (as real tokenizers mostly split them).
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, streamed in pieces


@dataclass(frozen=True)
class Reply:
    """One scripted answer: text, or tool calls, and the finish reason to report."""

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


@dataclass
class Fault:
    """Fail the next `times` requests this way; stream faults strike after `after_chunks`."""

    kind: FaultKind
    times: int = 1
    after_chunks: int = 2


@dataclass
class OpenAIServer:
    """The server, started on a free loopback port by `start()` or `with`."""

    replies: Iterable[str | Reply] = ("Hello from the lcel-trace test server.",)
    model: str = "fake-gpt"
    token_delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # each answered request's HTTP headers (lower-case names), in step with `requests`
    request_headers: list[dict[str, str]] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _port: int = 0

    def __post_init__(self) -> None:
        self._script = itertools.cycle(
            [r if isinstance(r, Reply) else Reply(r) for r in self.replies]
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` (or `OPENAI_BASE_URL`): `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self, port: int = 0) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="critical", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="openai-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OpenAI test server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail_next(self, kind: FaultKind, *, times: int = 1, after_chunks: int = 2) -> None:
        """Make the next `times` requests fail as `kind`."""
        with self._lock:
            self._faults.append(Fault(kind, times, after_chunks))

    # -- the API -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": self.model, "object": "model", "created": 0, "owned_by": "lcel-trace"}
                ],
            }
        )

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    async def _receive(
        self, request: Request
    ) -> tuple[dict[str, Any], Fault | None, Response | None]:
        """The request body, the fault to inject, and an error response if it is HTTP."""
        body = await request.json()
        fault = self._take_fault()
        if fault is not None and fault.kind in ("http_429", "http_500"):
            return body, fault, _error_response(fault.kind)
        return body, fault, None

    def _next(self, request: Request, body: dict[str, Any]) -> tuple[Reply, str, int]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(dict(request.headers))
            reply = next(self._script)
            number = next(self._ids)
        return reply, f"chatcmpl-lcel{number:06d}", int(time.time())

    async def _chat(self, request: Request) -> Response:
        body, fault, early = await self._receive(request)
        if early is not None:
            return early
        reply, response_id, created = self._next(request, body)
        model = str(body.get("model") or self.model)
        prompt_tokens = sum(
            len(_TOKEN.findall(str(m.get("content") or ""))) for m in body.get("messages", [])
        )
        completion_tokens = len(_TOKEN.findall(reply.content)) + sum(
            len(call.arguments) // 4 + 1 for call in reply.tool_calls
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for i, c in enumerate(reply.tool_calls)
                ]
            return JSONResponse(
                {
                    "id": response_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": reply.finish_reason,
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": None,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            payload = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        deltas: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        deltas += [chunk({"content": token}) for token in _TOKEN.findall(reply.content)]
        for i, call in enumerate(reply.tool_calls):
            deltas.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": f"call_{i}",
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for start in range(0, len(call.arguments), 8):
                piece = call.arguments[start : start + 8]
                deltas.append(
                    chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                )
        deltas.append(chunk({}, reply.finish_reason))
        if include_usage:
            deltas.append({**base, "choices": [], "usage": usage})
        return StreamingResponse(self._events(deltas, fault), media_type="text/event-stream")

    async def _completions(self, request: Request) -> Response:
        body, fault, early = await self._receive(request)
        if early is not None:
            return early
        reply, response_id, created = self._next(request, body)
        model = str(body.get("model") or self.model)
        prompts = body.get("prompt")
        prompt_text = " ".join(prompts) if isinstance(prompts, list) else str(prompts or "")
        tokens = _TOKEN.findall(reply.content)
        usage = {
            "prompt_tokens": len(_TOKEN.findall(prompt_text)),
            "completion_tokens": len(tokens),
            "total_tokens": len(_TOKEN.findall(prompt_text)) + len(tokens),
        }
        base = {
            "id": response_id.replace("chatcmpl", "cmpl"),
            "object": "text_completion",
            "created": created,
            "model": model,
        }
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "choices": [
                        {
                            "text": reply.content,
                            "index": 0,
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        deltas = [
            {**base, "choices": [{"text": t, "index": 0, "logprobs": None, "finish_reason": None}]}
            for t in tokens
        ]
        deltas.append(
            {
                **base,
                "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
            }
        )
        if include_usage:
            deltas.append({**base, "choices": [], "usage": usage})
        return StreamingResponse(self._events(deltas, fault), media_type="text/event-stream")

    async def _events(
        self, payloads: list[dict[str, Any]], fault: Fault | None
    ) -> AsyncIterator[bytes]:
        for index, payload in enumerate(payloads):
            if fault is not None and index == fault.after_chunks:
                if fault.kind == "drop_mid_stream":
                    raise ConnectionResetError("connection dropped mid-stream (injected fault)")
                yield b"data: {this is not json\n\n"
                return
            if index and self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


def _error_response(kind: FaultKind) -> JSONResponse:
    status, code, message = (
        (429, "rate_limit_exceeded", "Rate limit reached (injected fault).")
        if kind == "http_429"
        else (500, "server_error", "The server had an error (injected fault).")
    )
    return JSONResponse(
        {"error": {"message": message, "type": code, "param": None, "code": code}},
        status_code=status,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a scripted OpenAI-compatible API locally.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--reply", action="append", help="a scripted reply (repeatable)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args()
    server = OpenAIServer(
        args.reply or ("Hello from the lcel-trace test server.",), token_delay_s=args.token_delay
    )
    server.start(args.port)
    print(f"serving on {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
