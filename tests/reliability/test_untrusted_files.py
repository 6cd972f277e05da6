"""Trace files are untrusted: the reader raises only its documented error, never hangs,
never builds a class outside its allow-list and never resolves a secret."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda

from lcel_trace import trace
from lcel_trace.exporters import JsonlExporter
from lcel_trace.replay import TraceFileError, read_traces

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def valid_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("valid") / "runs.jsonl"
    with JsonlExporter(path) as exporter:
        list(
            trace(RunnableLambda(lambda x: x) | RunnableLambda(str), exporters=[exporter]).stream(1)
        )
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_only_documented_errors(path: Path) -> None:
    """Anything but a list of traces or a `TraceFileError` fails the test (by escaping)."""
    outcome: list[object] | str
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = list(read_traces(path))
        except TraceFileError as exc:
            outcome = str(exc)
    if isinstance(outcome, str):
        assert outcome.startswith(f"{path}:")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_valid_files_give_traces_or_file_line_errors(
    data: st.DataObject, valid_lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = [dict(line) for line in valid_lines]
    target = data.draw(st.integers(0, len(lines) - 1))
    key = data.draw(st.sampled_from(sorted(lines[target])))
    lines[target][key] = data.draw(json_values)
    path = tmp_path / "mutated.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    read_only_documented_errors(path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), max_size=6
    )
)
def test_random_bytes_and_json_give_traces_or_file_line_errors(
    lines: list[bytes], tmp_path: Path
) -> None:
    path = tmp_path / "random.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    read_only_documented_errors(path)


INJECTIONS = {
    "a prompt template (runs a formatter)": {
        "lc": 1, "type": "constructor",
        "id": ["langchain_core", "prompts", "chat", "ChatPromptTemplate"], "kwargs": {},
    },
    "a model client carrying a key": {
        "lc": 1, "type": "constructor", "id": ["langchain_openai", "chat_models", "ChatOpenAI"],
        "kwargs": {"openai_api_key": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}},
    },
    "a secret": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]},
    "an arbitrary module": {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}},
    "a message hiding a secret": {
        "lc": 1, "type": "constructor", "id": ["langchain_core", "messages", "AIMessage"],
        "kwargs": {"content": {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}},
    },
}  # fmt: skip


@pytest.mark.parametrize("payload", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_serialisation_injection_is_refused_and_secrets_stay_unresolved(
    payload: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-be-read-0123456789")
    line = {
        "type": "span", "trace_id": "0" * 32, "span_id": "s", "parent_id": None, "name": "x",
        "run_type": "chain", "start_ns": 1, "end_ns": 2, "status": "ok", "error": None,
        "inputs": payload, "outputs": None, "tags": [], "metadata": {}, "chunk_count": 0,
        "first_chunk_ns": None, "usage": None, "model": None, "events": [], "attributes": {},
    }  # fmt: skip
    path = tmp_path / "evil.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"evil\.jsonl:1: "):
        read_traces(path)
    assert os.environ["OPENAI_API_KEY"] not in path.read_text(encoding="utf-8")


def test_deep_nesting_and_huge_lines_are_file_line_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(TraceFileError, match=r"deep\.jsonl:1: "):
        read_traces(deep)
    nested = tmp_path / "nested.jsonl"
    value: Any = "x"
    for _ in range(200):
        value = {"a": value}
    nested.write_text(
        json.dumps({"type": "event", "trace_id": "t", "kind": "custom", "event": "e",
                    "run_id": "r", "parent_ids": [], "name": "n", "run_type": "custom",
                    "tags": [], "metadata": {}, "data": value, "ts_ns": 1}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(TraceFileError, match=r"nested\.jsonl:1: nesting deeper than"):
        read_traces(nested)
