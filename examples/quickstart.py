"""Trace a prompt | chat model | parser chain: stream it live, show the span tree, write JSONL.

Offline by default: LangChain's fake chat model streams a joke character by character.
Run it with `bash examples/quickstart.sh` (sets itself up), or with the package
installed: `python examples/quickstart.py [--out quickstart-trace.jsonl]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import read_traces

JOKE = "为什么鹦鹉会说话？因为它们不想被当成哑巴鸟！"


def build_chain() -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_template("给我讲一个关于{topic}的笑话")
    model = FakeListChatModel(responses=[JOKE], sleep=0.02)
    return prompt | model | StrOutputParser()


async def stream_live(traced: Runnable[dict[str, str], str]) -> None:
    async for chunk in traced.astream({"topic": "鹦鹉"}):
        print(chunk, end="|", flush=True)
    print("\n")


def main(out: Path) -> int:
    out.unlink(missing_ok=True)
    with JsonlExporter(out) as exporter, capture() as captured:
        asyncio.run(stream_live(trace(build_chain(), exporters=[exporter], name="joke")))
    # Leaving the `with` flushed and closed the exporter: the file is complete.
    run = captured.traces[0]
    print(f"trace {run.trace_id} ({run.name}): {run.status}")
    print(run.tree().render())
    written = read_traces(out)[0]
    lines = len(out.read_text(encoding="utf-8").splitlines())
    same = written.spans == run.spans and written.events == run.events
    print(f"\nwrote {lines} lines to {out}; read back: {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("quickstart-trace.jsonl"))
    sys.exit(main(parser.parse_args().out))
