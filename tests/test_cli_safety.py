"""The `lcel-trace` command on hostile trace files: every string from the file is printed
as text, control and bidi characters made visible, and nothing in it acts on the terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.cli import main
from lcel_trace.exporters import JsonlExporter
from lcel_trace.terminal import visible

# Window title (OSC 0 ... BEL), clear screen (CSI 2J), an OSC 8 hyperlink, a C1 CSI,
# DEL, a right-to-left override, and text that rich would read as markup.
HOSTILE = (
    "a\x1b]0;pwned\x07 \x1b[2J \x1b]8;;https://evil\x1b\\click\x1b]8;;\x1b\\ "
    "\x9b31m \x7f \u202eevil\u202c \u2066iso\u2069 [/] [link=https://evil]x[/link] "
    "list[int] [bold red]loud[/]"
)
LITERALS = ("[/]", "[link=https://evil]x[/link]", "list[int]", "[bold red]loud[/]")
ESCAPED = ("\\x1b]0;pwned\\x07", "\\x1b[2J", "\\x1b]8;;https://evil", "\\x9b", "\\x7f", "\\u202e")
# Everything a terminal could act on: C0 except newline, DEL, C1, bidi and invisible marks.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def hostile_chain_runs(path: Path) -> None:
    """Names, model, content and error message all carry HOSTILE."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content=HOSTILE,
                    response_metadata={"model_name": HOSTILE},
                    tool_calls=[{"name": HOSTILE, "args": {"q": HOSTILE}, "id": "1"}],
                    usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
                )
            ]
        )  # type: ignore[arg-type]
    )

    def explode(_: object) -> None:
        raise ValueError(HOSTILE)

    chain = (
        ChatPromptTemplate.from_template("{q}")
        | model.with_config(run_name=HOSTILE)
        | RunnableLambda(explode, name=HOSTILE)
    )
    with JsonlExporter(path) as exporter, pytest.raises(ValueError, match="pwned"):
        trace(chain, exporters=[exporter], name=HOSTILE).invoke({"q": HOSTILE})


@pytest.fixture
def hostile_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.jsonl"
    hostile_chain_runs(path)
    return path


def assert_safe(text: str, *, whole: bool = True) -> None:
    """No raw control or bidi character; the escapes and literal brackets shown (all of
    them when `whole`, else those in the start of HOSTILE: stats cuts long names)."""
    assert RAW.search(text) is None, RAW.findall(text)
    assert ESCAPED[0] in text
    if whole:
        for literal in LITERALS:
            assert literal in text
        for escape in ESCAPED:
            assert escape in text


def test_visible_spells_out_controls_and_bidi_and_leaves_text_alone() -> None:
    assert visible("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert visible("\u202eabc\u2066\u200f\u061c") == "\\u202eabc\\u2066\\u200f\\u061c"
    assert visible("tab\there\nnew\x7f\x85") == "tab\\there\\nnew\\x7f\\x85"
    assert visible("[link=x]list[int][/] 为什么 é ✓") == "[link=x]list[int][/] 为什么 é ✓"


@pytest.mark.parametrize(
    "command",
    [["show"], ["show", "--content"], ["stats"]],
    ids=["show", "show-content", "stats"],
)
def test_hostile_strings_print_as_visible_text(
    hostile_file: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, str(hostile_file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert_safe(out, whole=command[0] != "stats")


def test_show_content_shows_hostile_content_tool_calls_and_error(
    hostile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--content", str(hostile_file)]) == 0
    out = capsys.readouterr().out
    assert "tool calls: " in out
    assert "error: ValueError: " in out


def test_json_output_keeps_hostile_strings_exact_and_escaped(
    hostile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--json", str(hostile_file)]) == 0
    out = capsys.readouterr().out
    assert RAW.search(out) is None
    (shown,) = json.loads(out)
    assert shown["name"] == HOSTILE
    (model,) = [c for c in shown["root"]["children"] if c["run_type"] == "chat_model"]
    assert model["model"] == HOSTILE


def test_tail_prints_hostile_traces_as_visible_text(hostile_file: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lcel_trace",
            "tail",
            str(hostile_file),
            "--from-start",
            "--exit-after",
            "1",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert_safe(result.stdout)


def test_replay_console_output_has_no_raw_controls(hostile_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lcel_trace", "replay", str(hostile_file), "--console"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert RAW.search(result.stdout + result.stderr) is None
    assert "[link=https://evil]x[/link]" in result.stdout


def test_error_lines_quote_file_names_and_content_visibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "evil\x1b]0;x\x07\u202e.jsonl"
    assert main(["show", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert RAW.search(err) is None
    assert "evil\\x1b]0;x\\x07\\u202e.jsonl" in err

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": HOSTILE, "trace_id": "t"}) + "\n")
    assert main(["stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert RAW.search(err) is None


def test_usage_errors_quote_arguments_visibly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["show", "x.jsonl", "--status", "\x1b[2J"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "\\x1b[2J" in err
    assert RAW.search(err) is None
