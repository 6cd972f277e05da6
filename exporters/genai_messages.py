"""LangChain chat messages in the OpenTelemetry GenAI message format and OpenInference's.

GenAI (`gen_ai.input.messages` / `gen_ai.output.messages`): a JSON list of
`{"role", "parts": [...], "finish_reason"?}`, parts typed `text`, `tool_call` or
`tool_call_response`. OpenInference (what Arize Phoenix renders): the same messages
flattened into `llm.input_messages.{i}.message.*` attributes. Long texts are cut part by
part (`lcel_trace.serialize.truncate`, with its marker), so the JSON stays whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from opentelemetry.util.types import AttributeValue

from lcel_trace.serialize import truncate

GenAIMessage = dict[str, Any]

# LangChain message type -> GenAI role
ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def input_messages(inputs: Any, limit: int) -> list[GenAIMessage] | None:
    """A chat model span's inputs (`{"messages": [[...]]}`) as GenAI messages."""
    if not isinstance(inputs, Mapping):
        return None
    batches = inputs.get("messages")
    if not batches or not isinstance(batches, Sequence):
        return None
    first = batches[0] if isinstance(batches[0], Sequence) else batches
    messages = [genai_message(m, limit) for m in first if isinstance(m, BaseMessage)]
    return messages or None


def output_messages(
    outputs: Any, finish_reason: str | None, limit: int
) -> list[GenAIMessage] | None:
    """A chat model span's output message as a one-element GenAI message list."""
    if not isinstance(outputs, BaseMessage):
        return None
    message = genai_message(outputs, limit)
    if finish_reason:
        message["finish_reason"] = finish_reason
    return [message]


def genai_message(message: BaseMessage, limit: int) -> GenAIMessage:
    parts: list[dict[str, Any]] = []
    if isinstance(message, ToolMessage):
        parts.append(
            {
                "type": "tool_call_response",
                "id": message.tool_call_id,
                "response": truncate(message.text, limit),
            }
        )
    else:
        parts.extend(_content_parts(message.content, limit))
    if isinstance(message, AIMessage):
        parts.extend(
            {"type": "tool_call", "id": c.get("id"), "name": c["name"], "arguments": c["args"]}
            for c in message.tool_calls
        )
    return {"role": ROLES.get(message.type, message.type), "parts": parts}


def _content_parts(content: str | list[Any], limit: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": truncate(content, limit)}] if content else []
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "content": truncate(block, limit)})
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append({"type": "text", "content": truncate(str(block.get("text", "")), limit)})
        elif isinstance(block, Mapping):
            parts.append({"type": str(block.get("type", "unknown"))})  # images etc.: kind only
    return parts


def openinference_attributes(
    prefix: str, messages: list[GenAIMessage]
) -> dict[str, AttributeValue]:
    """GenAI messages flattened the OpenInference way under `prefix` (`llm.input_messages`)."""
    attrs: dict[str, AttributeValue] = {}
    for i, message in enumerate(messages):
        key = f"{prefix}.{i}.message"
        attrs[f"{key}.role"] = message["role"]
        texts = [p["content"] for p in message["parts"] if p["type"] == "text"]
        responses = [p for p in message["parts"] if p["type"] == "tool_call_response"]
        if texts:
            attrs[f"{key}.content"] = "".join(texts)
        if responses:
            attrs[f"{key}.content"] = responses[0]["response"]
            attrs[f"{key}.tool_call_id"] = str(responses[0]["id"])
        calls = [p for p in message["parts"] if p["type"] == "tool_call"]
        for j, call in enumerate(calls):
            call_key = f"{key}.tool_calls.{j}.tool_call"
            if call["id"]:
                attrs[f"{call_key}.id"] = str(call["id"])
            attrs[f"{call_key}.function.name"] = call["name"]
            attrs[f"{call_key}.function.arguments"] = json.dumps(call["arguments"])
    return attrs
