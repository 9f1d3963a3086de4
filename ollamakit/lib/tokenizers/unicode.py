"""Character classes exactly as llama.cpp sees them.

llama.cpp classifies code points with its own table (Unicode 15.1) and runs its pre-tokenizer
regexes over a "collapsed" copy of the text: ASCII stays as it is, every other code point becomes
one byte that stands for its class. We do the same, so the splits agree even where Python's
Unicode database or the `regex` module would disagree with llama.cpp (newer assignments, which
characters count as whitespace, ``\\s`` never matching U+001C..U+001F, ...).

Python 3.11 ships Unicode 14.0; the few ranges Unicode 15.0/15.1 assigned are listed below so a
newly assigned letter is still a letter. Lower-casing and NFD reduce each code point to one code
point (the first of its full mapping), which is what llama.cpp's tables hold.
"""

from __future__ import annotations

import bisect
import unicodedata

# Code points that llama.cpp treats as whitespace (its ``\s``).
WHITESPACE = frozenset(
    [
        0x09,
        0x0A,
        0x0B,
        0x0C,
        0x0D,
        0x20,
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    ]
)

# Collapsed stand-ins, the same bytes llama.cpp uses (0x0B stands for non-ASCII whitespace).
NUMBER, LETTER, PUNCTUATION, ACCENT_MARK, SYMBOL, OTHER = (
    "\xd1",
    "\xd2",
    "\xd3",
    "\xd4",
    "\xd5",
    "\xd0",
)
_BY_MAJOR_CATEGORY = {"N": NUMBER, "L": LETTER, "P": PUNCTUATION, "M": ACCENT_MARK, "S": SYMBOL}

# Assigned in Unicode 15.0 and 15.1 (general category major class), absent from Unicode 14.0.
_UNICODE_15 = (
    (0x00CF3, 0x00CF3, "M"),
    (0x00ECE, 0x00ECE, "M"),
    (0x02FFC, 0x02FFF, "S"),
    (0x031EF, 0x031EF, "S"),
    (0x10EFD, 0x10EFF, "M"),
    (0x1123F, 0x11240, "L"),
    (0x11241, 0x11241, "M"),
    (0x11B00, 0x11B09, "P"),
    (0x11F00, 0x11F01, "M"),
    (0x11F02, 0x11F02, "L"),
    (0x11F03, 0x11F03, "M"),
    (0x11F04, 0x11F10, "L"),
    (0x11F12, 0x11F33, "L"),
    (0x11F34, 0x11F3A, "M"),
    (0x11F3E, 0x11F42, "M"),
    (0x11F43, 0x11F4F, "P"),
    (0x11F50, 0x11F59, "N"),
    (0x1342F, 0x1342F, "L"),
    (0x13439, 0x1343F, "C"),
    (0x13440, 0x13440, "M"),
    (0x13441, 0x13446, "L"),
    (0x13447, 0x13455, "M"),
    (0x1B132, 0x1B132, "L"),
    (0x1B155, 0x1B155, "L"),
    (0x1D2C0, 0x1D2D3, "N"),
    (0x1DF25, 0x1DF2A, "L"),
    (0x1E030, 0x1E06D, "L"),
    (0x1E08F, 0x1E08F, "M"),
    (0x1E4D0, 0x1E4EB, "L"),
    (0x1E4EC, 0x1E4EF, "M"),
    (0x1E4F0, 0x1E4F9, "N"),
    (0x1F6DC, 0x1F6DC, "S"),
    (0x1F774, 0x1F776, "S"),
    (0x1F77B, 0x1F77F, "S"),
    (0x1F7D9, 0x1F7D9, "S"),
    (0x1FA75, 0x1FA77, "S"),
    (0x1FA87, 0x1FA88, "S"),
    (0x1FAAD, 0x1FAAF, "S"),
    (0x1FABB, 0x1FABD, "S"),
    (0x1FABF, 0x1FABF, "S"),
    (0x1FACE, 0x1FACF, "S"),
    (0x1FADA, 0x1FADB, "S"),
    (0x1FAE8, 0x1FAE8, "S"),
    (0x1FAF7, 0x1FAF8, "S"),
    (0x2B739, 0x2B739, "L"),
    (0x2EBF0, 0x2EE5D, "L"),
    (0x31350, 0x323AF, "L"),
)
_UNICODE_15_STARTS = [start for start, _, _ in _UNICODE_15]


def major_category(cp: int) -> str:
    """The first letter of the general category ("L", "N", ...); "Cn" (unassigned) gives "U"."""
    category = unicodedata.category(chr(cp))
    if category != "Cn":
        return category[0]
    i = bisect.bisect_right(_UNICODE_15_STARTS, cp) - 1
    if i >= 0 and cp <= _UNICODE_15[i][1]:
        return _UNICODE_15[i][2]
    return "U"


class _CollapseTable(dict):
    """A ``str.translate`` table that fills itself: one class byte per non-ASCII code point."""

    def __missing__(self, cp: int) -> int:
        if cp < 0x80:
            value = cp
        elif cp in WHITESPACE:
            value = 0x0B
        else:
            value = ord(_BY_MAJOR_CATEGORY.get(major_category(cp), OTHER))
        self[cp] = value
        return value


class _WideTable(dict):
    """Keeps every code point but turns non-ASCII whitespace into 0x0B (llama.cpp's wide regex path)."""

    def __missing__(self, cp: int) -> int:
        value = 0x0B if cp >= 0x80 and cp in WHITESPACE else cp
        self[cp] = value
        return value


_COLLAPSE = _CollapseTable()
_WIDE = _WideTable()


def collapse(text: str) -> str:
    """The collapsed copy of ``text``: same length, one character per code point."""
    return text if text.isascii() else text.translate(_COLLAPSE)


def widen(text: str) -> str:
    return text if text.isascii() else text.translate(_WIDE)


def is_whitespace(cp: int) -> bool:
    return cp in WHITESPACE


def to_lower(ch: str) -> str:
    lowered = ch.lower()
    return lowered[0] if lowered != ch else ch


def nfd_base(ch: str) -> str:
    decomposed = unicodedata.normalize("NFD", ch)
    return decomposed[0]
