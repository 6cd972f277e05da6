"""Compact JSON text of values that are already JSON-safe (`serialize.to_jsonable`'s
output, or trees built from it): one encoder for JSONL lines, OpenTelemetry attribute
text and log fields.

orjson (which LangSmith, and so every langchain-core install on CPython, already
brings) encodes a trace's lines about eight times faster than the standard library;
anything it refuses (a lone surrogate, an integer past 64 bits, a non-string key,
nesting past its limit) goes through the standard library instead, so the result is
always the same JSON value. Floats may be spelled differently (`1e16` for `1e+16`).
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - PyPy, or a stripped environment
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps_bytes", "dumps_text"]

_STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; a lone surrogate becomes U+FFFD.

    Raises TypeError for a value that is not JSON-safe, ValueError for a non-finite
    float on the standard library's path (orjson writes it as null)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return _STDLIB.encode(value).encode("utf-8", errors="replace")


def dumps_text(value: Any) -> str:
    """`value` as compact JSON text (see `dumps_bytes`): always valid UTF-8, so an
    exporter that encodes it again (OTLP's protobuf) never meets a lone surrogate."""
    return dumps_bytes(value).decode("utf-8")
