"""The `lcel-trace` command's options, driven through `main()` as a user would type them:
selection, `show --content`, token totals, `stats` by model and level, empty files,
`--version`, help text, a closed pipe, and a start that imports neither LangChain nor rich."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

import lcel_trace.cli
import lcel_trace.cli.common
from lcel_trace import trace
from lcel_trace.cli import main
from lcel_trace.exporters import JsonlExporter
from lcel_trace.reader import read_traces


def usage(i: int, o: int) -> dict[str, int]:
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}


def record(path: Path, replies: list[AIMessage], name: str = "joke") -> None:
    model = GenericFakeChatModel(messages=iter(replies))
    chain = ChatPromptTemplate.from_template("{q}") | model | StrOutputParser()
    with JsonlExporter(path) as exporter:
        traced = trace(chain, exporters=[exporter], name=name)
        for i in range(len(replies)):
            traced.invoke({"q": str(i)})


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    """Two `joke` traces, one `riddle` trace, one failing `boom` trace, in that order."""
    path = tmp_path / "mixed.jsonl"
    record(path, [AIMessage(content="a", usage_metadata=usage(2, 3))] * 2)  # type: ignore[typeddict-item]
    record(path, [AIMessage(content="b", usage_metadata=usage(4, 5))], name="riddle")  # type: ignore[typeddict-item]

    def boom(_: object) -> None:
        raise ValueError("boom")

    with JsonlExporter(path) as exporter, pytest.raises(ValueError, match="boom"):
        trace(RunnableLambda(boom), exporters=[exporter]).invoke("x")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main([*argv, "--json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


# -- selection -------------------------------------------------------------------------------


def test_selection_by_status_name_and_last(
    mixed_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(mixed_file)
    assert [t["name"] for t in run_json(capsys, "show", path, "--status", "error")] == ["boom"]
    assert [t["name"] for t in run_json(capsys, "show", path, "--name", "joke")] == ["joke"] * 2
    # the root span's name selects too
    assert len(run_json(capsys, "show", path, "--name", "RunnableSequence")) == 3
    assert [t["name"] for t in run_json(capsys, "show", path, "--last", "2")] == [
        "riddle",
        "boom",
    ]
    assert [t["name"] for t in run_json(capsys, "show", path, "--status", "ok", "--last", "1")] == [
        "riddle"
    ]
    rows = run_json(capsys, "stats", path, "--name", "riddle")
    assert {r["name"] for r in rows} == {
        "RunnableSequence",
        "ChatPromptTemplate",
        "GenericFakeChatModel",
        "StrOutputParser",
    }
    assert all(r["count"] == 1 for r in rows)


def test_selection_by_trace_id_prefix(mixed_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    riddle = read_traces(mixed_file)[2]
    shown = run_json(capsys, "show", str(mixed_file), "--trace", riddle.trace_id[:8].upper())
    assert [t["trace_id"] for t in shown] == [riddle.trace_id]


def test_a_trace_id_that_matches_nothing_is_bad_input(
    mixed_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(mixed_file), "--trace", "zzzz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no trace id starts with 'zzzz'" in err


def test_a_selection_that_matches_nothing_says_so_and_exits_0(
    mixed_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(mixed_file), "--status", "cancelled"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{mixed_file}: no traces match the selection\n"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_last_must_be_a_positive_count(
    mixed_file: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", str(mixed_file), "--last", value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_selection_helpers_are_reusable(mixed_file: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    lcel_trace.cli.common.add_selection_args(parser)
    args = parser.parse_args([str(mixed_file), "--status", "ok", "--last", "2"])
    chosen = lcel_trace.cli.common.select(read_traces(mixed_file), args)
    assert [t.name for t in chosen] == ["joke", "riddle"]


# -- empty files -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "stats"])
def test_an_empty_file_says_no_traces_and_exits_0(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    assert main([command, str(empty)]) == 0
    assert capsys.readouterr() == ("", f"{empty}: no traces\n")
    assert main([command, str(empty), "--json"]) == 0
    assert capsys.readouterr() == ("[]\n", f"{empty}: no traces\n")


# -- show ------------------------------------------------------------------------------------


def test_show_headers_carry_token_totals_and_unknown_usage_is_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens.jsonl"
    record(path, [AIMessage(content="a", usage_metadata=usage(2, 3))])  # type: ignore[typeddict-item]
    record(path, [AIMessage(content="b")], name="silent")
    record(path, [AIMessage(content="z", usage_metadata=usage(0, 0))], name="zero")  # type: ignore[typeddict-item]
    assert main(["show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    joke, silent, zero = [line for line in lines if line[0] not in " └"]
    assert joke.startswith("joke trace ")
    assert joke.endswith("tokens 2 in / 3 out")
    assert silent.startswith("silent trace ")
    assert silent.endswith("tokens – in / – out")
    assert zero.startswith("zero trace ")
    assert zero.endswith("tokens 0 in / 0 out")
    assert main(["show", str(path), "--name", "silent"]) == 0
    assert "GenericFakeChatModel (chat_model, " in (out := capsys.readouterr().out)
    assert "tokens unknown" in out
    shown = run_json(capsys, "show", str(path))
    assert [(t["input_tokens"], t["output_tokens"]) for t in shown] == [
        (2, 3),
        (None, None),
        (0, 0),
    ]


def test_show_content_puts_inputs_outputs_and_tool_calls_under_each_span(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    path = tmp_path / "content.jsonl"
    reply = AIMessage(
        content="line one\nline two " + "x" * 500,
        tool_calls=[{"name": "search", "args": {"q": "parrots"}, "id": "call-1"}],
    )
    record(path, [reply])
    assert main(["show", "--content", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 72
    model = next(i for i, line in enumerate(lines) if "GenericFakeChatModel" in line)
    assert lines[model + 1].endswith("in: messages=human: 0")
    assert "out: ai: line one\\nline two xxx" in lines[model + 2]
    assert lines[model + 2].endswith("…")
    assert lines[model + 3].endswith('tool calls: search({"q": "parrots"})')
    prompt = next(i for i, line in enumerate(lines) if "ChatPromptTemplate" in line)
    assert lines[prompt + 1].endswith("in: q=0")


def test_show_content_names_streamed_messages_by_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "streamed.jsonl"
    model = GenericFakeChatModel(messages=iter([AIMessage(content="a b")]))
    with JsonlExporter(path) as exporter:
        assert list(trace(model, exporters=[exporter]).stream("hi"))
    assert main(["show", "--content", str(path)]) == 0
    out = capsys.readouterr().out
    assert "out: ai: a b" in out
    assert "Chunk" not in out


def test_show_content_shows_the_error(mixed_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--content", str(mixed_file), "--status", "error"]) == 0
    assert "error: ValueError: boom" in capsys.readouterr().out


# -- stats -----------------------------------------------------------------------------------


def test_stats_groups_by_model_and_level_with_token_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "models.jsonl"
    replies = [
        AIMessage(
            content="a", response_metadata={"model_name": "m-small"}, usage_metadata=usage(1, 2)
        ),  # type: ignore[typeddict-item]
        AIMessage(
            content="b", response_metadata={"model_name": "m-large"}, usage_metadata=usage(10, 20)
        ),  # type: ignore[typeddict-item]
        AIMessage(
            content="c", response_metadata={"model_name": "m-large"}, usage_metadata=usage(5, 5)
        ),  # type: ignore[typeddict-item]
        AIMessage(content="d", response_metadata={"model_name": "m-local"}),
        AIMessage(
            content="e", response_metadata={"model_name": "m-mixed"}, usage_metadata=usage(3, 4)
        ),  # type: ignore[typeddict-item]
        AIMessage(content="f", response_metadata={"model_name": "m-mixed"}),
    ]
    record(path, replies)
    rows = run_json(capsys, "stats", str(path))
    by_key = {(r["name"], r["model"], r["level"]): r for r in rows}
    assert rows[0]["level"] == "root"
    assert by_key["RunnableSequence", None, "root"]["count"] == 6
    assert by_key["ChatPromptTemplate", None, "nested"]["count"] == 6
    large = by_key["GenericFakeChatModel", "m-large", "nested"]
    assert (
        large["count"],
        large["input_tokens"],
        large["output_tokens"],
        large["total_tokens"],
    ) == (
        2,
        15,
        25,
        40,
    )
    assert by_key["GenericFakeChatModel", "m-small", "nested"]["total_tokens"] == 3
    local = by_key["GenericFakeChatModel", "m-local", "nested"]
    assert (local["input_tokens"], local["total_tokens"], local["spans_with_usage"]) == (
        None,
        None,
        0,
    )
    mixed = by_key["GenericFakeChatModel", "m-mixed", "nested"]
    assert (mixed["total_tokens"], mixed["spans_with_usage"], mixed["count"]) == (7, 1, 2)

    assert main(["stats", str(path)]) == 0
    header, *table = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "name", "model", "level", "count", "error_rate", "p50_ms", "p95_ms", "p99_ms",
        "ttfc_p50", "ttfc_p95", "ttfc_p99", "ttft_p50", "ttft_p95", "ttft_p99",
        "cost_usd", "usd/trace", "tokens_in", "tokens_out", "tokens_total",
    ]  # fmt: skip
    cells = {(c[0], c[1], c[2]): c for c in (line.split() for line in table)}
    assert cells["GenericFakeChatModel", "m-large", "nested"][-3:] == ["15", "25", "40"]
    assert cells["GenericFakeChatModel", "m-local", "nested"][-3:] == ["–", "–", "–"]
    assert cells["GenericFakeChatModel", "m-mixed", "nested"][-3:] == ["≥3", "≥4", "≥7"]
    # a root carries its traces' totals: all model calls, some of which reported nothing
    assert cells["RunnableSequence", "–", "root"][-3:] == ["≥19", "≥31", "≥50"]


# -- start, version, help, pipes -------------------------------------------------------------


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"lcel-trace {version('lcel-trace')}\n"


def test_every_command_and_argument_has_help() -> None:
    import argparse

    parser = lcel_trace.cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {c.dest for c in commands._choices_actions} == set(commands.choices)
    assert all(c.help for c in commands._choices_actions)
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"


def test_the_cli_module_imports_neither_langchain_nor_rich_nor_opentelemetry() -> None:
    """Checked with the package's own `__init__` (which imports the tracer) stubbed out:
    `--help` and `--version` must cost only argparse and the standard library."""
    package = Path(lcel_trace.cli.__file__).parents[1]
    probe = f"""
import contextlib, io, sys, types
package = types.ModuleType("lcel_trace")
package.__path__ = [{str(package)!r}]
sys.modules["lcel_trace"] = package
import lcel_trace.cli
for argv in (["--help"], ["--version"], ["show", "--help"]):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        lcel_trace.cli.main(argv)
heavy = ("langchain_core", "rich", "opentelemetry", "pydantic", "lcel_trace.reader")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "[]\n", result.stderr


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """More output than a pipe holds, so the command is still writing when the pipe closes."""
    one = tmp_path / "one.jsonl"
    record(one, [AIMessage(content="a", usage_metadata=usage(2, 3))])  # type: ignore[typeddict-item]
    lines = one.read_text().splitlines(keepends=True)
    (trace_id,) = {json.loads(line)["trace_id"] for line in lines}
    big = tmp_path / "big.jsonl"
    with big.open("w") as handle:
        for i in range(800):
            handle.writelines(line.replace(trace_id, f"{i:032x}") for line in lines)
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcel_trace", "show", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().startswith(b"joke trace ")
    proc.stdout.close()
    code = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert (code, err) == (141, "")
