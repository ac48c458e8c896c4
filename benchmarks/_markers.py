"""Replace the generated part of a document: the text between two marker lines."""

from __future__ import annotations

from pathlib import Path


def replace_between(doc: Path, start: str, end: str, text: str) -> None:
    """Write ``text`` between the markers ``start`` and ``end`` of ``doc`` (both kept);
    stop with a message when the document lacks them."""
    s = doc.read_text()
    if start not in s or end not in s:
        raise SystemExit(f"{doc} lacks the markers {start!r} ... {end!r}")
    head, rest = s.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(head + start + "\n\n" + text + "\n" + end + tail)
