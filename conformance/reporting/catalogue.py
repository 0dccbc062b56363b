"""The check catalogue and tolerance table (Markdown) generated from the registry.

``python -m conformance.reporting.catalogue`` prints the catalogue: for every registered
check its family, the cases it runs on, the unit of its measured value, its
model calls and its one-line summary. :func:`render_readme` refreshes the
README's generated blocks of this layer (between ``<!-- catalogue:start ... -->``
and ``<!-- catalogue:end -->``, and the same for ``tolerances``);
``python -m conformance.run.options --update README.md`` rewrites them in place
together with the options table, which lives in a layer above this one.
"""

from __future__ import annotations

import re

from ..core.registry import all_checks
from ..core.tolerances import markdown_table


def markdown_catalogue(family: str | None = None) -> str:
    """The catalogue table: every registered check, or those of ``family``."""
    lines = ["| check | family | cases | unit | model calls | what it measures |",
             "|---|---|---|---|---|---|"]
    for spec in all_checks().values():
        if family is not None and spec.family != family:
            continue
        cases = ", ".join(sorted(spec.cases))
        lines.append(f"| `{spec.name}` | {spec.family} | {cases} | {spec.unit} | {spec.calls} | "
                     f"{spec.summary} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with ``content`` between ``<!-- name:start ... -->`` and ``<!-- name:end -->``."""
    pattern = re.compile(rf"(<!-- {name}:start[^\n]*-->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)


def render_readme(text: str) -> str:
    """README text with the check catalogue and the tolerance table refreshed."""
    text = replace_block(text, "catalogue", markdown_catalogue())
    return replace_block(text, "tolerances", markdown_table())


def family_page(text: str, family: str) -> str:
    """A family's docs page (``docs/checks/<family>.md``) with its generated list of
    checks refreshed (the block ``checks``): adding a check updates its page."""
    return replace_block(text, "checks", markdown_catalogue(family))


def family_pages(folder) -> dict:
    """``{path: refreshed text}`` of every family's docs page in ``folder``
    (a family with checks but no page is a ValueError naming the page to write)."""
    from pathlib import Path

    pages = {}
    for family in sorted({spec.family for spec in all_checks().values()}):
        path = Path(folder) / f"{family}.md"
        if not path.exists():
            raise ValueError(f"family {family!r} has no docs page {path}: write one with a "
                             "<!-- checks:start --> <!-- checks:end --> block")
        pages[path] = family_page(path.read_text(encoding="utf-8"), family)
    return pages


if __name__ == "__main__":  # pragma: no cover
    print(markdown_catalogue())
