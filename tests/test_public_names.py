"""`lcel_trace.PUBLIC` is the one list of public names; the `TYPE_CHECKING` block that
repeats it for type checkers says exactly the same, and every name resolves lazily."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import lcel_trace


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(Path(lcel_trace.__file__).read_text(encoding="utf-8"))
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    names: dict[str, str] = {}
    for statement in block.body:
        assert isinstance(statement, ast.ImportFrom)
        assert statement.module is not None
        for alias in statement.names:
            assert alias.asname == alias.name, "re-exported as itself"
            names[alias.name] = statement.module
    return names


def test_the_type_checking_block_repeats_the_public_table_exactly() -> None:
    table = {name: module for module, names in lcel_trace.PUBLIC.items() for name in names}
    assert _type_checking_imports() == table
    assert lcel_trace.__all__ == sorted(table)


def test_every_public_name_resolves_from_its_home() -> None:
    for module, names in lcel_trace.PUBLIC.items():
        home = importlib.import_module(module)
        for name in names:
            assert getattr(lcel_trace, name) is getattr(home, name), name
