"""How fast a cassette replays the ReAct agent of tests/test_cassette_agent.py, against
the same agent run live against the bundled OpenAI-compatible HTTP server.

    python tests/benchmarks/cassette_speed.py [--rounds 7]

The live side is a best case for "live": a local server on loopback answering at once
(a real API takes 0.3-3 s per call). Each round runs the agent live once (mode
"record") and replays it once (mode "replay", server stopped); warm-up rounds are not
counted. Prints the median and range per side and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from langchain_core.messages import HumanMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lcel_trace.cassette import cassette
from lcel_trace.testing.openai_server import OpenAIServer
from tests.test_cassette_agent import QUESTION, SCRIPT, build_agent


def one_round(folder: Path, number: int) -> tuple[float, float]:
    path = folder / f"agent-{number}.jsonl"
    with OpenAIServer(SCRIPT) as server:
        agent = build_agent(server.base_url)
        with cassette(path, "record"):
            started = time.perf_counter()
            agent.invoke({"messages": [HumanMessage(QUESTION)]})
            live = time.perf_counter() - started
    with cassette(path, "replay"):
        started = time.perf_counter()
        agent.invoke({"messages": [HumanMessage(QUESTION)]})
        replay = time.perf_counter() - started
    if len(server.requests) != len(SCRIPT):
        raise SystemExit(f"expected {len(SCRIPT)} HTTP requests, saw {len(server.requests)}")
    return live, replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = [one_round(Path(folder), i) for i in range(args.warmup + args.rounds)][
            args.warmup :
        ]
    live = [r[0] * 1e3 for r in rounds]
    replay = [r[1] * 1e3 for r in rounds]
    ratios = [a / b for a, b in zip(live, replay, strict=True)]
    print(f"agent (3 model calls, 2 tools, 1 retriever), {args.rounds} rounds")
    print(f"live   median {statistics.median(live):7.1f} ms  ({min(live):.1f}-{max(live):.1f})")
    print(
        f"replay median {statistics.median(replay):7.1f} ms  ({min(replay):.1f}-{max(replay):.1f})"
    )
    print(f"live / replay, median of per-round ratios: {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
