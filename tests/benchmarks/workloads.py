"""The chains the benchmarks run, and how one run of each is timed.

Every workload is driven through `astream` (the batch workload: 100 concurrent
`astream`s), through `astream_events(version="v2")`, and through the sync `stream()` and
`invoke()`/`batch()` entry points, so tracers can be compared on the same calls.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel

INPUT = {"topic": "parrots"}


def chat_chain(tokens: int) -> Runnable[Any, str]:
    """prompt | fake chat model | parser, streaming `tokens` chunks (words and spaces)."""
    text = " ".join(f"t{i % 10}" for i in range(tokens // 2))
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=text)]))
    return ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()


def parallel_chain(branches: int, tokens: int) -> Runnable[Any, Any]:
    return RunnableParallel({f"branch{i}": chat_chain(tokens) for i in range(branches)})


def lambda_chain(steps: int) -> Runnable[Any, Any]:
    chain: Runnable[Any, Any] = RunnableLambda(lambda x: x)
    for i in range(1, steps):
        chain = chain | RunnableLambda(lambda x, i=i: {**x, "step": i})
    return chain


@dataclass(frozen=True)
class Workload:
    name: str
    make: Callable[[], Runnable[Any, Any]]
    inputs: int = 1  # >1: that many concurrent calls (astream) or one batch (sync)
    tokens: int = 0  # chunks the model streams per call, for µs/token

    def astream(self, runnable: Runnable[Any, Any]) -> Callable[[], Any]:
        """A coroutine factory: one timed unit of `astream` work; returns (chunks, ttft)."""
        if self.inputs == 1:
            return lambda: consume(runnable.astream(INPUT))
        return lambda: gather(consume(runnable.astream(INPUT)) for _ in range(self.inputs))

    def astream_events(self, runnable: Runnable[Any, Any]) -> Callable[[], Any]:
        def root_chunks() -> AsyncIterator[Any]:
            return _root_stream(runnable.astream_events(INPUT, version="v2"))

        if self.inputs == 1:
            return lambda: consume(root_chunks())
        return lambda: gather(consume(root_chunks()) for _ in range(self.inputs))

    def stream(self, runnable: Runnable[Any, Any]) -> Callable[[], tuple[int, int | None]]:
        if self.inputs == 1:
            return lambda: consume_sync(runnable.stream(INPUT))
        return lambda: (len(runnable.batch([INPUT] * self.inputs)), None)

    def invoke(self, runnable: Runnable[Any, Any]) -> Callable[[], tuple[int, int | None]]:
        if self.inputs == 1:
            return lambda: (int(runnable.invoke(INPUT) is not None), None)
        return lambda: (len(runnable.batch([INPUT] * self.inputs)), None)


WORKLOADS = {
    "chat 1k": Workload("chat 1k", lambda: chat_chain(1_000), tokens=1_000),
    "chat 10k": Workload("chat 10k", lambda: chat_chain(10_000), tokens=10_000),
    "parallel 4×500": Workload("parallel 4×500", lambda: parallel_chain(4, 500), tokens=2_000),
    "lambdas 50": Workload("lambdas 50", lambda: lambda_chain(50)),
    "batch 100": Workload("batch 100", lambda: chat_chain(20), inputs=100, tokens=2_000),
}
QUICK = {
    "chat 200": Workload("chat 200", lambda: chat_chain(200), tokens=200),
    "parallel 4×50": Workload("parallel 4×50", lambda: parallel_chain(4, 50), tokens=200),
    "lambdas 50": WORKLOADS["lambdas 50"],
    "batch 10": Workload("batch 10", lambda: chat_chain(20), inputs=10, tokens=200),
}


async def _root_stream(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
    async for event in events:
        if event["event"] == "on_chain_stream" and not event["parent_ids"]:
            yield event["data"]["chunk"]


async def consume(stream: AsyncIterator[Any]) -> tuple[int, int | None]:
    """Chunks read, and ns to the first one (measured from the call)."""
    start = time.perf_counter_ns()
    first = None
    count = 0
    async for _ in stream:
        if first is None:
            first = time.perf_counter_ns() - start
        count += 1
    return count, first


async def gather(runs: Iterator[Any]) -> tuple[int, int | None]:
    results = await asyncio.gather(*runs)
    firsts = [f for _, f in results if f is not None]
    return sum(c for c, _ in results), (min(firsts) if firsts else None)


def consume_sync(stream: Iterator[Any]) -> tuple[int, int | None]:
    start = time.perf_counter_ns()
    first = None
    count = 0
    for _ in stream:
        if first is None:
            first = time.perf_counter_ns() - start
        count += 1
    return count, first
