"""Secrets stay in: default scrubbing, the user's hook, and capture_content=False."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from lcel_trace import capture, trace
from lcel_trace.exporters import JsonlExporter

KEY = "sk-proj-abcdefghijklmnopqrstuvwx123456"


def echo(value: Any) -> Any:
    return value


def test_secret_looking_values_and_keys_never_reach_spans_or_files(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    payload = {"question": f"my key is {KEY}", "api_key": "hunter2", "n": 3}
    with JsonlExporter(path) as exporter, capture() as cap:
        output = trace(RunnableLambda(echo), exporters=[exporter]).invoke(payload)
    assert output == payload  # the caller's data is untouched
    root = cap.traces[0].root
    assert root.inputs == {"question": "my key is [REDACTED]", "api_key": "[REDACTED]", "n": 3}
    text = path.read_text(encoding="utf-8")
    assert KEY not in text
    assert "hunter2" not in text


def test_secrets_in_error_messages_are_scrubbed(tmp_path: Path) -> None:
    def leak(_: object) -> None:
        raise PermissionError(f"bad key {KEY}")

    path = tmp_path / "runs.jsonl"
    with (
        JsonlExporter(path) as exporter,
        capture() as cap,
        pytest.raises(PermissionError, match=KEY),  # the caller still sees it all
    ):
        trace(RunnableLambda(leak), exporters=[exporter]).invoke("x")
    error = cap.traces[0].root.error
    assert error is not None
    assert error.message == "bad key [REDACTED]"
    assert KEY not in path.read_text(encoding="utf-8")


def test_user_redact_hook_applies_to_every_content_value() -> None:
    def hide_emails(value: Any) -> Any:
        return "<hidden>" if isinstance(value, str) and "@" in value else value

    with capture() as cap:
        trace(RunnableLambda(echo), redact=hide_emails).invoke("ann@example.com")
    root = cap.traces[0].root
    assert root.inputs == "<hidden>"
    assert root.outputs == "<hidden>"


def test_capture_content_false_keeps_structure_but_no_content(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with JsonlExporter(path) as exporter, capture() as cap:
        traced = trace(RunnableLambda(echo), exporters=[exporter], capture_content=False)
        assert list(traced.stream("private words")) == ["private words"]
    root = cap.traces[0].root
    assert root.status == "ok"
    assert root.inputs is None
    assert root.outputs is None
    assert root.chunk_count == 1
    assert "private words" not in path.read_text(encoding="utf-8")


def test_redact_must_be_callable() -> None:
    with pytest.raises(TypeError, match="redact must be a callable"):
        trace(RunnableLambda(echo), redact="api_key")  # type: ignore[arg-type]
