"""JSON conversion that never raises, and the allow-listed way back.

LangChain objects are written in LangChain's own serialised form (`dumpd`), so a
reader can rebuild the same messages, documents and prompt values. User data that
merely looks like that form is escaped the way LangChain escapes it, so a trace file
can never smuggle a constructor call into a reader.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
import uuid
import warnings
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

from langchain_core import messages, outputs, prompt_values
from langchain_core.documents import Document
from langchain_core.load import Serializable, dumpd, load
from pydantic import BaseModel

MAX_DEPTH = 64
_ESCAPE_KEY = ESCAPE_KEY = "__lcel_escaped__"

# Data classes a reader may rebuild: messages and chunks, documents, prompt values,
# generations. Nothing that runs code, holds secrets or talks to the network.
_ALLOWED_CLASSES: tuple[type[Serializable], ...] = (
    messages.AIMessage,
    messages.AIMessageChunk,
    messages.HumanMessage,
    messages.HumanMessageChunk,
    messages.SystemMessage,
    messages.SystemMessageChunk,
    messages.ToolMessage,
    messages.ToolMessageChunk,
    messages.ChatMessage,
    messages.ChatMessageChunk,
    messages.FunctionMessage,
    messages.FunctionMessageChunk,
    messages.RemoveMessage,
    Document,
    prompt_values.ChatPromptValue,
    prompt_values.ChatPromptValueConcrete,
    prompt_values.StringPromptValue,
    outputs.Generation,
    outputs.GenerationChunk,
    outputs.ChatGeneration,
    outputs.ChatGenerationChunk,
)


def to_jsonable(value: Any, max_str: int | None = None) -> Any:
    """A JSON-safe copy of `value`; LangChain objects in their serialised form.

    Strings longer than `max_str` characters are cut and end with a visible
    `…[truncated N chars]` marker, so a cut is never silent.
    """
    try:
        return _convert(value, 0, trusted=False, max_str=max_str)
    except Exception as exc:  # never raise: a trace is not worth a crash
        return {"__unserializable__": _safe_repr(value), "reason": repr(exc)}


def convert(value: Any, max_str: int | None = None, depth: int = 0) -> Any:
    """`to_jsonable` for a value found `depth` levels down in another, raising on
    failure, so a caller converting a structure piece by piece can fall back to the
    whole (the same result as `to_jsonable` of the whole, piece for piece)."""
    return _convert(value, depth, trusted=False, max_str=max_str)


def truncate(text: str, limit: int | None) -> str:
    """`text` cut to its first `limit` characters plus `…[truncated N chars]`, N the
    characters left out; unchanged when it fits or `limit` is None.

    The one way lcel-trace shortens text (JSONL values, OpenTelemetry attributes and
    message parts, log fields), so a cut is never silent and always reads the same."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _convert(value: Any, depth: int, *, trusted: bool, max_str: int | None) -> Any:
    kind = type(value)  # exact built-in types first: most of what a trace holds
    if kind is str:
        return value if max_str is None or len(value) <= max_str else truncate(value, max_str)
    if kind is dict and depth < MAX_DEPTH:
        converted = {
            (k if type(k) is str else str(k)): _convert(
                v, depth + 1, trusted=trusted, max_str=max_str
            )
            for k, v in value.items()
        }
        if not trusted and ("lc" in converted or _ESCAPE_KEY in converted):
            return {_ESCAPE_KEY: converted}
        return converted
    if kind is list and depth < MAX_DEPTH:
        return [_convert(v, depth + 1, trusted=trusted, max_str=max_str) for v in value]
    if isinstance(value, str):
        return truncate(value, max_str)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= MAX_DEPTH:
        return "<max depth>"
    if isinstance(value, Serializable) and value.is_lc_serializable():
        return _convert(dumpd(value), depth + 1, trusted=True, max_str=max_str)
    if isinstance(value, Mapping):
        converted = {
            str(k): _convert(v, depth + 1, trusted=trusted, max_str=max_str)
            for k, v in value.items()
        }
        if not trusted and ("lc" in converted or _ESCAPE_KEY in converted):
            return {_ESCAPE_KEY: converted}
        return converted
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_convert(v, depth + 1, trusted=trusted, max_str=max_str) for v in value]
    if isinstance(value, BaseModel):
        return _convert(value.model_dump(mode="json"), depth + 1, trusted=False, max_str=max_str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, depth + 1, trusted=False, max_str=max_str)
    if isinstance(value, BaseException):
        return {"error_type": qualified_name(type(value)), "message": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth + 1, trusted=trusted, max_str=max_str)
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    return {"__repr__": _safe_repr(value)}


def from_jsonable(value: Any) -> Any:
    """Rebuild allow-listed LangChain objects from `to_jsonable` output; never secrets.

    Raises `ValueError` when the value names a class outside the allow-list.
    """
    return _revive(value, 0)


def _revive(value: Any, depth: int) -> Any:
    if depth >= MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [_revive(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if _ESCAPE_KEY in value and len(value) == 1 and isinstance(value[_ESCAPE_KEY], dict):
        return {k: _revive(v, depth + 1) for k, v in value[_ESCAPE_KEY].items()}
    if value.get("lc") == 1 and "type" in value:
        return _load_langchain_object(value)
    return {k: _revive(v, depth + 1) for k, v in value.items()}


def _load_langchain_object(value: dict[str, Any]) -> Any:
    if value["type"] != "constructor":
        raise ValueError(f"refusing LangChain {value['type']!r} entry (only constructors load)")
    from langchain_core._api import LangChainBetaWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangChainBetaWarning)
        try:
            return load(
                value, allowed_objects=_ALLOWED_CLASSES, secrets_from_env=False, secrets_map={}
            )
        except (ValueError, KeyError, TypeError, NotImplementedError, ImportError) as exc:
            raise ValueError(f"cannot rebuild LangChain object: {exc}") from exc


def qualified_name(cls: type) -> str:
    module = cls.__module__
    return (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} with failing repr>"
    return truncate(text, 1000)
