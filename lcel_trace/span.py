"""Immutable records of a trace: spans, normalised events, trace boundaries.

Records are frozen so that exporters running on other threads can never see a
half-updated value; the builders that accumulate them live in `assemble.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Status = Literal["ok", "error", "cancelled", "incomplete"]
EventKind = Literal["start", "stream", "end", "error", "custom"]
RunType = Literal[
    "chain", "chat_model", "llm", "tool", "retriever", "prompt", "parser", "lambda", "custom"
]

RUN_TYPES: frozenset[str] = frozenset(
    ("chain", "chat_model", "llm", "tool", "retriever", "prompt", "parser", "lambda", "custom")
)
STATUSES: frozenset[str] = frozenset(("ok", "error", "cancelled", "incomplete"))
EVENT_KINDS: frozenset[str] = frozenset(("start", "stream", "end", "error", "custom"))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts a provider reported for one model call."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class SpanError:
    """What went wrong in a span: the exception's qualified type and message."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A point-in-time event inside a span (a custom event, for instance)."""

    name: str
    ts_ns: int
    data: Any = None


@dataclass(frozen=True, slots=True)
class Span:
    """One LangChain run, finished: identity, timing, status, content and stream facts.

    `parent_id` is the direct parent run; for a trace's root it is the span id of
    the OpenTelemetry span active when the call started (16 hex digits), if any.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    run_type: RunType
    start_ns: int
    end_ns: int
    status: Status
    error: SpanError | None = None
    inputs: Any = None
    outputs: Any = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunk_count: int = 0
    first_chunk_ns: int | None = None
    usage: Usage | None = None
    model: str | None = None
    events: tuple[SpanEvent, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Provider facts that have no field of their own (finish reason, request parameters...)."""
    first_token_ns: int | None = None
    """When the first chunk with content (text or a tool-call delta) arrived. Chat models
    often stream an empty role chunk first: `first_chunk_ns` is that one."""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def time_to_first_chunk_ns(self) -> int | None:
        return None if self.first_chunk_ns is None else self.first_chunk_ns - self.start_ns

    @property
    def time_to_first_token_ns(self) -> int | None:
        """What a reader of the stream waited for: time to the first non-empty chunk."""
        return None if self.first_token_ns is None else self.first_token_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One normalised v2 event, stamped with the time it happened.

    `kind="stream"` events are coalesced: `data["chunks"]` holds `[ts_ns, chunk]`
    pairs for one run, so a token stream costs one record per flush, not one per token.
    """

    trace_id: str
    kind: EventKind
    event: str
    run_id: str
    parent_ids: tuple[str, ...]
    name: str
    run_type: RunType
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    data: Mapping[str, Any]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TraceStart:
    """The opening record of a trace: who, when, and with which library versions."""

    trace_id: str
    name: str
    start_ns: int
    root_run_id: str
    otel_parent_span_id: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    max_attr_chars: int | None = None
    """The traced runnable's limit for attribute-sized text (exporters cut content to it)."""


@dataclass(frozen=True, slots=True)
class TraceEnd:
    """The closing record of a trace: how it ended and how much it held."""

    trace_id: str
    status: Status
    end_ns: int
    span_count: int
    event_count: int
    error: SpanError | None = None


Record = TraceStart | TraceEvent | Span | TraceEnd
"""Everything an exporter can be handed: the lines of a trace, in order."""


@dataclass(frozen=True, slots=True)
class SpanNode:
    """A span with its children, as returned by `Trace.tree()`."""

    span: Span
    children: tuple[SpanNode, ...] = ()

    def walk(self) -> Iterator[SpanNode]:
        """This node and every node under it, depth first, parents before children
        (an explicit stack: a deep chain of spans cannot exhaust the recursion limit)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def shape(self) -> dict[str, Any]:
        """The tree as nested `{name: [children...]}` dicts, handy in assertions."""
        shapes: dict[int, dict[str, Any]] = {}
        for node in reversed(list(self.walk())):  # children before their parents
            kids = [shapes.pop(id(child)) for child in node.children]
            shapes[id(node)] = {node.span.name: kids}
        return shapes[id(self)]

    def render(self) -> str:
        """A plain-text tree: name, run type, status, duration and time to first chunk."""
        lines: list[str] = []
        stack: list[tuple[SpanNode, str, str]] = [(self, "", "")]
        while stack:
            node, head, tail = stack.pop()
            lines.append(f"{head}{node._label()}")
            last = len(node.children) - 1
            for i, child in reversed(list(enumerate(node.children))):
                stack.append(
                    (
                        child,
                        tail + ("└─ " if i == last else "├─ "),
                        tail + ("   " if i == last else "│  "),
                    )
                )
        return "\n".join(lines)

    def _label(self) -> str:
        span = self.span
        facts = [span.run_type, span.status, f"{span.duration_ns / 1e6:.1f} ms"]
        ttft = span.time_to_first_chunk_ns
        if ttft is not None:
            facts.append(f"ttft {ttft / 1e6:.1f} ms")
        if span.chunk_count:
            facts.append(f"{span.chunk_count} chunks")
        if span.usage is not None and span.usage.total_tokens is not None:
            facts.append(f"{span.usage.total_tokens} tokens")
        return f"{span.name} [{', '.join(facts)}]"

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything recorded for one traced call: its spans and events, in order."""

    trace_id: str
    name: str
    status: Status
    start_ns: int
    end_ns: int
    spans: tuple[Span, ...]
    trace_events: tuple[TraceEvent, ...] = ()
    """The normalised v2 events of the call, in order (a span's own point-in-time
    events are `Span.events`)."""
    root_run_id: str | None = None

    @property
    def root(self) -> Span:
        """The span of the traced runnable's own run."""
        for span in self.spans:
            if span.span_id == self.root_run_id:
                return span
        ids = {span.span_id for span in self.spans}
        for span in self.spans:
            if span.parent_id not in ids:
                return span
        raise LookupError(f"trace {self.trace_id} has no spans")

    def span(self, name: str) -> Span:
        """The first span (in start order) with this name."""
        for span in sorted(self.spans, key=lambda s: s.start_ns):
            if span.name == name:
                return span
        raise LookupError(f"no span named {name!r} in trace {self.trace_id}")

    def children(self, span: Span) -> list[Span]:
        """The spans whose parent is `span`, in start order."""
        return sorted(
            (s for s in self.spans if s.parent_id == span.span_id), key=lambda s: s.start_ns
        )

    def tree(self) -> SpanNode:
        """The spans as a tree under the root, children in start order.

        Linear and without recursion: one index of children by parent id, nodes built
        bottom-up. Each span appears at most once, so parent links that loop (which
        `read_traces` refuses anyway) or repeated span ids cannot make it loop or blow up.
        """
        by_parent: dict[str | None, list[int]] = {}
        for position, span in enumerate(self.spans):
            by_parent.setdefault(span.parent_id, []).append(position)
        root = self.root
        root_position = next(i for i, s in enumerate(self.spans) if s is root)
        placed = {root_position}
        order = [root_position]  # parents before children
        kids: dict[int, list[int]] = {}
        for position in order:  # grows while it is walked: a breadth-first queue
            mine = [i for i in by_parent.get(self.spans[position].span_id, ()) if i not in placed]
            mine.sort(key=lambda i: self.spans[i].start_ns)
            placed.update(mine)
            kids[position] = mine
            order.extend(mine)
        nodes: dict[int, SpanNode] = {}
        for position in reversed(order):
            children = tuple(nodes.pop(i) for i in kids[position])
            nodes[position] = SpanNode(self.spans[position], children)
        return nodes[root_position]


_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """`cls` (a frozen, slotted dataclass) with an `__init__` that stores each field
    through its slot descriptor: the generated one goes through `object.__setattr__`,
    a name look-up per field, which made building a record about twice as slow. Same
    parameters, defaults and default factories; still frozen afterwards."""
    params: list[str] = []
    lines: list[str] = []
    env: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    for i, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if not f.init or f.kw_only:
            raise TypeError(f"quick_init: {cls.__name__}.{f.name} is not a plain field")
        env[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            lines.append(f"    _set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            lines.append(f"    _set{i}(self, _f{i}() if {f.name} is _MISSING else {f.name})")
        else:
            params.append(f.name)
            lines.append(f"    _set{i}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init: {cls.__name__} has __post_init__")
    source = f"def __init__(self, {', '.join(params)}) -> None:\n" + "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {}
    exec(source, env, namespace)  # generated from the field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


for _record in (Usage, SpanError, SpanEvent, Span, TraceEvent, TraceStart, TraceEnd, Trace):
    quick_init(_record)
