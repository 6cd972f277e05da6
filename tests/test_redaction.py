"""Secrets stay in: default scrubbing, the user's hook, and capture_content=False."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel, SecretStr

from lcel_trace import capture, trace
from lcel_trace._log import occurrences
from lcel_trace.exporters import JsonlExporter
from lcel_trace.redact import REDACTED, TOO_DEEP, Redactor, scrub

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


# --- what the default scrubbing walks into ----------------------------------------------


def test_tool_call_arguments_and_message_metadata_are_scrubbed() -> None:
    message = AIMessage(
        content="calling login",
        tool_calls=[{"name": "login", "args": {"user": "ann", "password": "hunter2"}, "id": "c1"}],
        invalid_tool_calls=[
            {"name": "login", "args": '{"api_key": "k-123"}', "id": "c2", "error": None}
        ],
        additional_kwargs={
            "tool_calls": [{"function": {"name": "login", "arguments": '{"password": "hunter2"}'}}]
        },
        response_metadata={"headers": {"Authorization": "Bearer abc"}, "model_name": "m"},
    )
    cleaned = scrub(message)
    assert isinstance(cleaned, AIMessage)
    assert cleaned.tool_calls[0]["args"] == {"user": "ann", "password": REDACTED}
    assert cleaned.invalid_tool_calls[0]["args"] == f'{{"api_key": "{REDACTED}"}}'
    arguments = cleaned.additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert arguments == f'{{"password": "{REDACTED}"}}'
    assert cleaned.response_metadata == {"headers": {"Authorization": REDACTED}, "model_name": "m"}
    text = repr(cleaned)
    assert "hunter2" not in text
    assert "k-123" not in text
    assert message.tool_calls[0]["args"]["password"] == "hunter2"  # the original is untouched


def test_streamed_tool_call_chunks_are_scrubbed() -> None:
    chunk = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "f", "args": '{"token": "abc123"}', "id": "1", "index": 0}],
    )
    cleaned = scrub(chunk)
    assert cleaned.tool_call_chunks[0]["args"] == f'{{"token": "{REDACTED}"}}'
    assert "abc123" not in repr(cleaned)


class Settings(BaseModel):
    accessToken: str  # noqa: N815 - camelCase field names are under test
    api: SecretStr
    retries: int


@dataclasses.dataclass(frozen=True)
class Login:
    dbPassword: str  # noqa: N815 - camelCase field names are under test
    note: str


def test_any_pydantic_model_and_dataclass_is_walked_and_keeps_its_type() -> None:
    settings = scrub(Settings(accessToken="t0k", api=SecretStr("hidden"), retries=3))
    assert isinstance(settings, Settings)
    assert settings.accessToken == REDACTED
    assert settings.api.get_secret_value() == REDACTED
    assert settings.retries == 3
    settings.model_dump(mode="json")  # still serialises, without warnings
    login = scrub(Login("hunter2", f"key {KEY}"))
    assert login == Login(REDACTED, f"key {REDACTED}")


def test_sets_and_frozensets_are_scrubbed() -> None:
    assert scrub({KEY, "a"}) == {REDACTED, "a"}
    assert scrub(frozenset({KEY})) == frozenset({REDACTED})


def test_values_nested_too_deep_are_replaced_never_passed_through() -> None:
    deep: Any = {"password": "hunter2", "note": KEY}
    for _ in range(40):
        deep = [deep]
    cleaned = scrub(deep)
    text = repr(cleaned)
    assert KEY not in text
    assert "hunter2" not in text
    assert TOO_DEEP in text


def test_mutable_containers_are_copied_and_immutable_values_reused() -> None:
    payload = {"q": "hello", "items": [1, 2, {"n": "x"}], "tags": {"a"}, "pair": ("a", 1)}
    cleaned = scrub(payload)
    assert cleaned == payload
    assert cleaned is not payload
    assert cleaned["items"] is not payload["items"]
    assert cleaned["items"][2] is not payload["items"][2]
    assert cleaned["tags"] is not payload["tags"]
    assert cleaned["pair"] is payload["pair"]


# --- the user's hook ----------------------------------------------------------------------


def test_a_raising_redact_hook_costs_one_value_not_the_trace() -> None:
    def picky(value: Any) -> Any:
        if value == "boom":
            raise RuntimeError("hook bug")
        return value

    redactor = Redactor(picky)
    seen = occurrences("redact hook failed")
    assert redactor.content("boom") == REDACTED
    assert redactor.content("fine") == "fine"
    assert redactor.text("boom") == REDACTED
    assert occurrences("redact hook failed") == seen + 2  # logged once, then counted
    with capture() as cap:
        assert trace(RunnableLambda(echo), redact=picky).invoke("boom") == "boom"
    root = cap.traces[0].root
    assert root.status == "ok"
    assert root.inputs == REDACTED
    assert root.outputs == REDACTED


@given(
    before=st.text(alphabet="abc xyz.,", max_size=60),
    after=st.text(alphabet="abc xyz.,", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_scrubbed_stream_text_keeps_chunk_boundaries_outside_the_secret(
    before: str, after: str, cuts: list[int]
) -> None:
    from lcel_trace.redact import _realigned, scrub_text

    whole = f"{before} Bearer abcdefghijklmnopqrstuvwxyz012345 {after}"
    points = sorted({min(c, len(whole)) for c in cuts} | {0, len(whole)})
    texts: list[str | None] = [whole[a:b] for a, b in itertools.pairwise(points)]
    scrubbed = scrub_text(whole)
    out = _realigned(texts, whole, scrubbed)
    assert "".join(t or "" for t in out) == scrubbed
    assert len(out) == len(texts)
    secret_start = whole.index("abcdefghij")
    position = 0
    for old, new in zip(texts, out, strict=True):
        assert old is not None
        if position + len(old) <= whole.index("Bearer"):
            assert new == old  # wholly before anything that changed
        position += len(old)
    assert "abcdefghij" not in "".join(t or "" for t in out)
    assert secret_start > 0
