"""The redaction stage: keep secrets and, when asked, all content out of what a trace emits.

Everything a trace emits passes here once, on its way from a producer's event to the
records the exporters receive: run names, tags and metadata (at the run's start), event
data (an event's record and the span it ends share the result), stream chunks (with a
secret split across chunks caught on the run's text as a whole), error messages. Each
value gets the built-in secret scrubbing (the rules in `scrub.py`), then the user's
`redact` hook, then `capture_content`. `Redactor` is what `trace(redact=...,
capture_content=...)` asked for; `TraceRedaction` applies it to one trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import GenerationChunk

from lcel_trace._log import warn_once
from lcel_trace.normalise import error_message
from lcel_trace.scrub import (
    MAX_DEPTH,
    REDACTED,
    SECRET_KEY,
    TOO_DEEP,
    is_secret_key,
    key_words,
    scrub,
    scrub_after,
    scrub_flat_mapping,
    scrub_text,
    secret_across,
    secret_spans,
)
from lcel_trace.serialize import qualified_name
from lcel_trace.span import SpanError

__all__ = [
    "MAX_DEPTH",
    "REDACTED",
    "SECRET_KEY",
    "TOO_DEEP",
    "Redact",
    "Redactor",
    "TraceRedaction",
    "is_secret_key",
    "key_words",
    "scrub",
    "scrub_flat_mapping",
    "scrub_text",
    "secret_spans",
]

Redact = Callable[[Any], Any]

_CONTENT_KEYS = frozenset(("input", "output", "data", "chunk"))
_NOTHING: Mapping[str, Any] = MappingProxyType({})
_CONTEXT_CHARS = 4096
"""Text recorded earlier that a later hand-off's scrubbing of a run's chunks sees as context."""
_HOLD_CHARS = 256
"""Text kept back at a mid-stream hand-off, so a secret cut there is seen whole."""
_MAX_HELD_CHARS = 4096
"""A secret that a hand-off would cut is held back whole up to this size; a longer one is
recorded redacted piece by piece (its start kept as context, see below)."""
_MAX_GROWING_CHARS = 16384
"""A secret still arriving is kept as context whole up to this size; beyond it, only its
start is (enough for its continuation to be recognised, and dropped, too)."""


class Redactor:
    """Default secret scrubbing, then the user's own `redact` hook, then `capture_content`.

    A user hook that raises costs the one value it failed on (it becomes REDACTED and the
    failure is logged once), never the trace."""

    __slots__ = ("_user", "capture_content")

    def __init__(self, redact: Redact | None = None, *, capture_content: bool = True) -> None:
        if redact is not None and not callable(redact):
            raise TypeError("redact must be a callable taking a value and returning it redacted")
        self._user = redact
        self.capture_content = capture_content

    def content(self, value: Any) -> Any:
        """Content as it may leave the wrapper (None when content capture is off)."""
        if not self.capture_content or value is None:
            return None
        cleaned = scrub(value)
        return self._apply_user(cleaned) if self._user is not None else cleaned

    def text(self, value: str) -> str:
        """An error message or other free text: secrets scrubbed, the user hook applied."""
        cleaned = scrub_text(value)
        if self._user is not None:
            result = self._apply_user(cleaned)
            return result if isinstance(result, str) else str(result)
        return cleaned

    def for_one_trace(self, *, content: bool = True) -> TraceRedaction:
        """The stage for one trace (`content=False`: nobody receives its content)."""
        if content:
            return TraceRedaction(self._user, capture_content=self.capture_content)
        return TraceRedaction(None, capture_content=False, received=False)

    def _apply_user(self, value: Any) -> Any:
        assert self._user is not None
        try:
            return self._user(value)
        except Exception as error:  # a broken hook must cost one value only
            warn_once("redact hook failed", error_type=type(error).__name__)
            return REDACTED


class TraceRedaction(Redactor):
    """The redaction stage of one trace, called by its session for everything it emits.

    Remembers what each long string scrubbed to (the same text reaches later runs, an
    output becoming the next step's input, and is scanned once); only immutable values
    are remembered, so a container changed between two recordings is recorded as it
    was each time. Keeps, per streaming run, the end of its text recorded so far."""

    __slots__ = ("_memo", "_received", "_tails")

    def __init__(
        self, redact: Redact | None, *, capture_content: bool, received: bool = True
    ) -> None:
        super().__init__(redact, capture_content=capture_content)
        self._received = received
        self._memo: dict[int, tuple[str, str]] = {}
        self._tails: dict[str, str] = {}

    # -- who a run is: scrubbed once, at its start ------------------------------------

    name = staticmethod(scrub_text)
    """A run's or a trace's name."""

    @staticmethod
    def tags(tags: Sequence[str] | None) -> tuple[str, ...]:
        return tuple(map(scrub_text, tags)) if tags else ()

    @staticmethod
    def metadata(metadata: Any) -> Any:
        """Run metadata as it leaves the process: secrets out, a snapshot of its own."""
        if metadata is None:
            return {}
        return scrub_flat_mapping(metadata) if type(metadata) is dict else scrub(metadata)

    # -- what happened -----------------------------------------------------------------

    def data(self, data: Mapping[str, Any], *, whole: bool = True) -> Mapping[str, Any]:
        """An event's data as it may leave the process: content (`input`, `output`,
        `data`, `chunk`) redacted, an exception as its type and redacted message, other
        values (request parameters...) scrubbed of secrets; `whole=False` leaves those
        out (for a span alone, which takes only content and errors from here)."""
        if not self._received:
            return _NOTHING  # for a span nobody receives
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            if key == "error":
                cleaned[key] = (
                    {
                        "error_type": qualified_name(type(value)),
                        "message": self.text(error_message(value)),
                    }
                    if isinstance(value, BaseException)
                    else value
                )
            elif key in _CONTENT_KEYS:
                cleaned[key] = self.content(value)
            elif whole:
                cleaned[key] = scrub(value)
        return cleaned

    def content(self, value: Any) -> Any:
        if not self.capture_content or value is None:
            return None
        cleaned = scrub(value, text=self._text)
        return self._apply_user(cleaned) if self._user is not None else cleaned

    def error(self, error: BaseException) -> SpanError:
        """How the trace ended, when an exception ended it."""
        return SpanError(qualified_name(type(error)), self.text(error_message(error)))

    # -- stream chunks -----------------------------------------------------------------

    def chunks(
        self, run_id: str, chunks: list[list[Any]], *, final: bool
    ) -> tuple[list[list[Any]], list[list[Any]]]:
        """One run's `[ts_ns, chunk]`s at a hand-off: those to record now, redacted, and
        those to keep back for the next hand-off (mid-stream, the chunks holding the last
        `_HOLD_CHARS` characters: a secret may continue in the chunks to come).

        A secret split across chunks (`' Bearer'`, `' abc…'`) is caught on the run's
        text as a whole, with what was recorded before as context (and the start of a
        secret still arriving, however long ago). Only the chunks that overlap what
        scrubbing changed are rewritten, so recorded chunks keep their boundaries
        wherever there is no secret."""
        across = self.capture_content
        held: list[list[Any]] = []
        if across and not final:
            count = self._held_back(run_id, chunks)
            if count:
                held = chunks[len(chunks) - count :]
                chunks = chunks[: len(chunks) - count]
        if not chunks:
            return [], held
        values = [chunk for _, chunk in chunks]
        if across:  # on the text as it streamed: a chunk scrubbed alone hides its context
            values = self._scrubbed_across(run_id, values, final)
        return [
            [ts, Redactor.content(self, v)] for (ts, _), v in zip(chunks, values, strict=True)
        ], held

    def _held_back(self, run_id: str, chunks: list[list[Any]]) -> int:
        """How many trailing chunks to keep for the next hand-off: those holding the last
        `_HOLD_CHARS` characters of text, and back to the start of a secret that begins
        before them and continues into them (up to `_MAX_HELD_CHARS` of text)."""
        count = _held_tail(chunks)
        texts = [chunk_text(chunk) or "" for _, chunk in chunks]
        context = self._tails.get(run_id, "")
        whole = context + "".join(texts)
        cut = len(whole) - sum(map(len, texts[len(texts) - count :]))
        start = secret_across(whole, cut)
        if start is None or len(whole) - start > _MAX_HELD_CHARS:
            return count
        position = len(context)
        for i, text in enumerate(texts):
            position += len(text)
            if position > start:
                return len(texts) - i
        return count

    def _scrubbed_across(self, run_id: str, values: list[Any], final: bool) -> list[Any]:
        context = self._tails.pop(run_id, "")
        texts = [chunk_text(value) for value in values]
        fresh = "".join(t for t in texts if t is not None)
        if not fresh:
            if not final:
                self._tails[run_id] = context
            return values
        joined = context + fresh
        scrubbed, growing = scrub_after(joined, len(context))
        if not final:
            self._tails[run_id] = _next_context(joined, growing)
        if scrubbed == fresh:
            return values
        realigned = _realigned(texts, fresh, scrubbed)
        return [
            value if text is None or text == old else with_chunk_text(value, text)
            for value, old, text in zip(values, texts, realigned, strict=True)
        ]

    def _text(self, text: str) -> str:
        if len(text) < 256:  # cheaper to scan than to remember
            return scrub_text(text)
        hit = self._memo.get(id(text))
        if hit is not None and hit[0] is text:
            return hit[1]
        result = scrub_text(text)
        self._memo[id(text)] = (text, result)  # holding `text` keeps its id unique
        return result


def _next_context(joined: str, growing: int | None) -> str:
    """What the next hand-off scans in front of its text: the last `_CONTEXT_CHARS`
    characters, reaching back to the start of a secret still arriving (only its start,
    when it is longer than `_MAX_GROWING_CHARS`)."""
    keep_from = len(joined) - _CONTEXT_CHARS
    if growing is not None:
        keep_from = min(keep_from, growing - 1)
        if len(joined) - growing > _MAX_GROWING_CHARS:
            return joined[max(0, growing - 1) : growing + _HOLD_CHARS]
    return joined[max(0, keep_from) :]


def chunk_text(chunk: Any) -> str | None:
    """The text a stream chunk carries, if it carries plain text."""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, BaseMessage):
        return chunk.content if isinstance(chunk.content, str) else None
    if isinstance(chunk, GenerationChunk):
        return chunk.text
    return None


def with_chunk_text(chunk: Any, text: str) -> Any:
    """`chunk` with its text replaced (the same object when nothing changed)."""
    if isinstance(chunk, str):
        return text
    if isinstance(chunk, BaseMessage):
        return chunk if chunk.content == text else chunk.model_copy(update={"content": text})
    if isinstance(chunk, GenerationChunk):
        return chunk if chunk.text == text else chunk.model_copy(update={"text": text})
    return chunk


def _held_tail(chunks: list[list[Any]]) -> int:
    """How many trailing chunks hold the last `_HOLD_CHARS` characters of text."""
    held = size = 0
    for _ts, chunk in reversed(chunks):
        text = chunk_text(chunk)
        if text is not None:
            size += len(text)
        if size > _HOLD_CHARS or held >= _HOLD_CHARS:
            break
        held += 1
    return held


def _realigned(texts: list[str | None], joined: str, scrubbed: str) -> list[str | None]:
    """Each chunk's text after `joined` (its texts) became `scrubbed`: chunks outside the
    changed window keep their text; the first chunk in it takes the scrubbed window, the
    others keep only what lies outside it. Linear."""
    start = 0
    limit = min(len(joined), len(scrubbed))
    while start < limit and joined[start] == scrubbed[start]:
        start += 1
    tail = 0
    while tail < limit - start and joined[-1 - tail] == scrubbed[-1 - tail]:
        tail += 1
    old_end, new_end = len(joined) - tail, len(scrubbed) - tail
    window = scrubbed[start:new_end]
    out: list[str | None] = []
    position = 0
    placed = False
    for text in texts:
        if text is None:
            out.append(None)
            continue
        begin, end = position, position + len(text)
        position = end
        if end <= start or (begin >= old_end and (placed or begin > start)):
            out.append(text)
            continue
        kept_before = text[: max(0, start - begin)]
        kept_after = text[max(0, old_end - begin) :] if end > old_end else ""
        out.append(kept_before + ("" if placed else window) + kept_after)
        placed = True
    return out
