"""What `JsonlExporter.on_batch` costs per traced call, converting path vs fast path.

    .venv/bin/python tests/benchmarks/jsonl_encode.py [rounds] [calls]

The hand-offs a traced loop of `calls` invokes gives its exporter are recorded once;
then each round encodes and writes all of them with a fresh `JsonlExporter` twice, in
alternating order: once with the converting path forced (`to_jsonable` on every
content value, then orjson: the writer before `serialize.proven_json`), once as it
ships. CPU per call (`time.process_time`), median and best of the rounds, and the
ratio of the medians; the two files must be byte for byte the same.

Workloads: `per-call`, the 4-run chain of `per_call.py` (14 records a call); `chat`, the
same chain with ten earlier messages in its prompt (each message written in the prompt
value and again in the model's input); `rag`, a retriever handing six 600-character
documents to the same chain (LangChain objects, which both paths write with the same
Python); `json`, three lambdas handing on twenty search results as plain dicts (what
the fast path writes in C).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent))
from per_call import INPUT
from per_call import chain as per_call_chain

from lcel_trace import jsonl_codec, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.span import Record

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 9
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def rag_chain() -> Any:
    """retriever | prompt | FakeListChatModel | StrOutputParser, six documents a call."""
    from langchain_core.documents import Document
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    text = "Parrots are clever birds that mimic sounds and live for decades. " * 9

    def retrieve(question: str) -> list[Document]:
        return [
            Document(
                page_content=f"{i}: {text}",
                metadata={"source": f"doc-{i}.md", "score": 0.5 + i / 10, "page": i},
            )
            for i in range(6)
        ]

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context:\n{context}"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=["They mimic sounds and live long. " * 4])
    retriever = RunnableLambda(retrieve)
    return (
        {"context": retriever, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )


def chat_chain() -> tuple[Any, Any]:
    """A chat prompt with ten earlier messages | FakeListChatModel | StrOutputParser:
    each message is in the prompt value and again in the model's input."""
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

    history = [
        message
        for i in range(5)
        for message in (
            HumanMessage(content=f"Question {i} about parrots and their voices?"),
            AIMessage(content=f"Answer {i}: they learn sounds from the birds around them."),
        )
    ]
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You know birds."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = FakeListChatModel(responses=["They mimic what they hear."])
    chain = prompt | model | StrOutputParser()
    return chain, {"history": history, "question": "And cockatoos?"}


def json_chain() -> Any:
    """Three lambdas handing on a search API's JSON answer: twenty results of eight
    fields, the kind of plain data tools and parsers pass along."""
    from langchain_core.runnables import RunnableLambda

    def search(query: str) -> dict[str, Any]:
        return {
            "query": query,
            "results": [
                {
                    "id": f"r-{i}",
                    "title": f"Parrot fact {i}",
                    "url": f"https://example.org/parrots/{i}",
                    "score": 0.9 - i / 50,
                    "tags": ["birds", "speech"],
                    "published": "2024-05-01",
                    "snippet": "Parrots learn sounds from the birds around them. " * 2,
                    "source": {"name": "example", "rank": i},
                }
                for i in range(20)
            ],
        }

    def rank(answer: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(answer["results"], key=lambda r: -r["score"])[:10]

    def cite(results: list[dict[str, Any]]) -> dict[str, Any]:
        return {"answer": results[0]["snippet"], "sources": [r["url"] for r in results]}

    return RunnableLambda(search) | RunnableLambda(rank) | RunnableLambda(cite)


def record_batches(runnable: Any, call_input: Any, tmp: Path) -> list[tuple[Record, ...]]:
    """The hand-offs `CALLS` traced invokes give a JSONL exporter."""
    batches: list[tuple[Record, ...]] = []

    class Keep(JsonlExporter):
        def on_batch(self, records: Sequence[Record]) -> None:
            batches.append(tuple(records))

    keep = Keep(tmp / "kept.jsonl")
    traced = trace(runnable, exporters=[keep])
    for _ in range(CALLS):
        traced.invoke(call_input)
    keep.force_flush(60)
    keep.shutdown()
    return batches


def encode_all(batches: list[tuple[Record, ...]], path: Path, *, converting: bool) -> float:
    """CPU µs per call for one exporter to encode and write every batch."""
    exporter = JsonlExporter(path)
    patch = mock.patch.object(jsonl_codec, "orjson", None) if converting else None
    if patch is not None:
        patch.start()
    try:
        start = time.process_time()
        for batch in batches:
            exporter.on_batch(batch)
        spent = time.process_time() - start
    finally:
        if patch is not None:
            patch.stop()
    exporter.shutdown()
    return spent / CALLS * 1e6


def measure(name: str, batches: list[tuple[Record, ...]], tmp: Path) -> None:
    timings: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(ROUNDS):
        order = (True, False) if round_ % 2 else (False, True)
        for converting in order:
            path = tmp / f"{name}-{converting}-{round_}.jsonl"
            timings[converting].append(encode_all(batches, path, converting=converting))
        same = (tmp / f"{name}-True-{round_}.jsonl").read_bytes() == (
            tmp / f"{name}-False-{round_}.jsonl"
        ).read_bytes()
        if not same:
            raise SystemExit(f"{name}: the two paths wrote different bytes (round {round_})")
    records = sum(map(len, batches)) / CALLS
    old, new = statistics.median(timings[True]), statistics.median(timings[False])
    print(
        f"{name:<9} {records:>5.0f}  {old:>9.1f} {min(timings[True]):>7.1f}"
        f"  {new:>9.1f} {min(timings[False]):>7.1f}  {old / new:>5.2f}x  identical"
    )


def main() -> None:
    chat, chat_input = chat_chain()
    workloads: dict[str, tuple[Callable[[], Any], Any]] = {
        "per-call": (per_call_chain, INPUT),
        "chat": (lambda: chat, chat_input),
        "rag": (rag_chain, "Why do parrots talk?"),
        "json": (json_chain, "parrots"),
    }
    print(f"on_batch CPU µs per call, {ROUNDS} rounds of {CALLS} calls")
    print("workload  recs  converting    best       fast    best  ratio  bytes")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, (make, call_input) in workloads.items():
            measure(name, record_batches(make(), call_input, tmp), tmp)


if __name__ == "__main__":
    main()
