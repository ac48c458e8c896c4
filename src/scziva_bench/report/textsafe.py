"""User text (paths, descriptions, names from a config) made safe for reStructuredText.

Snakemake renders report captions as Jinja templates and then as reStructuredText with
docutils' defaults, where ``.. include::`` reads files and ``.. raw:: html`` passes HTML
through; a backquoted ```x <javascript:...>`_`` becomes a link. A value written into a
caption must therefore never become markup:

* :func:`one_line` keeps a value on its own line (line breaks and other control
  characters shown as ``\\n``-style escapes), so it cannot start a directive;
* :func:`rst_escape` additionally puts a backslash before every ASCII punctuation
  character, which docutils then shows as the character itself (no link, role,
  substitution, footnote, list, section or directive can start from escaped text);
  use it for values inside ordinary caption text;
* :func:`rst_literal_block` shows text verbatim as an indented literal block.

The caption templates in ``workflow/report/*.rst`` also show the configuration summary
(``params.describe``) inside a literal block, so they are safe even for text that was
not escaped.
"""

from __future__ import annotations

import string
import unicodedata

__all__ = ["one_line", "rst_escape", "rst_literal_block"]

_PUNCT = frozenset(string.punctuation)


def one_line(text) -> str:
    """``str(text)`` with every character that could end a line (``\\n``, ``\\r``,
    ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028, U+2029) and every other
    control character written as its Python escape, e.g. ``a\\nb`` -> ``a\\\\nb``."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def rst_escape(text) -> str:
    """``text`` as reStructuredText inline content that displays exactly as
    :func:`one_line` gives it and contains no markup."""
    return "".join("\\" + ch if ch in _PUNCT else ch for ch in one_line(text))


def rst_literal_block(text, indent: int = 4) -> str:
    """``text`` as an RST literal block (``::`` then every line indented), each line
    passed through :func:`one_line`. Ends with a newline; put a blank line after it."""
    pad = " " * max(1, int(indent))
    lines = str(text).splitlines() or [""]
    return "::\n\n" + "\n".join(pad + one_line(ln) for ln in lines) + "\n"
