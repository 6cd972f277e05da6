"""Token counts where a reader looks for them: per span by direction (`show`), a trace's
totals on its root (`stats`, `stats --json`); and where `html` writes by default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcel_trace", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": ""},
    )


def model(text: str, tokens_in: int | None, tokens_out: int | None) -> GenericFakeChatModel:
    usage = None
    if tokens_in is not None and tokens_out is not None:
        usage = {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
    message = AIMessage(text, usage_metadata=usage)  # type: ignore[arg-type]
    return GenericFakeChatModel(messages=iter([message]))


def record(path: Path, *, second_reports_usage: bool = True) -> None:
    """One trace: two model calls in parallel under one root, reporting 3/5 and 4/6 tokens."""
    prompt = ChatPromptTemplate.from_template("about {topic}")
    second = (4, 6) if second_reports_usage else (None, None)
    chain = RunnableParallel(
        short=prompt | model("a", 3, 5) | StrOutputParser(),
        long=prompt | model("b", *second) | StrOutputParser(),
    )
    with JsonlExporter(path) as exporter:
        trace(chain, exporters=[exporter], name="pair").invoke({"topic": "parrots"})


def test_show_gives_each_model_span_its_input_and_output_tokens(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    record(path)
    done = cli("show", str(path))
    assert done.returncode == 0, done.stderr
    assert "tokens 7 in / 11 out" in done.stdout.splitlines()[0]  # the trace's header
    models = [line for line in done.stdout.splitlines() if "GenericFakeChatModel" in line]
    assert len(models) == 2
    assert any("chat_model" in line and "tokens 3 in / 5 out" in line for line in models)
    assert any("chat_model" in line and "tokens 4 in / 6 out" in line for line in models)


def test_stats_json_gives_the_root_its_traces_token_totals(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    record(path)
    record(path)
    done = cli("stats", str(path), "--json")
    assert done.returncode == 0, done.stderr
    (root,) = [row for row in json.loads(done.stdout) if row["level"] == "root"]
    assert root["name"] == "RunnableParallel<short,long>"
    assert root["count"] == 2
    assert (root["input_tokens"], root["output_tokens"], root["total_tokens"]) == (14, 22, 36)
    assert root["spans_with_usage"] == 4  # the model calls whose usage the totals add up
    nested = [row for row in json.loads(done.stdout) if row["name"] == "GenericFakeChatModel"]
    assert sum(row["input_tokens"] for row in nested) == 14


def test_stats_table_marks_a_root_total_with_a_model_call_that_reported_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    record(path, second_reports_usage=False)
    done = cli("stats", str(path))
    assert done.returncode == 0, done.stderr
    (root,) = [line.split() for line in done.stdout.splitlines() if " root " in line]
    assert root[-3:] == ["≥3", "≥5", "≥8"]


@pytest.mark.parametrize(
    ("name", "page"),
    [
        ("runs.jsonl", "runs.html"),
        ("runs.jsonl.gz", "runs.html"),
        ("runs.log", "runs.log.html"),
        ("runs", "runs.html"),
    ],
)
def test_html_writes_beside_the_file_with_html_for_jsonl(
    tmp_path: Path, name: str, page: str
) -> None:
    from lcel_trace.cli.html import default_output

    assert default_output(tmp_path / name) == tmp_path / page


def test_html_without_output_writes_runs_html_for_runs_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    record(path)
    done = cli("html", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote {tmp_path / 'runs.html'} (1 traces)\n"
    assert "<!DOCTYPE html>" in (tmp_path / "runs.html").read_text(encoding="utf-8")
