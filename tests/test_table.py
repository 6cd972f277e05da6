"""Spans as an Arrow table: a pinned schema, one row per span, bounded reading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from lcel_trace.table import SCHEMA, record_batches, schema, spans
from tests.trace_data import qa_trace, write

PINNED = [
    ("trace_id", "string"),
    ("span_id", "string"),
    ("parent_id", "string"),
    ("trace_name", "string"),
    ("name", "string"),
    ("run_type", "string"),
    ("level", "string"),
    ("status", "string"),
    ("start_time", "timestamp[ns, tz=UTC]"),
    ("end_time", "timestamp[ns, tz=UTC]"),
    ("duration_ms", "double"),
    ("ttfc_ms", "double"),
    ("ttft_ms", "double"),
    ("chunk_count", "int64"),
    ("input_tokens", "int64"),
    ("output_tokens", "int64"),
    ("total_tokens", "int64"),
    ("model", "string"),
    ("provider", "string"),
    ("cost_usd", "double"),
    ("cost_input_usd", "double"),
    ("cost_output_usd", "double"),
    ("price_source", "string"),
    ("error_type", "string"),
    ("error_message", "string"),
    ("tags", "list<item: string>"),
    ("metadata", "string"),
]


def test_the_schema_is_stable() -> None:
    """Columns may be added at the end in a new version; never renamed, retyped, dropped."""
    assert [(f.name, str(f.type)) for f in SCHEMA] == PINNED
    assert SCHEMA.metadata == {b"lcel_trace.schema": b"spans/1"}
    with_content = schema(content=True)
    assert [(f.name, str(f.type)) for f in with_content] == [
        *PINNED,
        ("inputs", "string"),
        ("outputs", "string"),
    ]


def test_one_row_per_span_with_times_tokens_cost_and_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "runs.jsonl",
        [qa_trace(name="ok", latency_ms=12.5), qa_trace(name="bad", error=True)],
    )
    table = spans(path)
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 4
    root = rows[1]
    assert (root["trace_name"], root["level"], root["parent_id"]) == ("ok", "root", None)
    assert root["duration_ms"] == pytest.approx(12.5)
    assert root["tags"] == ["demo"]
    assert json.loads(root["metadata"]) == {"user": "u1"}
    assert root["cost_usd"] is None  # not a model span
    model = rows[0]
    assert model["level"] == "nested"
    assert model["parent_id"] == root["span_id"]
    assert (model["input_tokens"], model["output_tokens"], model["total_tokens"]) == (
        1000,
        100,
        1100,
    )
    assert (model["model"], model["provider"]) == ("gpt-4o-mini", "openai")
    assert model["ttft_ms"] == pytest.approx(1.9)
    assert model["cost_usd"] == pytest.approx(model["cost_input_usd"] + model["cost_output_usd"])
    assert model["price_source"].startswith("genai-prices ")
    assert model["start_time"].timestamp() == pytest.approx(1_800_000_000.0001)
    failed = rows[2]
    assert (failed["status"], failed["error_type"], failed["error_message"]) == (
        "error",
        "RuntimeError",
        "model failed",
    )


def test_content_columns_only_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "runs.jsonl", [qa_trace(question="why?", answer="because")])
    assert "inputs" not in spans(path).column_names
    root = spans(path, content=True).to_pylist()[1]
    assert json.loads(root["inputs"]) == {"question": "why?"}
    assert json.loads(root["outputs"]) == "because"


def test_an_unknown_model_has_a_null_cost_not_zero(tmp_path: Path) -> None:
    path = write(tmp_path / "runs.jsonl", [qa_trace(model="my-private-model")])
    assert spans(path).column("cost_usd").to_pylist() == [None, None]


def test_batches_are_bounded_and_cover_every_span(tmp_path: Path) -> None:
    path = write(tmp_path / "runs.jsonl", [qa_trace() for _ in range(50)])
    batches = list(record_batches(path, batch_rows=16))
    assert [b.num_rows for b in batches] == [16] * 6 + [4]
    assert pa.Table.from_batches(batches).equals(spans(path))


def test_pandas_and_polars_read_it_through_arrow(tmp_path: Path) -> None:
    import polars as pl

    path = write(tmp_path / "runs.jsonl", [qa_trace() for _ in range(3)])
    table = spans(path)
    frame = table.to_pandas()
    assert frame.groupby("run_type")["duration_ms"].count().to_dict() == {
        "chain": 3,
        "chat_model": 3,
    }
    assert pl.from_arrow(table).height == 6  # type: ignore[union-attr]


def test_without_pyarrow_the_error_names_the_extra() -> None:
    code = "import sys; sys.modules['pyarrow'] = None; import lcel_trace.table"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "pip install 'lcel-trace[analysis]'" in result.stderr


def test_the_base_install_prices_nothing_without_genai_prices() -> None:
    code = (
        "import sys; sys.modules['genai_prices'] = None\n"
        "from lcel_trace import cost\n"
        "from tests.trace_data import qa_trace\n"
        "span = qa_trace()[1]\n"
        "print(cost.available(), cost.span_cost(span), cost.price_source())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "None", "None"]
