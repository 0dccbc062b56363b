"""The check catalogue and tolerance table (Markdown) generated from the registry.

``python -m conformance.reporting.catalogue`` prints the catalogue: for every registered
check its family, the cases it runs on, the unit of its measured value, its
model calls and its one-line summary. ``python -m conformance.reporting.catalogue
--update README.md`` rewrites the generated blocks of the README in place
(between ``<!-- catalogue:start ... -->``/``<!-- catalogue:end -->`` and the
same for ``tolerances``); a test keeps the README in sync.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..core.registry import all_checks
from ..core.tolerances import markdown_table


def markdown_catalogue() -> str:
    lines = ["| check | family | cases | unit | model calls | what it measures |",
             "|---|---|---|---|---|---|"]
    for spec in all_checks().values():
        cases = ", ".join(sorted(spec.cases))
        lines.append(f"| `{spec.name}` | {spec.family} | {cases} | {spec.unit} | {spec.calls} | "
                     f"{spec.summary} |")
    return "\n".join(lines)


def _replace_block(text: str, name: str, content: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start[^\n]*-->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)


def render_readme(text: str) -> str:
    """README text with the generated blocks refreshed."""
    text = _replace_block(text, "catalogue", markdown_catalogue())
    return _replace_block(text, "tolerances", markdown_table())


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "--update":
        path = Path(sys.argv[2])
        path.write_text(render_readme(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(markdown_catalogue())
