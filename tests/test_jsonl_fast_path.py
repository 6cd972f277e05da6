"""The JSONL writer's fast path writes exactly what the converting path writes.

`serialize.proven_json` lets orjson write content as it is and keeps its text only when
cheap counts prove it the text of the converted value; `encode_line` uses it for every
event and span line. These tests hold both to byte equality with the path that converts
first (`to_jsonable`, then `dumps_bytes`) over values chosen to hit every rule the proof
relies on, and check that the fast path is taken for what a trace usually holds.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from collections import OrderedDict
from functools import reduce
from pathlib import PurePosixPath
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.messages.base import TextAccessor
from langchain_core.prompt_values import ChatPromptValue
from pydantic import BaseModel

from lcel_trace import jsonl_codec, serialize
from lcel_trace.json_text import dumps_bytes
from lcel_trace.jsonl_codec import encode_line
from lcel_trace.serialize import MAX_DEPTH, proven_json, to_jsonable
from lcel_trace.span import Span, SpanError, SpanEvent, TraceEvent, Usage
from tests.strategies import langchain_objects as plain_lc_objects
from tests.test_lc_dump import lc_objects


class Colour(enum.Enum):
    RED = "red"
    LOOKS_LC = {"lc": 1}  # noqa: RUF012 - an enum value, not a class attribute default
    NAN = math.nan


class Level(enum.IntEnum):
    LOW = 1


class Mode(str, enum.Enum):  # noqa: UP042 - the mixin form, as older code writes it
    FAST = "fast"


class Tag(str):
    """A `str` subclass `truncate` treats as a `str`."""


class Shouty(str):
    """A `str` subclass that measures itself differently: only the converting path
    knows what `truncate` makes of it."""

    def __len__(self) -> int:
        return 10**9


class Number(float):
    pass


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Model(BaseModel):
    name: str
    tags: list[str]


LIMITS = (None, 10, 64, 100, 1000)

strings = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["lc", "__lcel_escaped__", "null", '"lc":', "{[", "a\ud800b", "\x00"]),
    # around every limit, one or more bytes per character
    st.builds(lambda n, c: c * n, st.integers(50, 1100), st.sampled_from(["x", "é", "🦜"])),
)
keys = st.one_of(
    st.sampled_from(["lc", "__lcel_escaped__", "__lc_escaped__", "type", "kwargs"]),
    st.text(max_size=8),
    st.integers(-3, 3),
    st.sampled_from([None, True, 1.5, Tag("tag"), Mode.FAST, (1, 2)]),
)
odd = st.sampled_from(
    [
        uuid.UUID(int=7),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 2),
        datetime.time(1, 2),
        b"raw",
        bytearray(b"\x00\xff"),
        {1, 2},
        frozenset({"a"}),
        Colour.RED,
        Colour.LOOKS_LC,
        Colour.NAN,
        Level.LOW,
        Mode.FAST,
        Tag("tagged"),
        Shouty("shouty"),
        TextAccessor("text accessor"),
        Number(2.5),
        Point(1, "p"),
        Model(name="m", tags=["a"]),
        ValueError("boom"),
        PurePosixPath("/tmp/x"),
        OrderedDict(a=1),
        object(),
        2**70,
        -(2**63) - 1,
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        1e16,
    ]
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
    odd,
    lc_objects,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=16,
)


def _nested(depth: int, kind: str) -> Any:
    return reduce(lambda acc, _: [acc] if kind == "list" else {"k": acc}, range(depth), "leaf")


deep = st.builds(_nested, st.integers(0, MAX_DEPTH + 6), st.sampled_from(["list", "dict"]))


def converted_text(value: Any, limit: int | None) -> bytes:
    """What the writer wrote before the fast path: the converted value's text."""
    return dumps_bytes(to_jsonable(value, limit))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(values, deep), st.sampled_from(LIMITS))
def test_proven_text_is_the_converted_values_text(value: Any, limit: int | None) -> None:
    text = proven_json(value, limit, {})
    if text is not None:
        assert text == converted_text(value, limit)


plain_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    plain_lc_objects,
    st.builds(
        lambda texts: ChatPromptValue(messages=[HumanMessage(content=t) for t in texts]),
        st.lists(st.text(max_size=20), max_size=2),
    ),
)
plain_keys = st.text(max_size=8).filter(lambda k: k not in ("lc", "__lcel_escaped__"))
plain_values = st.recursive(
    plain_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(plain_keys, inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_json_like_data_and_langchain_objects_take_the_fast_path(value: Any) -> None:
    text = proven_json(value, 1_000_000, {})
    assert text is not None
    assert text == converted_text(value, 1_000_000)


wide = st.lists(st.dictionaries(keys, st.one_of(leaves, st.lists(leaves)), max_size=3), max_size=60)


@settings(max_examples=300, deadline=None)
@given(wide, st.sampled_from(LIMITS))
def test_wide_data_is_the_converted_values_text(value: Any, limit: int | None) -> None:
    """Many containers side by side: more brackets than any nesting the fast path lets
    through, so orjson itself is asked how deep it goes."""
    text = proven_json(value, limit, {})
    if text is not None:
        assert text == converted_text(value, limit)


def test_wide_shallow_data_takes_the_fast_path_and_deep_data_does_not() -> None:
    results = [{"id": i, "tags": ["a"], "source": {"rank": i}} for i in range(40)]
    assert proven_json({"results": results}, None) == converted_text({"results": results}, None)
    for depth in range(25, 40):
        value = _nested(depth, "dict")
        text = proven_json(value, None)
        assert (text is not None) == (depth <= 31), depth  # `_FAST_MAX_NESTING` containers
        assert encode_line(_event(value), None) == _slow_line(_event(value), None)


def test_a_message_holding_deep_or_constructor_shaped_data_is_written_as_converted() -> None:
    for depth in (5, 20, 27, 28, 29, 40, 60):
        kwargs = {"lc": 1, "deep": _nested(depth, "dict"), "keys": {"__lcel_escaped__": 1}}
        message = AIMessage(content="x", additional_kwargs=kwargs)
        for value in ({"output": message}, {"output": [[{"m": message}]]}):
            event = _event(value)
            assert encode_line(event, None, {}) == _slow_line(event, None), depth


def test_what_a_chain_usually_writes_takes_the_fast_path() -> None:
    human = HumanMessage(content="Tell me about parrots")
    reply = AIMessage(
        content="They talk.",
        id="run-1",
        tool_calls=[{"name": "search", "args": {"q": "parrots"}, "id": "c1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        response_metadata={"finish_reason": "stop", "lc": "not a constructor"},
    )
    for value in (
        {"input": {"topic": "parrots"}},
        {"output": ChatPromptValue(messages=[human])},
        {"input": {"messages": [[human]]}, "invocation_params": {"stop": None, "t": 0.5}},
        {"output": reply},
        {"output": TextAccessor("They talk.")},
        {"ls_provider": "openai", "lc_versions": {"langchain-core": "1.0"}},
    ):
        text = proven_json(value, 1_000_000, {})
        assert text is not None, value
        assert text == converted_text(value, 1_000_000)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"lc": 1, "x": 2}, "a user dict shaped like a constructor is escaped"),
        ({"a": [{"__lcel_escaped__": 1}]}, "so is one holding the escape key"),
        ({"a": math.nan}, "NaN is written as its repr"),
        ({"a": [1, -math.inf]}, "and so is infinity"),
        ({1: "x"}, "a non-string key is written as its str"),
        ({"a": "x" * 101}, "a string past the limit is cut"),
        ({"a": {1, 2}}, "a set is written as a list"),
        ({"a": Model(name="m", tags=[])}, "a pydantic model as its dump"),
        ({"a": datetime.date(2024, 1, 2)}, "a date as its isoformat"),
        (_nested(MAX_DEPTH + 2, "list"), "nesting past MAX_DEPTH is cut"),
    ],
)
def test_what_only_conversion_writes_right_is_left_to_it(value: Any, why: str) -> None:
    assert proven_json(value, 100, {}) is None, why
    assert encode_line(_event({"v": value}), 100) == _slow_line(_event({"v": value}), 100)


def test_a_langchain_object_met_again_is_written_once_per_memo() -> None:
    reply = AIMessage(content="once")
    memo: dict[Any, Any] = {}
    with mock.patch.object(serialize, "_direct", wraps=serialize._direct) as direct:
        first = proven_json({"output": reply}, None, memo)
        second = proven_json({"input": reply}, None, memo)
    assert direct.call_count == 1
    assert first == converted_text({"output": reply}, None)
    assert second == converted_text({"input": reply}, None)


def test_a_message_in_a_prompt_value_and_again_alone_is_written_once() -> None:
    history = [HumanMessage(content=f"question {i}") for i in range(5)]
    prompt = ChatPromptValue(messages=history)
    memo: dict[Any, Any] = {}
    with mock.patch.object(serialize, "_direct", wraps=serialize._direct) as direct:
        texts = [
            proven_json({"output": prompt}, None, memo),
            proven_json({"input": {"messages": [history]}}, None, memo),
        ]
    assert direct.call_count == 1 + 5  # the prompt value, and each message once
    assert texts[0] == converted_text({"output": prompt}, None)
    assert texts[1] == converted_text({"input": {"messages": [history]}}, None)
    # the other way round: a message written from a shallower depth is written again
    # where the prompt value nests it deeper
    memo = {}
    alone = proven_json({"input": history[0]}, None, memo)
    nested = proven_json({"output": [[{"p": prompt}]]}, None, memo)
    assert alone == converted_text({"input": history[0]}, None)
    assert nested == converted_text({"output": [[{"p": prompt}]]}, None)


# -- whole lines --------------------------------------------------------------------------

structural_text = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(['x","metadata":{"lc":1}', "null", "[[[[", '","tags":[', "é🦜"]),
)
dicts = st.dictionaries(keys, values, max_size=3)


def _event(data: Any, metadata: Any = None, name: str = "n", tags: tuple[str, ...] = ()) -> Any:
    return TraceEvent(
        "t", "start", "on_chain_start", "r", ("p",), name, "chain", tags, metadata or {}, data, 1
    )


@st.composite
def records(draw: st.DrawFn) -> Any:
    name = draw(structural_text)
    tags = tuple(draw(st.lists(structural_text, max_size=2)))
    if draw(st.booleans()):
        return TraceEvent(
            trace_id="t" * 32,
            kind=draw(st.sampled_from(["start", "end", "error", "custom", "stream"])),
            event="on_chain_end",
            run_id=draw(structural_text),
            parent_ids=tuple(draw(st.lists(structural_text, max_size=2))),
            name=name,
            run_type="chain",
            tags=tags,
            metadata=draw(dicts),
            data=draw(dicts),
            ts_ns=draw(st.integers(0, 2**63 - 1)),
        )
    start = draw(st.integers(0, 2**62))
    return Span(
        trace_id="t" * 32,
        span_id=draw(structural_text),
        parent_id=draw(st.none() | structural_text),
        name=name,
        run_type="llm",
        start_ns=start,
        end_ns=start + 1,
        status="error" if draw(st.booleans()) else "ok",
        error=draw(st.none() | st.builds(SpanError, structural_text, structural_text)),
        inputs=draw(values),
        outputs=draw(values),
        tags=tags,
        metadata=draw(dicts),
        chunk_count=draw(st.integers(0, 10)),
        first_chunk_ns=draw(st.none() | st.just(start)),
        first_token_ns=draw(st.none() | st.just(start)),
        usage=draw(
            st.none()
            | st.builds(
                Usage,
                st.none() | st.integers(0, 10),
                st.none() | st.integers(0, 10),
                st.none() | st.integers(0, 10),
            )
        ),
        model=draw(st.none() | structural_text),
        events=tuple(
            draw(st.lists(st.builds(SpanEvent, structural_text, st.just(1), dicts), max_size=2))
        ),
        attributes=draw(dicts),
    )


def _slow_line(
    record: Any, limit: int | None, *, inputs: bool = True, outputs: bool = True
) -> bytes:
    """The line as the writer wrote it before the fast path (which needs orjson)."""
    with mock.patch.object(jsonl_codec, "orjson", None):
        return encode_line(record, limit, {}, inputs=inputs, outputs=outputs)


@settings(max_examples=800, deadline=None)
@given(
    st.lists(records(), min_size=1, max_size=3),
    st.sampled_from(LIMITS),
    st.booleans(),
    st.booleans(),
)
def test_every_line_is_the_converting_writers_line(
    batch: list[Any], limit: int | None, inputs: bool, outputs: bool
) -> None:
    memo: dict[Any, Any] = {}  # shared by the batch, as the exporter shares it
    for record in batch:
        fast = encode_line(record, limit, memo, inputs=inputs, outputs=outputs)
        assert fast == _slow_line(record, limit, inputs=inputs, outputs=outputs)


def test_the_slow_line_is_the_stdlib_encoding_of_to_line() -> None:
    """`_slow_line` is the reference the other tests hold the fast path to."""
    import json

    record = _event({"input": {"a": [1, "é", None]}}, {"m": 1})
    expected = json.dumps(
        jsonl_codec.to_line(record), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    assert _slow_line(record, None) == expected.encode("utf-8") + b"\n"


def test_a_traced_chains_lines_are_written_without_converting(tmp_path: Any) -> None:
    """On the benchmark's chain every line takes the fast path: `to_jsonable` and
    `convert` are never called, and the file is what the converting writer writes."""
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from lcel_trace import trace
    from lcel_trace.exporters import JsonlExporter

    class Keep(JsonlExporter):
        def on_batch(self, records: Any) -> None:
            kept.extend(records)

    kept: list[Any] = []
    model = FakeListChatModel(responses=["Parrots repeat what they hear."])
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | model | StrOutputParser()
    keep = Keep(tmp_path / "kept.jsonl")
    traced = trace(chain, exporters=[keep])
    for _ in range(3):
        traced.invoke({"topic": "parrots"})
    assert keep.force_flush(30)
    assert len(kept) == 3 * 14

    fast_path, slow_path = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    fast = JsonlExporter(fast_path)
    with (
        mock.patch.object(jsonl_codec, "to_jsonable", side_effect=AssertionError) as to_j,
        mock.patch.object(jsonl_codec, "convert", side_effect=AssertionError) as conv,
    ):
        fast.on_batch(kept)
    assert (to_j.call_count, conv.call_count) == (0, 0)
    slow = JsonlExporter(slow_path)
    with mock.patch.object(jsonl_codec, "orjson", None):
        slow.on_batch(kept)
    assert fast.lines_written == slow.lines_written == 3 * 14
    assert fast_path.read_bytes() == slow_path.read_bytes()
