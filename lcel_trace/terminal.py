"""Text from trace files, made safe to print on a terminal.

A trace file is untrusted: a run name or an error message can carry escape sequences
(retitle the window, clear the screen, plant an OSC 8 link) or bidi overrides that make
text read differently from what it is. `visible` shows every such character as an
escape (`\\x1b`, `\\u202e`) so what is printed is exactly what is stored, and nothing
in it acts on the terminal. Print the result as plain text (`rich.text.Text`), never as
rich markup.
"""

from __future__ import annotations

_BIDI_AND_INVISIBLE = (
    *range(0x202A, 0x202F),  # LRE, RLE, PDF, LRO, RLO
    *range(0x2066, 0x206A),  # LRI, RLI, FSI, PDI
    0x200E,  # LRM
    0x200F,  # RLM
    0x061C,  # ALM
    0x200B,  # zero-width space
    0x2028,  # line separator
    0x2029,  # paragraph separator
    0x2060,  # word joiner
    0xFEFF,  # zero-width no-break space (BOM)
)
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TABLE: dict[int, str] = {
    code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), *_BIDI_AND_INVISIBLE)
}


def visible(text: object) -> str:
    """`text` (or `str(text)`) with C0/C1 controls, DEL, and bidi and invisible format
    characters shown as escapes: `"a\\x1b[2Jb"` becomes `a\\x1b[2Jb` spelled out."""
    return str(text).translate(_TABLE)


def one_line(text: object, width: int) -> str:
    """`visible(text)` cut to `width` characters, ending in `…` when cut."""
    shown = visible(text)
    if width < 1:
        return ""
    return shown if len(shown) <= width else shown[: width - 1] + "…"
