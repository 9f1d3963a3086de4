"""Human-readable numbers, sizes, times and plain tables, as the ``ollama`` commands print them."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def human_bytes(size: int) -> str:
    """Decimal units; one decimal below 10 unless whole (``98 MB``, ``2.5 GB``, ``1 KB``)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            value = size / scale
            if value >= 10 or value == int(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def human_number(count: int) -> str:
    """Parameter counts: ``135M``, ``134.52M``, ``1.5B``, ``12K``."""
    if count >= 10**9:
        value = count / 10**9
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if count >= 10**6:
        value = count / 10**6
        return f"{value:.0f}M" if value == int(value) else f"{value:.2f}M"
    if count >= 10**3:
        return f"{count / 10**3:.0f}K"
    return str(count)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time as the API writes it (up to nanoseconds, ``Z`` or an offset)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def human_time(text: str, never: str = "Never", now: datetime | None = None) -> str:
    """``2 minutes ago``, ``4 minutes from now``; ``never`` for a missing time."""
    when = parse_time(text)
    if when is None or when.year <= 1:
        return never
    delta = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if delta < -20 * 365 * 86400:
        return "Forever"
    if delta < 0:
        return _duration(-delta) + " from now"
    return _duration(delta) + " ago"


def table(rows: list[list[str]], header: list[str] | None = None, padding: int = 4) -> str:
    """Left-aligned columns separated by ``padding`` spaces, no borders."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    columns = max(len(row) for row in all_rows)
    widths = [
        max((len(row[i]) for row in all_rows if i < len(row)), default=0) for i in range(columns)
    ]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i] + padding) for i, cell in enumerate(row)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def go_quote(text: str) -> str:
    """Go's ``%q``: a double-quoted string with backslash escapes."""
    return (
        '"'
        + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        + '"'
    )
