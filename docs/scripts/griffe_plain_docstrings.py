"""A Griffe extension (mkdocs.yml, mkdocstrings ``extensions``): show manual_bp's docstrings as written.

The docstrings are plain text with formulas (``dx = dout * f'(x)``, ``x: (N, *, D)``), not Markdown, so
a ``*`` must not start emphasis and ``[layer][direction]`` must not become a link (a broken
cross-reference fails the strict build). This escapes every ``*`` and ``[`` outside inline code and
outside indented blocks (``::`` literal blocks, which Markdown already shows as code). The source files
are not touched.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _escape(text: str) -> str:
    return text.replace("*", r"\*").replace("[", r"\[")


def plain(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("    ") or line.startswith("\t"):
            out.append(line)
            continue
        pieces, last = [], 0
        for m in _CODE_SPAN.finditer(line):
            pieces.append(_escape(line[last : m.start()]))
            pieces.append(m.group(0))
            last = m.end()
        pieces.append(_escape(line[last:]))
        out.append("".join(pieces))
    return "\n".join(out)


class PlainDocstrings(Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if getattr(obj, "docstring", None) is not None:
            obj.docstring.value = plain(obj.docstring.value)
