"""Trace prompt | ChatOpenAI | parser: stream it live, show the span tree, write JSONL.

Offline by default: `ChatOpenAI` talks real HTTP to lcel-trace's local OpenAI-compatible
server, which streams a joke token by token. With OPENAI_API_KEY set (and optionally
OPENAI_BASE_URL and OPENAI_MODEL) the same chain talks to that service instead.
Run it with `bash examples/quickstart.sh` (sets itself up), or with the package and its
`examples` extra installed: `python examples/quickstart.py [--out quickstart-trace.jsonl]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import read_traces
from lcel_trace.testing.openai_server import OpenAIServer

JOKE = "Why do parrots make great storytellers? They always repeat the best parts!"


@contextlib.contextmanager
def chat_model() -> Iterator[ChatOpenAI]:
    """The real service when OPENAI_API_KEY is set, else the local server."""
    if os.environ.get("OPENAI_API_KEY"):
        # With a custom OPENAI_BASE_URL, langchain-openai streams usage only when asked.
        yield ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), stream_usage=True)
        return
    with OpenAIServer([JOKE], token_delay_s=0.02) as server:
        yield ChatOpenAI(
            base_url=server.base_url,
            api_key="sk-local-test-server",  # type: ignore[arg-type]
            model="fake-gpt",
            stream_usage=True,  # custom base_url: usage is streamed only when asked
        )


def build_chain(model: ChatOpenAI) -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_template("Tell me a joke about {topic}")
    return prompt | model | StrOutputParser()


async def stream_live(traced: Runnable[dict[str, str], str]) -> None:
    async for chunk in traced.astream({"topic": "parrots"}):
        print(chunk, end="|", flush=True)
    print("\n")


def main(out: Path) -> int:
    out.unlink(missing_ok=True)
    with chat_model() as model, JsonlExporter(out) as exporter, capture() as captured:
        asyncio.run(stream_live(trace(build_chain(model), exporters=[exporter], name="joke")))
    # Leaving the `with` flushed and closed the exporter: the file is complete.
    run = captured.traces[0]
    print(f"trace {run.trace_id} ({run.name}): {run.status}")
    print(run.tree().render())
    written = read_traces(out)[0]
    lines = len(out.read_text(encoding="utf-8").splitlines())
    same = written.spans == run.spans and written.trace_events == run.trace_events
    print(f"\nwrote {lines} lines to {out}; read back: {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("quickstart-trace.jsonl"))
    sys.exit(main(parser.parse_args().out))
