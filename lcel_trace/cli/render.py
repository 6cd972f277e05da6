"""A trace drawn as a rich tree: the labels `show` and `tail` print."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lcel_trace import cost as pricing
from lcel_trace.cli.common import MODEL_RUN_TYPES, STATUS_STYLE, cell, token_sum
from lcel_trace.span import Span, SpanNode, Trace
from lcel_trace.terminal import one_line, visible

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.text import Text
    from rich.tree import Tree


def print_tree(console: Console, trace: Trace, *, content: bool = False) -> None:
    """One trace as a tree; every string from the file printed as text, never markup."""
    from rich.text import Text
    from rich.tree import Tree

    header = Text.assemble(
        (visible(trace.name), "bold"),
        f" trace {visible(trace.trace_id)} ",
        (visible(trace.status), STATUS_STYLE.get(trace.status, "")),
        f" {(trace.end_ns - trace.start_ns) / 1e6:.1f} ms",
    )
    model_spans = [s for s in trace.spans if s.run_type in MODEL_RUN_TYPES]
    if model_spans:
        tokens_in, tokens_out = token_sum(model_spans, "input"), token_sum(model_spans, "output")
        header.append(f", tokens {tokens_in} in / {tokens_out} out")
        if any(pricing.priceable(s) for s in model_spans):
            header.append(f", {_cost_text(*pricing.total_cost(model_spans))}")
    tree = Tree(header)
    if trace.spans:
        _add_node(tree, trace.tree(), content, console.width)
    console.print(tree)


def _add_node(parent: Tree, node: SpanNode, content: bool, width: int) -> None:
    """Add `node` and everything under it to `parent`, iteratively (a chain thousands of
    runs deep cannot reach Python's recursion limit). Indentation stops at
    `_indent_levels(width)`: deeper spans are drawn at that level, each label starting
    with `[depth N]`, so no span is lost to a terminal too narrow for its indentation."""
    from rich.text import Text

    levels = _indent_levels(width)
    stack: list[tuple[Tree, SpanNode, int]] = [(parent, node, 0)]
    while stack:
        into, current, depth = stack.pop()
        text = _span_label(current.span)
        if depth > levels:
            text = Text.assemble((f"[depth {depth}] ", "dim"), text)
        label: RenderableType = text
        if content:
            from rich.console import Group

            label = Group(label, *_content_lines(current.span, width))
        branch = into.add(label)
        below = branch if depth < levels else into
        stack.extend((below, child, depth + 1) for child in reversed(current.children))


def _indent_levels(width: int) -> int:
    """How many tree levels `show` indents on a console this wide (4 columns each),
    leaving at least 40 columns for the labels."""
    return max(8, (width - 40) // 4)


def _span_label(span: Span) -> Text:
    from rich.text import Text

    facts = [visible(span.run_type), f"{span.duration_ns / 1e6:.1f} ms"]
    first_chunk, first_token = span.time_to_first_chunk_ns, span.time_to_first_token_ns
    if first_chunk is not None and first_chunk != first_token:
        facts.append(f"first chunk {first_chunk / 1e6:.1f} ms")
    if first_token is not None:
        facts.append(f"first token {first_token / 1e6:.1f} ms")
    usage = span.usage
    if usage is not None and (usage.input_tokens, usage.output_tokens) != (None, None):
        tokens_in, tokens_out = (cell(n) for n in (usage.input_tokens, usage.output_tokens))
        facts.append(f"tokens {tokens_in} in / {tokens_out} out")  # priced by direction
    elif usage is not None and usage.total_tokens is not None:
        facts.append(f"{usage.total_tokens} tokens")
    elif span.run_type in MODEL_RUN_TYPES:
        facts.append("tokens unknown")
    if span.model:
        facts.append(visible(span.model))
    cost = pricing.span_cost(span) if pricing.priceable(span) else None
    if cost is not None:  # an unknown one is said once, in the trace's header
        facts.append(_cost_text(cost.total_usd, False))
    label = Text.assemble(
        visible(span.name),
        f" ({', '.join(facts)}) ",
        (visible(span.status), STATUS_STYLE.get(span.status, "")),
    )
    if span.error:
        label.append(f" {visible(span.error.type)}: {visible(span.error.message)}")
    return label


def _cost_text(usd: float | None, partial: bool) -> str:
    """A cost as `show` prints it: unknown is said, never shown as $0."""
    if usd is None:
        return "cost unknown"
    return f"cost {'≥' if partial else ''}{pricing.format_usd(usd)}"


def _content_lines(span: Span, width: int) -> list[Text]:
    """A span's inputs, outputs, tool calls and error, one line each, cut to `width`."""
    from rich.text import Text

    lines: list[tuple[str, str]] = []
    if span.inputs is not None:
        lines.append(("in", _summary(span.inputs)))
    if span.outputs is not None:
        lines.append(("out", _summary(span.outputs)))
    calls = [c for m in _messages(span.outputs) for c in getattr(m, "tool_calls", None) or ()]
    if calls:
        lines.append(("tool calls", ", ".join(_tool_call(c) for c in calls)))
    if span.error is not None:
        lines.append(("error", f"{span.error.type}: {span.error.message}"))
    return [
        Text.assemble(
            (f"{key}: ", "dim"), one_line(value, width), no_wrap=True, overflow="ellipsis"
        )
        for key, value in lines
    ]


def _summary(value: Any) -> str:
    """Content as a short readable string: messages as `type: text`, prompt values by
    their messages, containers by their parts."""
    if isinstance(value, str):
        return value
    to_messages = getattr(value, "to_messages", None)
    if callable(to_messages):
        return _summary(to_messages())
    if hasattr(value, "content") and isinstance(getattr(value, "type", None), str):
        text = value.content
        if not isinstance(text, str):
            text = " ".join(str(b.get("text", b)) if isinstance(b, dict) else str(b) for b in text)
        kind = value.type  # "ai", "human"...; a streamed message's is "AIMessageChunk"
        if kind.endswith("MessageChunk"):
            kind = kind.removesuffix("MessageChunk").lower()
        return f"{kind}: {text}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_summary(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " | ".join(_summary(v) for v in value)
    return str(value)


def _messages(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [m for v in value for m in _messages(v)]
    return [value] if hasattr(value, "tool_calls") else []


def _tool_call(call: Any) -> str:
    if not isinstance(call, dict):
        return str(call)
    args = json.dumps(call.get("args"), ensure_ascii=False, default=str)
    return f"{call.get('name')}({args})"
