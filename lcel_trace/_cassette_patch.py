"""Where a cassette meets the models: the provider layer of LangChain's model classes.

A chat model's `invoke`, `stream`, `batch` and their async twins all end in one of four
methods a provider class implements (`_generate`, `_agenerate`, `_stream`, `_astream`);
completion LLMs likewise. Everything above them (callbacks, run ids, message ids,
response metadata, the streaming decision) is LangChain's own code and runs unchanged,
so a replayed call is traced, streamed and post-processed exactly as a live one.

While at least one cassette is active, those methods, on every model class that defines
them, are replaced by thin wrappers that ask the context's active cassette (a context
variable, so threads and tasks that inherit the context see it, others do not) and
otherwise call the original. Classes defined or imported later are wrapped on their first
call (a guard on the base classes' own entry methods). When the last cassette closes,
every attribute is put back exactly as it was.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel, BaseLLM

__all__ = ["Interceptor", "active_interceptor", "install", "live_call", "uninstall"]

PROVIDER_METHODS = ("_generate", "_agenerate", "_stream", "_astream")
"""The provider's own methods: the last step before a model touches the network."""

_GUARDS: dict[type, tuple[str, ...]] = {
    BaseChatModel: ("_generate_with_cache", "_agenerate_with_cache", "_should_stream"),
    BaseLLM: ("_generate_helper", "_agenerate_helper"),
}
"""Base-class methods every model call passes before the provider methods: their
wrappers make sure the concrete class is wrapped (a class defined after install)."""

_MARK = "__lcel_cassette_original__"


class Interceptor(Protocol):
    """What the active cassette answers for one provider-method call."""

    def call(
        self,
        model: BaseChatModel | BaseLLM,
        method: str,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...


_active: ContextVar[Interceptor | None] = ContextVar("lcel_trace_cassette", default=None)
_live: ContextVar[bool] = ContextVar("lcel_trace_cassette_live_call", default=False)
"""True while a recorded call runs the provider's own code: a provider method it calls
in turn (an `_agenerate` falling back to `_generate`) is part of that call."""


@contextmanager
def live_call() -> Iterator[None]:
    """Run the provider's own code: provider methods called meanwhile are not answered."""
    token = _live.set(True)
    try:
        yield
    finally:
        _live.reset(token)


def active_interceptor() -> ContextVar[Interceptor | None]:
    """The context variable holding the cassette active in this context."""
    return _active


@dataclass
class _Patch:
    owner: type
    name: str
    original: Any


_lock = threading.RLock()
_users = 0
_patches: list[_Patch] = []


def install() -> None:
    """Wrap the provider methods of every model class known now (one more user)."""
    global _users
    with _lock:
        _users += 1
        if _users > 1:
            return
        for base, names in _GUARDS.items():
            for name in names:
                _wrap(base, name, _guard(base.__dict__[name]))
        for base in _GUARDS:
            for cls in _subclasses(base):
                _wrap_provider_methods(cls)


def uninstall() -> None:
    """One user fewer; the last one puts every patched attribute back."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        while _patches:
            patch = _patches.pop()
            setattr(patch.owner, patch.name, patch.original)


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    stack: list[type] = list(base.__subclasses__())
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def _wrap(owner: type, name: str, wrapper: Any) -> None:
    original = owner.__dict__[name]
    setattr(wrapper, _MARK, original)
    _patches.append(_Patch(owner, name, original))
    setattr(owner, name, wrapper)


def _wrap_provider_methods(cls: type) -> None:
    """Wrap the provider methods `cls` itself defines (not inherited, not yet wrapped)."""
    if cls in _GUARDS:
        return
    for name in PROVIDER_METHODS:
        function = cls.__dict__.get(name)
        if function is None or hasattr(function, _MARK) or not callable(function):
            continue
        _wrap(cls, name, _provider_wrapper(name, function))


def _ensure_wrapped(cls: type) -> None:
    """A model class met for the first time since install: wrap it and its bases."""
    if all(_is_wrapped(cls, name) for name in PROVIDER_METHODS):
        return
    with _lock:
        if _users:
            for klass in cls.__mro__:
                if isinstance(klass, type) and issubclass(klass, (BaseChatModel, BaseLLM)):
                    _wrap_provider_methods(klass)


def _is_wrapped(cls: type, name: str) -> bool:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass in _GUARDS or hasattr(klass.__dict__[name], _MARK)
    return True


def _guard(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _active.get() is not None:
            _ensure_wrapped(type(self))
        return function(self, *args, **kwargs)

    return guarded


def _provider_wrapper(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function standing for `function`: the original's result (a value, a
    coroutine or an iterator) when no cassette is active, the cassette's otherwise.
    A plain function, not a generator: whether a cassette answers is decided when the
    method is called, in the caller's context."""

    @functools.wraps(function)
    def provider_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        interceptor = _active.get()
        # Only the class's own (most derived) method answers; one it reaches through
        # super() is part of the call already being answered.
        if (
            interceptor is None
            or _live.get()
            or getattr(type(self), name, None) is not provider_method
        ):
            return function(self, *args, **kwargs)
        return interceptor.call(self, name, functools.partial(function, self), args, kwargs)

    return provider_method
