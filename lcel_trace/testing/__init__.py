"""Assertions on recorded traces for your own tests; failures print the whole tree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lcel_trace.span import Span, SpanNode, Status, Trace

TreeSpec = Mapping[str, Sequence[Any]]
"""`{"RunnableSequence": ["ChatPromptTemplate", "ChatOpenAI", {"Parser": [...]}]}`."""


def assert_tree(trace: Trace, expected: TreeSpec | str) -> None:
    """The trace's tree has exactly this shape: names, children in start order.

    A child is a name (a leaf) or a `{name: [children]}` mapping.
    """
    actual = _spec_of(trace.tree())
    wanted = _normalise(expected)
    if actual != wanted:
        raise AssertionError(
            f"trace {trace.trace_id} has another shape.\n"
            f"expected: {wanted}\nactual:   {actual}\n\n{trace.tree().render()}"
        )


def assert_status(trace: Trace, name: str, status: Status) -> Span:
    """The first span called `name` ended with `status`; returns it."""
    span = find_span(trace, name)
    if span.status != status:
        raise AssertionError(
            f"span {name!r} is {span.status!r}, expected {status!r}"
            f"{f' ({span.error.type}: {span.error.message})' if span.error else ''}\n\n"
            f"{trace.tree().render()}"
        )
    return span


def assert_attributes(trace: Trace, name: str, **expected: Any) -> Span:
    """The first span called `name` has these field or `attributes` values."""
    span = find_span(trace, name)
    for key, value in expected.items():
        actual = getattr(span, key) if hasattr(span, key) else span.attributes.get(key)
        if actual != value:
            raise AssertionError(
                f"span {name!r}: {key} is {actual!r}, expected {value!r}\n\n{trace.tree().render()}"
            )
    return span


def find_span(trace: Trace, name: str) -> Span:
    try:
        return trace.span(name)
    except LookupError:
        names = sorted({s.name for s in trace.spans})
        raise AssertionError(
            f"no span named {name!r}; spans are {names}\n\n{trace.tree().render()}"
        ) from None


def _spec_of(node: SpanNode) -> Any:
    if not node.children:
        return node.span.name
    return {node.span.name: [_spec_of(child) for child in node.children]}


def _normalise(spec: Any) -> Any:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        ((name, children),) = spec.items()
        return {name: [_normalise(c) for c in children]} if children else name
    raise TypeError(f"a tree spec is a name or a {{name: [children]}} mapping, got {spec!r}")
