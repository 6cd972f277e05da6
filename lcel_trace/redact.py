"""Keep secrets and, when asked, all content out of everything a trace emits.

One `Redactor` per traced runnable is applied wherever content leaves the wrapper:
span inputs and outputs, event data, recorded chunks and error messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import SecretBytes, SecretStr

REDACTED = "[REDACTED]"

SECRET_KEY = re.compile(
    r"(?i)(api[_-]?key|secret|password|passwd|authorization|auth[_-]?header|cookie|"
    r"credential|private[_-]?key|access[_-]?key|(^|[_-])token$)"
)
"""Key names whose values are secrets. `token` only as a whole last word: `access_token`
is a secret, `max_tokens` and `total_tokens` are counts."""
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{16,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)"
)
# A cheap first look: texts without any of these fragments cannot match SECRET_VALUE
# (the full pattern is several times slower on long, clean text).
_SECRET_HINT = re.compile(r"sk-|earer|EARER|AKIA|gh[pousr]_|xox|PRIVATE KEY")
_MAX_DEPTH = 32

Redact = Callable[[Any], Any]


class Redactor:
    """Default secret scrubbing, then the user's own `redact` hook, then `capture_content`."""

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
        return self._user(cleaned) if self._user is not None else cleaned

    def chunk(self, value: Any) -> Any:
        """A stream chunk: as `content`, but never remembered (there are many)."""
        return Redactor.content(self, value)

    def for_one_trace(self) -> Redactor:
        """A redactor that remembers its results by object identity for one trace: the
        same input object reaches an event and a span, and is scrubbed only once."""
        return _MemoRedactor(self._user, capture_content=self.capture_content)

    def text(self, value: str) -> str:
        """An error message or other free text: secrets scrubbed, the user hook applied."""
        cleaned = scrub_text(value)
        if self._user is not None:
            result = self._user(cleaned)
            return result if isinstance(result, str) else str(result)
        return cleaned


class _MemoRedactor(Redactor):
    __slots__ = ("_memo",)

    def __init__(self, redact: Redact | None, *, capture_content: bool) -> None:
        super().__init__(redact, capture_content=capture_content)
        self._memo: dict[int, tuple[Any, Any]] = {}

    def content(self, value: Any) -> Any:
        if value is None or isinstance(value, (int, float, bool)):
            return super().content(value)
        if isinstance(value, str) and len(value) < 256:  # cheaper to scan than to remember
            return super().content(value)
        hit = self._memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        result = super().content(value)
        self._memo[id(value)] = (value, result)  # holding `value` keeps its id unique
        return result


def scrub_text(text: str) -> str:
    if not _SECRET_HINT.search(text) or not SECRET_VALUE.search(text):
        return text
    return SECRET_VALUE.sub(REDACTED, text)


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with secret-looking keys and values replaced; unchanged objects reused."""
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, (bool, int, float)) or depth >= _MAX_DEPTH:
        return value
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if isinstance(value, Mapping):
        out = {
            k: (
                REDACTED
                if isinstance(k, str) and SECRET_KEY.search(k) and v
                else scrub(v, depth + 1)
            )
            for k, v in value.items()
        }
        return value if all(out[k] is v for k, v in value.items()) else out
    if isinstance(value, (list, tuple)):
        items = [scrub(v, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, BaseMessage):
        return _scrub_fields(value, ("content", "additional_kwargs"), depth)
    if isinstance(value, Document):
        return _scrub_fields(value, ("page_content", "metadata"), depth)
    if hasattr(value, "messages") and isinstance(getattr(value, "messages", None), list):
        return _scrub_fields(value, ("messages",), depth)
    return value


def _scrub_fields(obj: Any, names: tuple[str, ...], depth: int) -> Any:
    update = {}
    for name in names:
        current = getattr(obj, name)
        cleaned = scrub(current, depth + 1)
        if cleaned is not current:
            update[name] = cleaned
    return obj.model_copy(update=update) if update else obj
