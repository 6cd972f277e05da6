"""Text beyond ASCII (CJK, accents, emoji, right-to-left) streams through a traced
ChatOpenAI over real HTTP and comes back from the JSONL file unchanged."""

from __future__ import annotations

from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import read_traces
from lcel_trace.testing.openai_server import OpenAIServer

ANSWER = "鹦鹉会说话。Le perroquet à Zürich dit 🦜 שלום"


def test_a_non_ascii_stream_is_traced_and_read_back_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    with OpenAIServer([ANSWER]) as server:
        model = ChatOpenAI(
            base_url=server.base_url,
            api_key="sk-test",  # type: ignore[arg-type]
            model="fake-gpt",
            max_retries=0,
            stream_usage=True,
        )
        chain = (
            ChatPromptTemplate.from_template("讲个关于{topic}的笑话") | model | StrOutputParser()
        )
        plain = list(chain.stream({"topic": "鹦鹉"}))
        with JsonlExporter(out) as exporter, capture() as cap:
            traced = list(trace(chain, exporters=[exporter]).stream({"topic": "鹦鹉"}))
    assert traced == plain
    assert "".join(traced) == ANSWER
    assert "鹦" in traced  # one CJK character per token, as tokenizers mostly split them
    assert server.requests[-1]["messages"][0]["content"] == "讲个关于鹦鹉的笑话"
    (written,) = read_traces(out)
    assert written.spans == cap.traces[0].spans
    assert written.root.outputs == ANSWER
    assert written.root.inputs == {"topic": "鹦鹉"}
