"""Immutable records of a trace: spans, normalised events, trace boundaries.

Records are frozen so that exporters running on other threads can never see a
half-updated value; the builders that accumulate them live in `assemble.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any, Literal

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


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        run_type: RunType,
        start_ns: int,
        end_ns: int,
        status: Status,
        error: SpanError | None = None,
        inputs: Any = None,
        outputs: Any = None,
        tags: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
        chunk_count: int = 0,
        first_chunk_ns: int | None = None,
        usage: Usage | None = None,
        model: str | None = None,
        events: tuple[SpanEvent, ...] = (),
        attributes: Mapping[str, Any] | None = None,
        first_token_ns: int | None = None,
    ) -> None:
        # Frozen, so fields are stored through their slots' own setters: the generated
        # __init__'s object.__setattr__ per field made a record twice as slow to build.
        s = _SPAN_SLOTS
        s.trace_id(self, trace_id)
        s.span_id(self, span_id)
        s.parent_id(self, parent_id)
        s.name(self, name)
        s.run_type(self, run_type)
        s.start_ns(self, start_ns)
        s.end_ns(self, end_ns)
        s.status(self, status)
        s.error(self, error)
        s.inputs(self, inputs)
        s.outputs(self, outputs)
        s.tags(self, tags)
        s.metadata(self, {} if metadata is None else metadata)
        s.chunk_count(self, chunk_count)
        s.first_chunk_ns(self, first_chunk_ns)
        s.usage(self, usage)
        s.model(self, model)
        s.events(self, events)
        s.attributes(self, {} if attributes is None else attributes)
        s.first_token_ns(self, first_token_ns)

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


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        trace_id: str,
        kind: EventKind,
        event: str,
        run_id: str,
        parent_ids: tuple[str, ...],
        name: str,
        run_type: RunType,
        tags: tuple[str, ...],
        metadata: Mapping[str, Any],
        data: Mapping[str, Any],
        ts_ns: int,
    ) -> None:
        s = _EVENT_SLOTS  # one per event: built as `Span` is, through the slots' setters
        s.trace_id(self, trace_id)
        s.kind(self, kind)
        s.event(self, event)
        s.run_id(self, run_id)
        s.parent_ids(self, parent_ids)
        s.name(self, name)
        s.run_type(self, run_type)
        s.tags(self, tags)
        s.metadata(self, metadata)
        s.data(self, data)
        s.ts_ns(self, ts_ns)


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
        for node, _ in self.walk_with_depth():
            yield node

    def walk_with_depth(self) -> Iterator[tuple[SpanNode, int]]:
        """As `walk`, each node with its depth below this one (0 for this one)."""
        stack = [(self, 0)]
        while stack:
            node, depth = stack.pop()
            yield node, depth
            stack.extend((child, depth + 1) for child in reversed(node.children))

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
        """The spans as a tree under the root (`span_tree`)."""
        return span_tree(self.spans, self.root_run_id)


def span_tree(spans: Sequence[Span], root_run_id: str | None = None) -> SpanNode:
    """The one way a trace's spans become a tree (`Trace.tree()`, the HTML timeline and
    the OpenTelemetry exporter all use it).

    The root is the span `root_run_id` names, else the earliest span whose parent is not
    in the trace. Children come in start order. A span whose parent is not in the trace
    (LangChain lost the link, or the file lost the line) hangs under the root, as the
    recorder hangs a run without parents under the call it ran in; so does a span only
    reachable through a loop of parent links. Every span appears exactly once. Linear and
    without recursion: one index of children by parent id, nodes built bottom-up.
    """
    if not spans:
        raise LookupError("no spans to build a tree from")
    ids = {span.span_id for span in spans}
    by_parent: dict[str | None, list[int]] = {}
    for position, span in enumerate(spans):
        by_parent.setdefault(span.parent_id, []).append(position)
    root = next((i for i, s in enumerate(spans) if s.span_id == root_run_id), None)
    if root is None:
        outside = [i for i, s in enumerate(spans) if s.parent_id not in ids] or [0]
        root = min(outside, key=lambda i: spans[i].start_ns)
    placed = {root}
    order = [root]  # parents before children
    kids: dict[int, list[int]] = {}

    def grow(walked: int) -> None:  # breadth first from order[walked]: a queue that grows
        while walked < len(order):
            position = order[walked]
            mine = [i for i in by_parent.get(spans[position].span_id, ()) if i not in placed]
            mine.sort(key=lambda i: spans[i].start_ns)
            placed.update(mine)
            kids[position] = mine
            order.extend(mine)
            walked += 1

    grow(0)
    if len(placed) < len(spans):  # some are not reachable from the root: under it
        for position in sorted(range(len(spans)), key=lambda i: spans[i].start_ns):
            if position not in placed:
                placed.add(position)
                kids[root].append(position)
                order.append(position)
                grow(len(order) - 1)
        kids[root].sort(key=lambda i: spans[i].start_ns)
    nodes: dict[int, SpanNode] = {}
    for position in reversed(order):
        children = tuple(nodes.pop(i) for i in kids[position])
        nodes[position] = SpanNode(spans[position], children)
    return nodes[root]


def _slot_setters(cls: type) -> Any:
    """Each slot's own setter, by field name, for a frozen record's hand-written `__init__`."""
    return SimpleNamespace(**{f.name: vars(cls)[f.name].__set__ for f in fields(cls)})


_SPAN_SLOTS = _slot_setters(Span)
_EVENT_SLOTS = _slot_setters(TraceEvent)
