"""Record a chain to JSONL, then replay it: as v2 events, as a stand-in runnable, and
re-exported to a second file with its original ids and timestamps. Offline.

Run: `.venv/bin/python examples/replay_trace.py [--dir DIR]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import read_traces, reexport, replay_events, replay_runnable


async def count_events(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for event in replay_events(path, speed=0):
        counts[event["event"]] = counts.get(event["event"], 0) + 1
    return counts


def main(directory: Path) -> int:
    recorded, copied = directory / "recorded.jsonl", directory / "reexported.jsonl"
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content="Parrots repeat what they hear .")])
    )
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()
    with JsonlExporter(recorded) as exporter:
        original = list(trace(chain, exporters=[exporter]).stream({"topic": "parrots"}))
    print(f"recorded {len(original)} chunks to {recorded}")

    print("replayed as v2 events:", asyncio.run(count_events(recorded)))

    stand_in = replay_runnable(recorded, speed=0)
    replayed = list(stand_in.stream({"topic": "anything"}))
    print(f"replayed as a runnable: {''.join(replayed)!r}")

    with JsonlExporter(copied) as second:
        reexport(recorded, [second])
    same = read_traces(copied)[0].spans == read_traces(recorded)[0].spans
    print(f"re-exported to {copied}: spans {'identical' if same else 'DIFFERENT'}")
    return 0 if replayed == original and same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if args.dir is not None:
        sys.exit(main(args.dir))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
