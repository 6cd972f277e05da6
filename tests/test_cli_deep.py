"""`show` and `show --json` on a trace thousands of runs deep: no recursion, no span lost."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from lcel_trace.cli import main
from lcel_trace.cli.show import MAX_JSON_DEPTH
from lcel_trace.records import Record, encode_line
from lcel_trace.span import Span, TraceEnd, TraceStart

T0 = 1_800_000_000_000_000_000
TRACE_ID = "ab" * 16
DEPTH = 2_000


@pytest.fixture
def deep_file(tmp_path: Path) -> Path:
    """One trace: a chain of 2,000 spans, each the only child of the one before."""
    ids = [str(uuid.UUID(int=n + 1)) for n in range(DEPTH)]
    spans = [
        Span(
            TRACE_ID, ids[i], ids[i - 1] if i else None, f"s{i}", "chain", T0 + i, T0 + 9_999, "ok"
        )
        for i in range(DEPTH)
    ]
    records: list[Record] = [
        TraceStart(TRACE_ID, "deep", T0, ids[0]),
        *spans,
        TraceEnd(TRACE_ID, "ok", T0 + 10_000, DEPTH, 0),
    ]
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"".join(encode_line(r) for r in records))
    return path


def test_show_prints_every_span_of_a_two_thousand_deep_trace(
    deep_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(deep_file)]) == 0
    out = capsys.readouterr().out
    for i in range(DEPTH):
        assert f" s{i} (chain" in out
    assert "└── s1 (chain" in out
    assert "[depth 1999] s1999 (chain" in out


def test_show_indents_only_as_far_as_the_terminal_allows(
    deep_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(deep_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    indents = [len(line) - len(line.lstrip(" │├└─")) for line in lines]
    assert max(indents) < 80 - 30


def test_show_json_nests_a_hundred_levels_then_lists_deeper_spans_by_id(
    deep_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--json", str(deep_file)]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    node: dict[str, Any] = shown["root"]
    for level in range(MAX_JSON_DEPTH - 1):
        assert node["name"] == f"s{level}"
        (node,) = node["children"]
    assert node["name"] == f"s{MAX_JSON_DEPTH - 1}"
    assert node["children"] == [str(uuid.UUID(int=MAX_JSON_DEPTH + 1))]
    deep = shown["deep_spans"]
    assert [s["name"] for s in deep] == [f"s{i}" for i in range(MAX_JSON_DEPTH, DEPTH)]
    assert [s["depth"] for s in deep] == list(range(MAX_JSON_DEPTH, DEPTH))
    for parent, child in itertools.pairwise(deep):
        assert parent["children"] == [child["span_id"]]
        assert child["parent_id"] == parent["span_id"]
    assert deep[-1]["children"] == []


def test_show_json_of_a_shallow_trace_has_no_deep_spans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Span(TRACE_ID, "r", None, "root", "chain", T0, T0 + 10, "ok")
    leaf = Span(TRACE_ID, "l", "r", "leaf", "parser", T0 + 1, T0 + 9, "ok")
    records: list[Record] = [
        TraceStart(TRACE_ID, "t", T0, "r"),
        leaf,
        root,
        TraceEnd(TRACE_ID, "ok", T0 + 10, 2, 0),
    ]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(encode_line(r) for r in records))
    assert main(["show", "--json", str(path)]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["deep_spans"] == []
    assert [c["name"] for c in shown["root"]["children"]] == ["leaf"]
    assert shown["root"]["children"][0]["parent_id"] == "r"
