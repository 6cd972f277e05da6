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
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

from langchain_core import messages, outputs, prompt_values
from langchain_core.documents import Document
from langchain_core.load import Serializable, dumpd, load
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

try:
    import orjson
except ImportError:  # pragma: no cover - PyPy, or a stripped environment
    orjson = None  # type: ignore[assignment]

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


# Types `lc_dump` writes itself; anything else, or anything it meets that it does not
# handle exactly as LangChain does, goes through `dumpd`. ChatGeneration is left out:
# `dumpd` rewrites a parsed model inside one before serialising it.
_DIRECT_CLASSES: frozenset[type] = frozenset(
    cls
    for cls in _ALLOWED_CLASSES
    if not issubclass(cls, (outputs.ChatGeneration, outputs.ChatGenerationChunk))
)
_LC_ESCAPED_KEY = "__lc_escaped__"
_JSON_KEY_TYPES = (str, int, float, bool, type(None))
# Below this, `_convert` would also cut the strings of the form itself ("constructor",
# class ids), which `_direct` writes as they are.
_SHORTEST_CUT = 64


class _NotDirectError(Exception):
    """`lc_dump` met something it does not write exactly as `dumpd`: use `dumpd`."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What `Serializable.to_json` reads from a class, read once: its id, each field's
    (required, excluded, default factory, default), and the `lc_attributes` getters in
    the order `to_json` merges them."""

    lc_id: tuple[str, ...]
    fields: dict[str, tuple[bool, bool, Any, Any]]
    attribute_getters: tuple[Callable[[Any], dict[str, Any]], ...]


_PLANS: dict[type, _Plan | None] = {}


def lc_dump(value: Any) -> Any:
    """Exactly `dumpd(value)`, written directly for LangChain's messages, chunks,
    documents and prompt values (without `dumpd`'s per-field introspection); `dumpd`
    for anything else."""
    if type(value) in _DIRECT_CLASSES:
        try:
            return _direct(value, 0, None, finish=False)
        except _NotDirectError:
            pass
    return dumpd(value)


def _plan(cls: type) -> _Plan | None:
    """The class's `_Plan`, or None when `to_json` could do more than it records
    (secrets, deprecated attributes, attributes that are not properties)."""
    if cls in _PLANS:
        return _PLANS[cls]
    plan = None
    try:
        plan = _make_plan(cls)
    finally:
        _PLANS[cls] = plan
    return plan


def _make_plan(cls: type) -> _Plan | None:
    if not (issubclass(cls, Serializable) and cls.is_lc_serializable()):
        return None
    mro = cls.__mro__
    steps = mro[: mro.index(Serializable)]
    if any(hasattr(c, a) for c in steps for a in ("lc_namespace", "lc_serializable")):
        return None
    base_secrets = Serializable.__dict__["lc_secrets"]
    base_attributes = Serializable.__dict__["lc_attributes"]
    getters: list[Callable[[Any], dict[str, Any]]] = []
    for i in range(len(steps) + 1):  # `to_json` reads each through super() of each step
        after = mro if i == 0 else mro[i:]
        secrets = next(c.__dict__["lc_secrets"] for c in after if "lc_secrets" in c.__dict__)
        attributes = next(
            c.__dict__["lc_attributes"] for c in after if "lc_attributes" in c.__dict__
        )
        if secrets is not base_secrets or not isinstance(attributes, property):
            return None
        if attributes is not base_attributes and attributes.fget is not None:
            getters.append(attributes.fget)
    fields = {}
    for name, field in cls.model_fields.items():
        default = field.get_default()
        if default is PydanticUndefined and field.default_factory is not None:
            default = None
        fields[name] = (field.is_required(), bool(field.exclude), field.default_factory, default)
    return _Plan(tuple(cls.lc_id()), fields, tuple(getters))


def _direct(
    obj: Any, depth: int, max_str: int | None, *, finish: bool, nested: _Nested | None = None
) -> dict[str, Any]:
    """`dumpd(obj)`; with `finish`, already as `_convert` (trusted, from `depth`) makes
    it JSON-safe, in one pass. `_NotDirectError` for anything it cannot write exactly so.
    `nested(value, depth)`, when given, writes the LangChain objects inside instead."""
    plan = _PLANS[type(obj)] if type(obj) in _PLANS else _plan(type(obj))
    if plan is None or depth + 3 >= MAX_DEPTH:
        raise _NotDirectError
    fields = plan.fields
    kwargs: dict[str, Any] = {}
    for key, value in obj.__dict__.items():
        spec = fields.get(key)
        if spec is None:
            continue
        required, excluded, factory, default = spec
        if not required:
            try:
                truthy = bool(value)
            except Exception:
                truthy = False
            if not truthy:
                if factory is dict and isinstance(value, dict):
                    continue
                if factory is list and isinstance(value, list):
                    continue
                try:
                    differs = bool(default != value)  # as LangChain compares
                except Exception:
                    raise _NotDirectError from None
                if not differs:
                    continue
        if not excluded:
            kwargs[key] = value
    for getter in plan.attribute_getters:
        kwargs.update(getter(obj))
    return {
        "lc": 1,
        "type": "constructor",
        "id": list(plan.lc_id),
        "kwargs": {
            k: _direct_value(v, depth + 2, max_str, finish=finish, nested=nested)
            for k, v in kwargs.items()
        },
    }


_Nested = Callable[[Any, int], Any]


def _direct_value(
    value: Any, depth: int, max_str: int | None, *, finish: bool, nested: _Nested | None = None
) -> Any:
    """LangChain's `_serialize_value` of a constructor argument (with `finish`, JSON-safe
    as `_convert` leaves it), or `_NotDirectError`."""
    kind = type(value)
    if kind is str:
        if finish and max_str is not None and len(value) > max_str:
            return truncate(value, max_str)
        return value
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return repr(value) if finish and not math.isfinite(value) else value
    if depth + 1 >= MAX_DEPTH:
        raise _NotDirectError
    if kind is dict:
        for key in value:
            if type(key) not in _JSON_KEY_TYPES:
                raise _NotDirectError
        if "lc" in value or (len(value) == 1 and _LC_ESCAPED_KEY in value):
            if finish:
                value = _convert(value, depth + 1, trusted=True, max_str=max_str)
            return {_LC_ESCAPED_KEY: value}
        if finish:
            return {
                (k if type(k) is str else str(k)): _direct_value(
                    v, depth + 1, max_str, finish=True, nested=nested
                )
                for k, v in value.items()
            }
        return {
            k: _direct_value(v, depth + 1, max_str, finish=False, nested=nested)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [_direct_value(v, depth + 1, max_str, finish=finish, nested=nested) for v in value]
    if kind in _DIRECT_CLASSES:
        if nested is not None:
            return nested(value, depth)
        return _direct(value, depth, max_str, finish=finish)
    raise _NotDirectError


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


# -- the fast path: orjson walks the value in C, and its text is used only when cheap
# counts over the bytes prove `_convert` would have led to the very same text.

# Types orjson would write in its own way are handed to `default` (which refuses them).
_FAST_OPTIONS = (
    0
    if orjson is None
    else orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_LC_KEY = b'"lc":'
_ESCAPE_KEY_TEXT = b'"__lcel_escaped__":'
_NULL = b"null"


class _UnprovenError(Exception):
    """The fast path met something only `_convert` writes exactly."""


# What orjson writes where a LangChain object goes, before its text replaces it: a
# NUL byte, which orjson's own text never holds (it writes U+0000 as an escape).
_HOLE = b"\x00"
_HOLE_FRAGMENT = None if orjson is None else orjson.Fragment(_HOLE)
_DEPTH_CUT = b'"<max depth>"'
# How deep the fast path lets a value nest (containers, itself included; the caller's
# line is one), and the depth LangChain objects are written from, deeper than that: one
# inside may nest another 25 or so (tool call arguments) before `_direct` refuses it.
_FAST_MAX_NESTING = 31
_LC_DEPTH = _FAST_MAX_NESTING + 5
# orjson refuses a value nested `_RECURSION_LIMIT` containers deep; the fast path writes
# each value inside `_GUARD_LEVELS` lists, so that orjson itself refuses one nested
# deeper than `_FAST_MAX_NESTING` (no count of brackets bounds depth in wide data).
_RECURSION_LIMIT = 255
_GUARD_LEVELS = _RECURSION_LIMIT - 1 - _FAST_MAX_NESTING
_GUARDS = threading.local()


def proven_json(
    value: Any,
    max_str: int | None,
    memo: dict[Any, Any] | None = None,
    content_key: bytes = b"",
    known_nulls: int = 0,
    end: bytes = b"",
) -> bytes | None:
    """The JSON text orjson writes for `convert(value, max_str)` (then `end`), written
    by orjson from `value` itself in one pass in C; None when cheap counts cannot prove
    the two texts the same (the caller then converts). `memo` keeps LangChain objects'
    text for the same object met again (its entries hold the objects, so their ids stay
    theirs).

    A caller writing a record whose own fields come first (plain strings, numbers and
    lists of strings, which `convert` leaves as they are) names the key where its
    content starts (`b',"metadata":'`): the checks then read only the text from there
    on, where it knows of `known_nulls` Nones of its own.

    LangChain messages, documents and prompt values are written by `_direct`, as
    `_convert` writes them, and their text goes in afterwards; any other type orjson
    does not write natively is refused. The rest of the text is then the same when: no
    string in it can have been cut (it is no longer than `max_str`, and a string takes
    at least a byte per character); no dict has an "lc" or escape key (their patterns
    do not occur); no float is NaN or infinite (orjson writes null: looked for when
    there are more nulls than known); every dict key is a `str` (orjson refuses
    others); and no value nests deeper than `_FAST_MAX_NESTING` (orjson refuses it:
    `_guard`), far from MAX_DEPTH.

    Not caught, because orjson writes them natively and no count tells: an enum whose
    value holds enums many levels deep, and an `orjson.Fragment` inside `value`.
    """
    if orjson is None or (max_str is not None and max_str < _SHORTEST_CUT):
        return None
    texts: list[bytes] = []
    try:
        text = orjson.dumps(value, default=_default(max_str, memo, texts), option=_FAST_OPTIONS)
    except Exception:  # orjson refused it, or `default` could not prove it
        return None
    # the first occurrence is the caller's key: before it, a quote only ends a string
    start = text.find(content_key) if content_key else 0
    if start < 0 or (max_str is not None and len(text) - start > max_str):
        return None
    if text.find(_LC_KEY, start) >= 0 or text.find(_ESCAPE_KEY_TEXT, start) >= 0:
        return None
    if text.count(_NULL, start) != known_nulls and _has_non_finite(value):
        return None
    # each container opens with a bracket: few brackets, no deep nesting; with many
    # (wide data, as often as deep), orjson tells
    brackets = text.count(b"{", start) + text.count(b"[", start)
    if brackets >= _FAST_MAX_NESTING and not _nests_within_limit(value):
        return None
    if not texts:
        return text + end  # a copy of its size: orjson's own bytes keep a 4 KiB buffer
    pieces = text.split(_HOLE)
    if len(pieces) != len(texts) + 1:
        return None  # a NUL byte of an `orjson.Fragment` inside `value`
    joined = [pieces[0]]
    for lc_text, piece in zip(texts, pieces[1:], strict=True):
        joined += (lc_text, piece)
    joined.append(end)
    return b"".join(joined)


def _nests_within_limit(value: Any) -> bool:
    """Whether `value` nests no deeper than `_FAST_MAX_NESTING` containers (itself
    included), told by orjson written inside `_GUARD_LEVELS` lists."""
    root, holder = _guard()
    if root is None or holder[0] is not None:  # no guard, or in use (a nested call)
        return False
    holder[0] = value
    try:
        orjson.dumps(root, default=_placeholder, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        return False
    finally:
        holder[0] = None
    return True


def _placeholder(obj: Any) -> Any:
    return _HOLE_FRAGMENT


def _guard() -> tuple[Any, list[Any]]:
    """This thread's lists `_GUARD_LEVELS` deep: the outermost, and the innermost,
    whose one item is the value written (built once a thread, not per call); (None,
    ...) when this orjson's recursion limit is not the one counted on."""
    guard: tuple[Any, list[Any]] | None = getattr(_GUARDS, "lists", None)
    if guard is None:
        holder: list[Any] = [None]
        root = holder
        for _ in range(_GUARD_LEVELS - 1):
            root = [root]
        guard = _GUARDS.lists = (root if _orjson_limit_holds() else None, holder)
    return guard


def _orjson_limit_holds() -> bool:
    """Whether orjson writes `_RECURSION_LIMIT - 1` nested lists and refuses one more."""
    nested: list[Any] = []
    for _ in range(_RECURSION_LIMIT - 2):
        nested = [nested]
    try:
        orjson.dumps(nested)
    except orjson.JSONEncodeError:
        return False
    try:
        orjson.dumps([nested])
    except orjson.JSONEncodeError:
        return True
    return False


def _default(max_str: int | None, memo: dict[Any, Any] | None, texts: list[bytes]) -> Any:
    """orjson's `default`: a LangChain object's text goes into `texts` and a NUL byte in
    its place; a plain `str` subclass is its characters; anything else is refused."""

    def default(obj: Any) -> Any:
        if isinstance(obj, str) and _plain_str_type(type(obj)):
            return str.__str__(obj)  # its characters, as orjson writes a `str` subclass
        texts.append(_lc_text(obj, max_str, memo))
        return _HOLE_FRAGMENT

    return default


def _plain_str_type(cls: type) -> bool:
    """Whether `truncate` measures and cuts a `str` subclass as a `str` (LangChain's
    `TextAccessor`, for one)."""
    plain = _PLAIN_STR_TYPES.get(cls)
    if plain is None:
        plain = _PLAIN_STR_TYPES[cls] = all(
            getattr(cls, name) is getattr(str, name)
            for name in ("__len__", "__getitem__", "__format__")
        )
    return plain


_PLAIN_STR_TYPES: dict[type, bool] = {}


def _lc_text(
    obj: Any, max_str: int | None, memo: dict[Any, Any] | None, depth: int = _LC_DEPTH
) -> bytes:
    """A LangChain object's JSON text as `_convert` writes it (`_direct`), once per memo
    (a message in a prompt value and again in the model's input, say).

    Written from `depth`, `_LC_DEPTH` at least, deeper than anywhere `proven_json`
    accepts it: `_direct` writes the same at any depth where it neither refuses nor
    cuts (`"<max depth>"`), and does both more the deeper it starts, so a text written
    from there without either is what it writes from where the object really is (and
    from any depth above: a text is reused from the memo no deeper than it was written)."""
    if type(obj) not in _DIRECT_CLASSES:
        raise _UnprovenError
    key = (id(obj), _lc_text)
    if memo is not None:
        hit = memo.get(key)
        if hit is not None and hit[0] is obj and hit[2] >= depth:
            return hit[1]  # type: ignore[no-any-return]

    def inside(value: Any, at: int) -> Any:
        return orjson.Fragment(_lc_text(value, max_str, memo, at))

    try:
        written = _direct(obj, depth, max_str, finish=True, nested=inside)
        text = bytes(memoryview(orjson.dumps(written)))
    except _NotDirectError:
        raise _UnprovenError from None
    if _DEPTH_CUT in text:  # `_convert` cut a user dict inside: it may be less deep
        raise _UnprovenError
    if memo is not None:
        memo[key] = (obj, text, depth)
    return text


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity hides in the plain data orjson walked (it writes
    them as null, where `_convert` writes their repr)."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return not math.isfinite(value)
    elif isinstance(value, enum.Enum):
        return _has_non_finite(value.value)
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if _has_non_finite(item):
            return True
    return False


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
        if type(value) in _DIRECT_CLASSES and (max_str is None or max_str >= _SHORTEST_CUT):
            try:
                return _direct(value, depth + 1, max_str, finish=True)
            except _NotDirectError:
                pass
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
