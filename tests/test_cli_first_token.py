"""`show` and `stats` report time to first token beside time to first chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcel_trace.cli import main
from lcel_trace.records import Record, encode_line
from lcel_trace.span import Span, TraceEnd, TraceStart

T0 = 1_800_000_000_000_000_000
TRACE_ID = "cd" * 16
ROOT, MODEL = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
MS = 1_000_000


@pytest.fixture
def streamed(tmp_path: Path) -> Path:
    """A model whose first chunk (an empty role chunk) came at 10 ms, its first text at 25."""
    root = Span(TRACE_ID, ROOT, None, "chain", "chain", T0, T0 + 100 * MS, "ok",
                first_chunk_ns=T0 + 12 * MS, first_token_ns=T0 + 12 * MS)  # fmt: skip
    model = Span(TRACE_ID, MODEL, ROOT, "model", "chat_model", T0, T0 + 90 * MS, "ok",
                 first_chunk_ns=T0 + 10 * MS, first_token_ns=T0 + 25 * MS)  # fmt: skip
    records: list[Record] = [
        TraceStart(TRACE_ID, "t", T0, ROOT),
        model,
        root,
        TraceEnd(TRACE_ID, "ok", T0 + 100 * MS, 2, 0),
    ]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(encode_line(r) for r in records))
    return path


def test_show_names_first_chunk_only_when_it_came_before_the_first_token(
    streamed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(streamed)]) == 0
    out = capsys.readouterr().out
    assert "model (chat_model, 90.0 ms, first chunk 10.0 ms, first token 25.0 ms" in out
    assert "chain (chain, 100.0 ms, first token 12.0 ms)" in out


def test_show_json_has_both_times(streamed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--json", str(streamed)]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    (model,) = shown["root"]["children"]
    assert (model["first_chunk_ms"], model["first_token_ms"]) == (10.0, 25.0)


def test_stats_has_first_chunk_and_first_token_percentiles(
    streamed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--json", str(streamed)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    model = rows["model"]
    assert [model[f"first_chunk_p{q}_ms"] for q in (50, 95, 99)] == [10.0] * 3
    assert [model[f"first_token_p{q}_ms"] for q in (50, 95, 99)] == [25.0] * 3
    assert main(["stats", str(streamed)]) == 0
    header, *table = capsys.readouterr().out.splitlines()
    columns = header.split()
    (model_row,) = [line.split() for line in table if line.startswith("model")]
    assert model_row[columns.index("ttfc_p50")] == "10.00"
    assert model_row[columns.index("ttft_p50")] == "25.00"
