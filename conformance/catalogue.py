"""The check catalogue (Markdown) generated from the registry, for the README.

``python -m conformance.catalogue`` prints a table with, for every registered
check: family, the cases it runs on, the unit of its measured value, its model
calls and its one-line summary.
"""

from __future__ import annotations

from .registry import all_checks


def markdown_catalogue() -> str:
    lines = ["| check | family | cases | unit | model calls | what it measures |",
             "|---|---|---|---|---|---|"]
    for spec in all_checks().values():
        cases = ", ".join(sorted(spec.cases))
        lines.append(f"| `{spec.name}` | {spec.family} | {cases} | {spec.unit} | {spec.calls} | "
                     f"{spec.summary} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_catalogue())
