"""`lc_dump` is `dumpd`: the direct serialiser of LangChain's messages, chunks,
documents and prompt values gives the same dict, and `to_jsonable` of such an object is
what it was when it went through `dumpd`."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.load import dumpd
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue

from lcel_trace import serialize
from lcel_trace.serialize import MAX_DEPTH, lc_dump, to_jsonable

keys = st.one_of(
    st.sampled_from(["lc", "type", "id", "kwargs", "__lc_escaped__", "__lcel_escaped__"]),
    st.text(max_size=8),
    st.integers(-3, 3),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=120),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)
# Values dumpd leaves to `to_json_not_implemented`: the direct path must hand them over.
odd = st.sampled_from([datetime.date(2024, 1, 2), {1, 2}, b"raw", object])
json_dicts = st.dictionaries(st.text(max_size=8), st.one_of(values, odd), max_size=4)
texts = st.text(max_size=120)
content = st.one_of(
    texts,
    st.lists(
        st.one_of(
            texts,
            st.builds(lambda t: {"type": "text", "text": t}, texts),
            st.dictionaries(st.text(max_size=6), values, max_size=3),
        ),
        max_size=3,
    ),
)
opt_text = st.one_of(st.none(), st.just(""), st.text(max_size=12))
tool_calls = st.lists(
    st.builds(
        lambda n, a, i: {"name": n, "args": a, "id": i, "type": "tool_call"},
        st.text(max_size=8),
        st.dictionaries(st.text(max_size=6), values, max_size=3),
        st.one_of(st.none(), st.text(max_size=8)),
    ),
    max_size=2,
)
invalid_tool_calls = st.lists(
    st.builds(
        lambda n, a, i, e: {"name": n, "args": a, "id": i, "error": e, "type": "invalid_tool_call"},
        opt_text,
        opt_text,
        opt_text,
        opt_text,
    ),
    max_size=2,
)
usage = st.one_of(
    st.none(),
    st.builds(
        lambda i, o, details: {
            "input_tokens": i,
            "output_tokens": o,
            "total_tokens": i + o,
            **({"input_token_details": {"cache_read": details}} if details else {}),
        },
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.integers(0, 50),
    ),
)
common = {
    "additional_kwargs": json_dicts,
    "response_metadata": json_dicts,
    "name": opt_text,
    "id": opt_text,
}
ai_messages = st.builds(
    AIMessage,
    content=content,
    tool_calls=tool_calls,
    invalid_tool_calls=invalid_tool_calls,
    usage_metadata=usage,
    **common,
)
ai_chunks = st.builds(
    AIMessageChunk,
    content=content,
    tool_call_chunks=st.lists(
        st.builds(
            lambda n, a, i, x: {
                "name": n,
                "args": a,
                "id": i,
                "index": x,
                "type": "tool_call_chunk",
            },
            opt_text,
            opt_text,
            opt_text,
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        max_size=2,
    ),
    usage_metadata=usage,
    chunk_position=st.one_of(st.none(), st.just("last")),
    **common,
)
messages = st.one_of(
    ai_messages,
    ai_chunks,
    st.builds(HumanMessage, content=content, **common),
    st.builds(HumanMessageChunk, content=content, **common),
    st.builds(SystemMessage, content=content, **common),
    st.builds(
        ToolMessage,
        content=content,
        tool_call_id=texts,
        artifact=st.one_of(st.none(), values),
        status=st.sampled_from(["success", "error"]),
        **common,
    ),
    st.builds(ToolMessageChunk, content=content, tool_call_id=texts, **common),
    st.builds(ChatMessage, content=content, role=st.text(max_size=8), **common),
    st.builds(FunctionMessage, content=content, name=st.text(max_size=8)),
)
documents = st.builds(Document, page_content=texts, metadata=json_dicts, id=opt_text)
lc_objects = st.one_of(
    messages,
    documents,
    st.builds(ChatPromptValue, messages=st.lists(messages, max_size=4)),
    st.builds(StringPromptValue, text=texts),
    st.builds(Generation, text=texts, generation_info=st.one_of(st.none(), json_dicts)),
    st.builds(ChatGeneration, message=ai_messages),
    # a message inside another's content: nested constructors
    st.builds(
        lambda m, d: Document(page_content="", metadata={"m": m, "d": d}), messages, documents
    ),
)


def _old_to_jsonable(value: Any, max_str: int | None) -> Any:
    """`to_jsonable` as it was: `dumpd`, then converted as trusted output."""
    return serialize._convert(dumpd(value), 1, trusted=True, max_str=max_str)


@settings(max_examples=400, deadline=None)
@given(lc_objects)
def test_lc_dump_equals_dumpd(obj: Any) -> None:
    assert lc_dump(obj) == dumpd(obj)


@settings(max_examples=300, deadline=None)
@given(lc_objects, st.sampled_from([None, 10, 64, 200]))
def test_to_jsonable_of_a_langchain_object_is_unchanged(obj: Any, max_str: int | None) -> None:
    assert _same(to_jsonable(obj, max_str), _old_to_jsonable(obj, max_str))


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (the two paths hold distinct float objects)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_common_messages_do_not_go_through_dumpd(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: Any) -> Any:
        raise AssertionError("dumpd called")

    monkeypatch.setattr(serialize, "dumpd", refuse)
    value = ChatPromptValue(
        messages=[
            SystemMessage(content="be brief"),
            HumanMessage(content="hi", additional_kwargs={"lc": 1}),
            AIMessage(
                content="",
                tool_calls=[{"name": "f", "args": {"a": 1.5}, "id": "c1"}],
                usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
                response_metadata={"model_name": "m", "finish_reason": "stop"},
            ),
            ToolMessage(content="42", tool_call_id="c1"),
        ]
    )
    for obj in (value, AIMessageChunk(content="x"), Document(page_content="p", metadata={})):
        to_jsonable(obj)
        lc_dump(obj)


def test_values_dumpd_does_not_write_fall_back_to_it() -> None:
    message = AIMessage(content="x", response_metadata={"when": datetime.date(2024, 1, 2)})
    assert lc_dump(message) == dumpd(message)
    assert to_jsonable(message) == _old_to_jsonable(message, None)


def test_deep_nesting_falls_back_to_the_same_cut() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 5):
        deep = {"k": deep}
    message = HumanMessage(content="x", additional_kwargs={"deep": deep})
    assert to_jsonable(message) == _old_to_jsonable(message, None)


def test_a_subclass_is_written_by_dumpd() -> None:
    class Custom(HumanMessage):
        extra_field: str = "e"

    message = Custom(content="c", extra_field="f")
    assert lc_dump(message) == dumpd(message)
