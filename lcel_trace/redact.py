"""Keep secrets and, when asked, all content out of everything a trace emits.

One `Redactor` per traced runnable is applied wherever content leaves the wrapper:
span inputs and outputs, event data, recorded chunks and error messages.

Two rules find secrets. A *key rule* (`is_secret_key`) judges names: mapping keys,
pydantic and dataclass field names, and `name=value` / `"name": "value"` pairs in free
text. *Value patterns* recognise credentials by their shape wherever they appear in
text. Every pattern runs in time linear in the text: each starts at a literal prefix
behind a boundary check, continues with possessive (non-backtracking) character-class
runs, and a run cannot contain another start of the same pattern, so every character
is scanned a bounded number of times. A private key block is found by searching for
its END marker once from its BEGIN marker. Cheap substring checks decide which
patterns run at all, so text without any hint of a secret costs a few `in` scans.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, NamedTuple, cast

from pydantic import BaseModel, SecretBytes, SecretStr

REDACTED = "[REDACTED]"
TOO_DEEP = "[TOO DEEP]"
"""Stands for a value nested more than `MAX_DEPTH` levels down: too deep to check,
so it is never passed through."""
MAX_DEPTH = 32

Redact = Callable[[Any], Any]

# ---------------------------------------------------------------------------------------
# The key rule

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SECRET_ANYWHERE = frozenset({"secret", "secrets", "apikey", "privatekey"})
_SECRET_LAST = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "auth",
        "bearer",
        "cookie",
        "cookies",
        "apikey",
        "privatekey",
    }
)
_KEY_QUALIFIERS = frozenset(
    {"api", "private", "access", "secret", "signing", "encryption", "master", "client"}
)
_TOKEN_QUALIFIERS = frozenset(
    {
        "access",
        "refresh",
        "session",
        "auth",
        "id",
        "bearer",
        "api",
        "csrf",
        "xsrf",
        "oauth",
        "security",
        "personal",
        "bot",
        "client",
        "app",
        "user",
        "sas",
        "github",
        "slack",
        "hf",
    }
)


def key_words(key: str) -> tuple[str, ...]:
    """A name's lower-case words, split at `_`, `-`, `.`, spaces, digits and camelCase:
    `dbPassword` -> (db, password), `X-API-Key` -> (x, api, key)."""
    return tuple(word.lower() for word in _WORD.findall(key))


def _is_secret_words(words: tuple[str, ...]) -> bool:
    if not words:
        return False
    if any(word in _SECRET_ANYWHERE for word in words):
        return True
    last = words[-1]
    before = words[-2] if len(words) > 1 else ""
    if last in _SECRET_LAST:
        return True
    if last == "key":
        return before in _KEY_QUALIFIERS
    if last == "token":
        return not before or before in _TOKEN_QUALIFIERS
    return last == "header" and before in ("auth", "authorization")


def is_secret_key(key: str) -> bool:
    """Whether a value under this name is a secret, judged by the name's words.

    Secret when a word is `secret`/`secrets`/`apikey`/`privatekey` anywhere
    (`client_secret`, `AWS_SECRET_ACCESS_KEY`), or when the last word (what the name
    names) is a password (`password`, `passwd`, `pwd`, `passphrase`), a credential,
    `authorization`, `auth`, `bearer` or `cookie(s)`; or the last two words
    are a qualified key (`api_key`, `private_key`, `access_key`, `signing_key`...), or the
    last word is `token` alone or after a qualifier (`access_token`, `sessionToken`,
    `id_token`...). So `password_policy`, `secretary`, `cookie_recipe`, `next_token`,
    `max_tokens` and `api_key_rotation_days` are not secrets.
    """
    if len(key) > 64:  # too rare to remember
        return _is_secret_words(key_words(key))
    return _is_secret_short_key(key)


@lru_cache(maxsize=4096)
def _is_secret_short_key(key: str) -> bool:
    return _is_secret_words(key_words(key))


SECRET_KEY = is_secret_key
"""Kept for callers of the old name: the key rule, now a function."""

# ---------------------------------------------------------------------------------------
# Value patterns

_TOKEN_CHARS = "A-Za-z0-9_-"
_SEP = r"""(?:["']?[ \t]{0,8}+[:=][ \t]{0,8}+)"""


class _Pattern(NamedTuple):
    hints: tuple[str, ...]
    """Substrings of the lower-cased text, one of which any match contains."""
    regex: re.Pattern[str]
    group: int
    """The group to replace (0: the whole match, -1: the last group that matched)."""
    check: Callable[[re.Match[str]], bool] | None = None
    needs: tuple[str, ...] = ()
    """Substrings of which any match contains one as well (when not empty)."""


def _basic_credentials(match: re.Match[str]) -> bool:
    """`Basic <base64>` is a credential only if it decodes to `user:password`."""
    token = match.group(1)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _named_secret(match: re.Match[str]) -> bool:
    return is_secret_key(match.group(1))


_PATTERNS: tuple[_Pattern, ...] = (
    # OpenAI / Anthropic style: sk-..., where a word starts: after a hyphen too
    # (job-sk-proj-...), never inside one (task-management, risk-...).
    _Pattern(("sk-",), re.compile(rf"(?<![A-Za-z0-9_])sk-[{_TOKEN_CHARS}]{{16,}}+"), 0),
    # Stripe secret and restricted keys, live and test.
    _Pattern(
        ("k_live_", "k_test_"),
        re.compile(r"(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{10,}+"),
        0,
    ),
    _Pattern(
        ("akia", "asia"), re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}+(?![A-Z0-9])"), 0
    ),
    # An AWS secret access key: 40 base64 characters just after a name that says so.
    _Pattern(
        ("aws",),
        re.compile(
            r"(?i:aws[_-]?secret[a-z_-]{0,20}+)[\s\"':=]{1,10}+([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        1,
    ),
    _Pattern(("aiza",), re.compile(rf"(?<![{_TOKEN_CHARS}])AIza[{_TOKEN_CHARS}]{{35}}+"), 0),
    _Pattern(
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_\w{20,}+)"),
        0,
    ),
    _Pattern(("xox",), re.compile(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}+"), 0),
    # JWT: two base64url JSON segments (the signature may not have arrived yet).
    _Pattern(
        ("eyj",),
        re.compile(
            rf"(?<![{_TOKEN_CHARS}])eyJ[{_TOKEN_CHARS}]{{4,}}+\.eyJ[{_TOKEN_CHARS}]{{4,}}+"
            rf"(?:\.[{_TOKEN_CHARS}]*+)?"
        ),
        0,
    ),
    _Pattern(("bearer",), re.compile(r"(?i:bearer)[ \t]++[A-Za-z0-9._~+/=-]{16,}+"), 0),
    _Pattern(
        ("basic",),
        re.compile(r"(?<![A-Za-z0-9])(?i:basic)[ \t]++([A-Za-z0-9+/]{8,}+={0,2}+)"),
        0,
        _basic_credentials,
    ),
    # A password in a URL's user info: https://user:[REDACTED]@host. The password run
    # backtracks to the last `@`, but it cannot cross a `/`, so it never reaches the
    # next `://`: each character is still scanned from one start only.
    _Pattern(("://",), re.compile(r"://[^\s/?#@:]*+:([^\s/?#]+)@"), 1),
    # name=value, name: value, "name": "value" where the name passes the key rule; an
    # Authorization value keeps nothing of its scheme and token.
    _Pattern(
        (
            "pass",
            "pwd",
            "secret",
            "key",
            "token",
            "auth",
            "cookie",
            "credential",
            "bearer",
        ),
        re.compile(
            r"(?<![A-Za-z0-9_.-])([A-Za-z_][A-Za-z0-9_.-]{0,63}+)"
            + _SEP
            + r"""(?!//)(?:"((?:[^"\\\n]|\\.)*+)"|'([^'\n]*+)'"""
            r"""|((?:(?i:bearer|basic|token|digest)[ \t]++)?[^\s"'&,;]++))"""
        ),
        -1,
        _named_secret,
        (":", "="),
    ),
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,10}-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,10}-----")


_HINTS = tuple(sorted({hint for p in _PATTERNS for hint in p.hints} | {"private key"}))
"""Each pattern runs only on texts containing one of its hints: clean text costs one
substring search per hint."""


def _pem_spans(text: str, pos: int) -> Iterator[tuple[int, int]]:
    """Private key blocks, BEGIN to END; with no END, BEGIN to the end of the text."""
    while True:
        begin = _PEM_BEGIN.search(text, pos)
        if begin is None:
            return
        end = _PEM_END.search(text, begin.end())
        if end is None:
            yield begin.start(), len(text)
            return
        yield begin.start(), end.end()
        pos = end.end()


def _matches(text: str, pos: int) -> list[tuple[int, int, int]]:
    """(match start, secret start, secret end) of every match starting at or after `pos`:
    a match can begin before its secret (`password=` before the password)."""
    lower = text.lower()
    present = {hint for hint in _HINTS if hint in lower}
    if not present:
        return []
    found: list[tuple[int, int, int]] = []
    if "private key" in present:
        found.extend((start, start, end) for start, end in _pem_spans(text, pos))
    for pattern in _PATTERNS:
        if present.isdisjoint(pattern.hints):
            continue
        if pattern.needs and not any(needed in text for needed in pattern.needs):
            continue
        for match in pattern.regex.finditer(text, pos):
            if pattern.check is None or pattern.check(match):
                group = (match.lastindex or 0) if pattern.group < 0 else pattern.group
                start, end = match.span(group)
                if end > start:
                    found.append((match.start(), start, end))
    return found


def _merge(found: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    spans = sorted((start, end) for _, start, end in found)
    if len(spans) < 2:
        return spans
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def secret_spans(text: str, pos: int = 0) -> list[tuple[int, int]]:
    """Where the secrets in `text[pos:]` are, as sorted, disjoint (start, end) ranges.

    Characters before `pos` are context only (a match must start at or after it)."""
    return _merge(_matches(text, pos))


def _render(text: str, spans: list[tuple[int, int]], start: int = 0, end: int = -1) -> str:
    """`text[start:end]` with each span replaced by REDACTED; a span that began before
    `start` leaves nothing (its REDACTED was emitted with the text before)."""
    if end < 0:
        end = len(text)
    parts: list[str] = []
    cursor = start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        if span_start >= cursor:
            parts.append(text[cursor:span_start])
            parts.append(REDACTED)
        cursor = max(cursor, min(span_end, end))
    parts.append(text[cursor:end])
    return "".join(parts)


def scrub_text(text: str) -> str:
    """`text` with every secret the value patterns recognise replaced by REDACTED.

    Short texts (names, ids, message types, small chunks) repeat, so their results are
    remembered: a repeated name costs a dictionary look-up."""
    if len(text) <= 64:
        return text if len(text) < 5 else _scrub_short(text)
    spans = secret_spans(text)
    return _render(text, spans) if spans else text


@lru_cache(maxsize=8192)
def _scrub_short(text: str) -> str:
    spans = secret_spans(text)
    return _render(text, spans) if spans else text


# ---------------------------------------------------------------------------------------
# Streams


class StreamScrubber:
    """Scrubs a stream of text chunks so that a secret split across chunks is caught.

    `feed(chunk) -> str` returns the scrubbed text that may be emitted now, often "":
    the last `hold` characters, and any secret that may still be growing at the end,
    are held back. `flush() -> str` returns the scrubbed rest when the stream ends (and
    readies the scrubber for another stream). Joined, the returned pieces equal
    `scrub_text` of the whole stream, provided every secret is recognisable within
    `hold` characters of where its match starts (a name, `Bearer `, `-----BEGIN`...);
    all detected formats are. A secret longer than `max_hold` (a runaway private key
    block) is redacted as it arrives, its start kept as context so that the rest of it
    is dropped too. Held text is scanned again only after it has doubled, so the cost
    is O(len(chunk)) per chunk, amortised, and memory O(max_hold). Output pieces do not
    line up with input chunks. One scrubber per stream; not thread-safe.

        scrubber = StreamScrubber()
        for chunk in chunks:
            emit(scrubber.feed(chunk))
        emit(scrubber.flush())
    """

    __slots__ = ("_before", "_chunks", "_max_hold", "_scan_at", "_scan_from", "_size", "hold")

    def __init__(self, hold: int = 512, *, max_hold: int = 65536) -> None:
        if hold < 64 or max_hold < 2 * hold:
            raise ValueError("StreamScrubber needs hold >= 64 and max_hold >= 2 * hold")
        self.hold = hold
        self._max_hold = max_hold
        self._reset()

    def _reset(self) -> None:
        self._before = ""  # text already handled: context for the next scan, never emitted
        self._scan_from = 0  # 1 when `_before[0]` only serves the boundary checks
        self._chunks: list[str] = []  # not emitted yet
        self._size = 0
        self._scan_at = 2 * self.hold

    def feed(self, chunk: str) -> str:
        """The scrubbed text that may be emitted now (often "" while text is held back)."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size < self._scan_at:
            return ""
        return self._emit(final=False)

    def flush(self) -> str:
        """The scrubbed rest of the stream; the scrubber is then ready for a new stream."""
        out = self._emit(final=True) if self._size else ""
        self._reset()
        return out

    def _emit(self, *, final: bool) -> str:
        pending_size = self._size
        text = self._before + "".join(self._chunks)
        offset = len(self._before)
        found = [m for m in _matches(text, self._scan_from) if m[2] > offset]
        spans = _merge(found)
        cut = len(text)
        blocking: tuple[int, int, int] | None = None
        if not final:
            cut -= self.hold
            blocking = min((m for m in found if m[0] < cut < m[2]), default=None)
            if blocking is not None:
                cut = max(blocking[0], offset)
        if blocking is not None and cut == offset and pending_size > self._max_hold:
            # A giant secret: redact what has arrived and carry its start as context,
            # so that its continuation is still recognised (and dropped) next time.
            out = _render(text, spans, offset)
            start = blocking[0]
            self._before = text[max(0, start - 1) : start + 256]
            self._scan_from = 1 if start else 0
            rest = ""
        else:
            out = _render(text, spans, offset, cut)
            # Context for the next scan: enough to hold the start of any match (a name
            # before its value) and the character before it, for boundary checks.
            context_start = max(0, cut - self.hold)
            if blocking is not None:  # never drop the start of a secret still arriving
                context_start = min(context_start, max(0, blocking[0] - 1))
            self._before = text[context_start:cut]
            at_stream_start = context_start == 0 and self._scan_from == 0
            self._scan_from = 0 if at_stream_start else 1
            rest = text[cut:]
        self._chunks = [rest] if rest else []
        self._size = len(rest)
        self._scan_at = max(2 * self.hold, 2 * len(rest))
        return out


# ---------------------------------------------------------------------------------------
# Structures


def scrub(value: Any, depth: int = 0, text: Callable[[str], str] = scrub_text) -> Any:
    """A snapshot of `value` with secret-named fields and secret-looking text replaced.

    Walks mappings, lists, tuples, sets, pydantic models (messages, documents, tool
    calls and their metadata included) and dataclasses. Dicts, lists and sets are always
    copied, and models and dataclasses holding them too, so what a trace records is the
    value when it was recorded, whatever the caller changes later; immutable objects
    left unchanged are reused. Anything nested more than MAX_DEPTH levels down becomes
    TOO_DEEP. `text` scrubs each string (a per-trace memo passes its own)."""
    kind = type(value)  # exact built-in types first: most of what a trace holds
    if kind is str:
        return text(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if kind is dict and depth < MAX_DEPTH:
        return _scrub_mapping(value, depth, text)
    if isinstance(value, str):
        return text(value)
    if value is None or isinstance(value, (bool, int, float, bytes)):
        return value
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if isinstance(value, Mapping):
        return _scrub_mapping(value, depth, text)
    if isinstance(value, list):
        return [scrub(v, depth + 1, text) for v in value]
    if isinstance(value, tuple):
        items = [scrub(v, depth + 1, text) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if hasattr(value, "_fields"):  # a named tuple
            return type(value)(*items)
        return tuple(items)
    if isinstance(value, set):
        return {scrub(v, depth + 1, text) for v in value}
    if isinstance(value, frozenset):
        cleaned = frozenset(scrub(v, depth + 1, text) for v in value)
        return value if cleaned == value else cleaned
    if isinstance(value, BaseModel):
        return _scrub_model(value, depth, text)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _scrub_dataclass(value, depth, text)
    return value


def scrub_flat_mapping(value: dict[str, Any]) -> dict[str, Any]:
    """`scrub(value)` for run metadata: a fresh dict, its result remembered when every
    key is a string and every value a short string, a number, None or a dict of those
    (the usual run metadata: `ls_provider`, `ls_model_name`, `lc_versions`...), so
    repeated metadata costs a look-up. Nested dicts come back fresh too."""
    if not value:
        return {}
    items = _flat_items(value, nested=True)
    if items is None:
        return cast("dict[str, Any]", scrub(value))
    return {
        key: (dict(item) if type(item) is tuple else item) for key, item in _scrub_flat_items(items)
    }


def _flat_items(value: dict[Any, Any], *, nested: bool) -> tuple[tuple[str, Any], ...] | None:
    """`value`'s items as a hashable key (a nested dict as a tuple of its items), or
    None when it holds anything but short strings, numbers, None (and flat dicts)."""
    out = []
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return None
        if kind is dict and nested:
            inner = _flat_items(item, nested=False)
            if inner is None:
                return None
            out.append((key, inner))
        elif (kind is str and len(item) <= 64) or item is None or kind in (int, bool, float):
            out.append((key, item))
        else:
            return None
    return tuple(out)


@lru_cache(maxsize=1024)
def _scrub_flat_items(items: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """The scrubbed items (a dict, nested or redacted to {}, as a tuple of its items)."""
    scrubbed = scrub({key: dict(item) if type(item) is tuple else item for key, item in items})
    return tuple(
        (key, tuple(item.items()) if type(item) is dict else item) for key, item in scrubbed.items()
    )


def _secret_field(name: Any, value: Any) -> bool:
    return isinstance(name, str) and bool(value) and is_secret_key(name)


def _redacted_like(value: Any) -> Any:
    """REDACTED in the type a typed field expects, so that models still serialise: a
    secret number becomes 0 and a secret container an empty one."""
    if isinstance(value, SecretStr):
        return SecretStr(REDACTED)
    if isinstance(value, SecretBytes):
        return SecretBytes(REDACTED.encode())
    if isinstance(value, bytes):
        return REDACTED.encode()
    if type(value) in (bool, int, float, list, tuple, dict, set, frozenset):
        return type(value)()
    return REDACTED


def _scrub_field(name: str, value: Any, depth: int, text: Callable[[str], str]) -> Any:
    if isinstance(value, (SecretStr, SecretBytes)) or _secret_field(name, value):
        return _redacted_like(value)
    return scrub(value, depth + 1, text)


def _scrub_mapping(value: Mapping[Any, Any], depth: int, text: Callable[[str], str]) -> Any:
    out: dict[Any, Any] = {}
    for k, v in value.items():
        key = scrub_text(k) if isinstance(k, str) else k
        out[key] = REDACTED if _secret_field(k, v) else scrub(v, depth + 1, text)
    return out


def _scrub_model(model: BaseModel, depth: int, text: Callable[[str], str]) -> Any:
    update: dict[str, Any] = {}
    for name, current in model.__dict__.items():  # a pydantic model's fields, by value
        if not current:
            continue  # None, "", 0 and empty containers hold no secret
        cleaned = _scrub_field(name, current, depth, text)
        if cleaned is not current:
            update[name] = cleaned
    extra = model.__pydantic_extra__
    if extra:
        update.update(_scrub_mapping(extra, depth, text))
    return model.model_copy(update=update) if update else model


def _scrub_dataclass(obj: Any, depth: int, text: Callable[[str], str]) -> Any:
    update: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        current = getattr(obj, field.name, None)
        cleaned = _scrub_field(field.name, current, depth, text)
        if cleaned is not current:
            update[field.name] = cleaned
    if not update:
        return obj
    result = copy.copy(obj)
    for name, cleaned in update.items():
        object.__setattr__(result, name, cleaned)  # frozen dataclasses too
    return result


# ---------------------------------------------------------------------------------------
# The redactor


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

    def chunk(self, value: Any) -> Any:
        """A stream chunk: as `content`, but never remembered (there are many)."""
        return Redactor.content(self, value)

    def open_instant(self) -> None:
        """Start one recording instant (see `_MemoRedactor`); nothing to do here."""

    def close_instant(self) -> None:
        """End the recording instant."""

    def for_one_trace(self) -> Redactor:
        """A redactor that remembers its results by object identity for one trace: the
        same input object reaches an event and a span, and is scrubbed only once."""
        return _MemoRedactor(self._user, capture_content=self.capture_content)

    def text(self, value: str) -> str:
        """An error message or other free text: secrets scrubbed, the user hook applied."""
        cleaned = scrub_text(value)
        if self._user is not None:
            result = self._apply_user(cleaned)
            return result if isinstance(result, str) else str(result)
        return cleaned

    def _apply_user(self, value: Any) -> Any:
        assert self._user is not None
        try:
            return self._user(value)
        except Exception as error:  # a broken hook must cost one value only
            from lcel_trace._log import warn_once  # _log imports this module

            warn_once("redact hook failed", error_type=type(error).__name__)
            return REDACTED


class _MemoRedactor(Redactor):
    """Remembers, for one trace, what each long string scrubbed to: the same text reaches
    an event and a span, and later runs, and is scanned once. Only immutable values are
    remembered: a container is walked again each time (its strings still remembered),
    so a value changed between two recordings is recorded as it was each time."""

    __slots__ = ("_instant", "_memo")

    def __init__(self, redact: Redact | None, *, capture_content: bool) -> None:
        super().__init__(redact, capture_content=capture_content)
        self._memo: dict[int, tuple[str, str]] = {}
        self._instant: dict[int, tuple[Any, Any]] | None = None

    def content(self, value: Any) -> Any:
        if not self.capture_content or value is None:
            return None
        instant = self._instant
        if instant is None:
            cleaned = scrub(value, text=self._text)
            return self._apply_user(cleaned) if self._user is not None else cleaned
        hit = instant.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        cleaned = scrub(value, text=self._text)
        if self._user is not None:
            cleaned = self._apply_user(cleaned)
        instant[id(value)] = (value, cleaned)  # holding `value` keeps its id unique
        return cleaned

    def open_instant(self) -> None:
        """Until `close_instant`, a value is scrubbed once and every record made from it
        shares the snapshot: one event's record and the span that event ends see the
        same value at the same moment."""
        self._instant = {}

    def close_instant(self) -> None:
        """Values may change from here on: forget the snapshots of this instant."""
        self._instant = None

    def _text(self, text: str) -> str:
        if len(text) < 256:  # cheaper to scan than to remember
            return scrub_text(text)
        hit = self._memo.get(id(text))
        if hit is not None and hit[0] is text:
            return hit[1]
        result = scrub_text(text)
        self._memo[id(text)] = (text, result)  # holding `text` keeps its id unique
        return result
