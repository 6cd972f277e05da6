"""The classes below a base class, found by walking `__subclasses__()`.

What `instrument()` patches (every Runnable class) and what a cassette patches (every
chat model, LLM, retriever and tool class) are found the same way, now and again for
classes defined later.
"""

from __future__ import annotations

__all__ = ["subclasses_of"]


def subclasses_of(base: type) -> list[type]:
    """Every class below `base` (not `base` itself), each once, however it inherits."""
    found: list[type] = []
    seen: set[type] = set()
    stack: list[type] = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
