"""The rules that find secrets in text and values, and replace them: pure functions.

Used by the redaction stage (`redact.py`, which applies them, the user's hook and
`capture_content` to everything a trace emits) and by the library's own logs
(`_log.py`); this module imports neither, so neither imports the other through it.

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
"""Each pattern runs only on texts containing one of its hints."""
_ANY_HINT = re.compile("|".join(map(re.escape, _HINTS)))
"""Whether any hint is in a lower-cased text, in one search: clean text (most of it)
costs that and nothing more."""


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
    if _ANY_HINT.search(lower) is None:
        return []
    present = {hint for hint in _HINTS if hint in lower}
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


def secret_across(text: str, cut: int) -> int | None:
    """Where the match of a secret that starts before `cut` and ends after it starts
    (the earliest, a name before its value included), if any: what a stream must not
    cut there."""
    return min((start for start, _, end in _matches(text, 0) if start < cut < end), default=None)


def scrub_after(text: str, offset: int) -> tuple[str, int | None]:
    """`text[offset:]` scrubbed, with `text[:offset]` (emitted already) as context: a
    secret that began there leaves nothing of its rest. Also where the match of a secret
    that runs to the very end of `text` starts (None when none does): text that may
    continue in a next piece (a stream's) and must be scanned again with it in front."""
    found = _matches(text, 0)
    if not found:
        return text[offset:], None
    end = len(text)
    growing = min((start for start, _, secret_end in found if secret_end == end), default=None)
    return _render(text, _merge(found), offset), growing


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
    flat = _flat_items(value, nested=True)
    if flat is None:
        return cast("dict[str, Any]", scrub(value))
    return {
        key: (dict(item) if type(item) is tuple else item) for key, item in _scrub_flat_items(*flat)
    }


_Items = tuple[tuple[str, Any], ...]


def _flat_items(value: dict[Any, Any], *, nested: bool) -> tuple[_Items, tuple[Any, ...]] | None:
    """`value`'s items as a hashable key (a nested dict as a tuple of its items) and the
    type of each value (`1`, `1.0` and `True` are equal keys, and must not come back as
    each other), or None when it holds anything but short strings, numbers, None (and
    flat dicts). A float zero is not remembered either: `-0.0 == 0.0`."""
    out = []
    kinds: list[Any] = []
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return None
        if kind is dict and nested:
            inner = _flat_items(item, nested=False)
            if inner is None:
                return None
            out.append((key, inner[0]))
            kinds.append(inner[1])
        elif (
            (kind is str and len(item) <= 64)
            or item is None
            or kind is int
            or kind is bool
            or (kind is float and item != 0.0)
        ):
            out.append((key, item))
            kinds.append(kind)
        else:
            return None
    return tuple(out), tuple(kinds)


@lru_cache(maxsize=1024)
def _scrub_flat_items(items: _Items, kinds: tuple[Any, ...]) -> _Items:
    """The scrubbed items (a dict, nested or redacted to {}, as a tuple of its items);
    `kinds` only keeps items of other types apart in the cache."""
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
