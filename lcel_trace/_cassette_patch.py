"""Where a cassette meets the models: the provider layer of LangChain's model classes.

A chat model's `invoke`, `stream`, `batch` and their async twins all end in one of four
methods a provider class implements (`_generate`, `_agenerate`, `_stream`, `_astream`);
completion LLMs likewise, tools in `_run`/`_arun`, retrievers in
`_get_relevant_documents`. Everything above them (callbacks, run ids, message ids,
response metadata, the streaming decision, a tool's output message) is LangChain's own
code and runs unchanged, so a replayed call is traced, streamed and post-processed
exactly as a live one.

While at least one cassette is active, those methods, on every class that defines them,
are replaced by thin wrappers that ask the context's active cassette (a context
variable, so threads and tasks that inherit the context see it, others do not) and
otherwise call the original. Model and tool classes defined or imported later are
wrapped on their first call (a guard on the base classes' own entry methods). When the
last cassette closes, every attribute is put back exactly as it was.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool

from lcel_trace._classes import subclasses_of

__all__ = [
    "Interceptor",
    "StrayCallWarning",
    "active_interceptor",
    "install",
    "live_call",
    "tool_call_input",
    "uninstall",
]

PROVIDER_METHODS: dict[type, tuple[str, ...]] = {
    BaseChatModel: ("_generate", "_agenerate", "_stream", "_astream"),
    BaseLLM: ("_generate", "_agenerate", "_stream", "_astream"),
    BaseTool: ("_run", "_arun"),
    BaseRetriever: ("_get_relevant_documents", "_aget_relevant_documents"),
}
"""Per base class, the methods its subclasses implement: the last step before a model
touches the network, a tool acts or a retriever searches."""

_GUARDS: dict[type, tuple[str, ...]] = {
    BaseChatModel: ("_generate_with_cache", "_agenerate_with_cache", "_should_stream"),
    BaseLLM: ("_generate_helper", "_agenerate_helper"),
    BaseTool: ("run", "arun"),
    BaseRetriever: (),
}
"""Base-class methods every call passes before the provider methods: their wrappers
make sure the concrete class is wrapped (a class defined after install). A retriever
class defined after install runs live."""

_MARK = "__lcel_cassette_original__"


class Interceptor(Protocol):
    """What the active cassette answers for one provider-method call."""

    def call(
        self,
        model: Any,
        method: str,
        original: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...


_active: ContextVar[Interceptor | None] = ContextVar("lcel_trace_cassette", default=None)
_tool_input: ContextVar[tuple[Any, str | None] | None] = ContextVar(
    "lcel_trace_cassette_tool_input", default=None
)
_live: ContextVar[object | None] = ContextVar("lcel_trace_cassette_live_call", default=None)
"""The object whose own code a recorded call is running: a provider method of the same
object it calls in turn (an `_agenerate` falling back to `_generate`) is part of that
call. Other objects (a model inside a tool) are answered as usual."""


@contextmanager
def live_call(owner: object) -> Iterator[None]:
    """Run `owner`'s own code: its provider methods called meanwhile are not answered."""
    token = _live.set(owner)
    try:
        yield
    finally:
        _live.reset(token)


def tool_call_input() -> tuple[Any, str | None] | None:
    """The input and tool call id the running tool's `run`/`arun` was given: what a
    trace records as its input (its `_run` sees them parsed)."""
    return _tool_input.get()


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
    """Wrap the provider methods of every model, tool and retriever class known now
    (one more user)."""
    global _users
    with _lock:
        _users += 1
        if _users > 1:
            return
        for base, names in _GUARDS.items():
            for name in names:
                function = base.__dict__[name]
                guard = _tool_guard if base is BaseTool else _guard
                _wrap(base, name, guard(function))
        for base in _GUARDS:
            for cls in subclasses_of(base):
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


def _wrap(owner: type, name: str, wrapper: Any) -> None:
    original = owner.__dict__[name]
    setattr(wrapper, _MARK, original)
    _patches.append(_Patch(owner, name, original))
    setattr(owner, name, wrapper)


def _wrap_provider_methods(cls: type) -> None:
    """Wrap the provider methods `cls` itself defines (not inherited, not yet wrapped)."""
    if cls in _GUARDS:
        return
    for name in _methods_of(cls):
        function = cls.__dict__.get(name)
        if function is None or hasattr(function, _MARK) or not callable(function):
            continue
        _wrap(cls, name, _provider_wrapper(name, function))


def _ensure_wrapped(cls: type) -> None:
    """A class met for the first time since install: wrap it and its bases."""
    if all(_is_wrapped(cls, name) for name in _methods_of(cls)):
        return
    with _lock:
        if _users:
            for klass in cls.__mro__:
                if isinstance(klass, type) and issubclass(klass, tuple(_GUARDS)):
                    _wrap_provider_methods(klass)


def _methods_of(cls: type) -> tuple[str, ...]:
    for base, names in PROVIDER_METHODS.items():
        if issubclass(cls, base):
            return names
    return ()


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


def _tool_guard(function: Callable[..., Any]) -> Callable[..., Any]:
    """`_guard` for `BaseTool.run`/`arun`, which also keeps the tool's raw input at hand."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def guarded_async(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
            if _active.get() is None:
                return await function(self, tool_input, *args, **kwargs)
            _ensure_wrapped(type(self))
            token = _tool_input.set((tool_input, kwargs.get("tool_call_id")))
            try:
                return await function(self, tool_input, *args, **kwargs)
            finally:
                _tool_input.reset(token)

        return guarded_async

    @functools.wraps(function)
    def guarded(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        if _active.get() is None:
            return function(self, tool_input, *args, **kwargs)
        _ensure_wrapped(type(self))
        token = _tool_input.set((tool_input, kwargs.get("tool_call_id")))
        try:
            return function(self, tool_input, *args, **kwargs)
        finally:
            _tool_input.reset(token)

    return guarded


class StrayCallWarning(UserWarning):
    """A call ran live while a cassette was active elsewhere in the process: it was made
    in a context that does not carry the cassette (a thread started without copying the
    context, `contextvars.copy_context().run` or LangChain's executors do)."""


def _warn_stray(target: Any, name: str) -> None:
    warnings.warn(
        f"{type(target).__name__}.{name} ran live while a cassette is active: the call's "
        "context does not carry the cassette (start threads with "
        "contextvars.copy_context().run, as LangChain's executors do)",
        StrayCallWarning,
        stacklevel=3,
    )


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
            or _live.get() is self
            or getattr(type(self), name, None) is not provider_method
        ):
            if interceptor is None and getattr(type(self), name, None) is provider_method:
                _warn_stray(self, name)
            return function(self, *args, **kwargs)
        return interceptor.call(self, name, functools.partial(function, self), args, kwargs)

    return provider_method
