"""Layering: the suite never imports the bundled reference models, and its featurisation
depends on nothing else of the suite (``reference_models`` builds on it, not the reverse)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, nested ones included."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            out += [(node.lineno, base)]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            out += [(node.lineno, str(node.args[0].value))]
    return out


def _offending(files, forbidden) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in files for line, name in _imports(path) if forbidden(name)]


def test_nothing_in_the_suite_imports_reference_models():
    files = sorted(SUITE.rglob("*.py"))
    assert len(files) > 30
    assert _offending(files, lambda name: name.split(".")[0] == "reference_models") == []


def test_featurisation_imports_nothing_else_of_the_suite():
    files = sorted((SUITE / "featurize").glob("*.py"))
    assert {p.stem for p in files} >= {"descriptors", "neighbors", "switching", "design",
                                       "ridge", "repulsion", "batch"}
    inside = lambda name: name.startswith("conformance.") and not name.startswith(  # noqa: E731
        "conformance.featurize")
    assert _offending(files, inside) == []


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path):
    probe = SUITE / "audits" / "leakage.py"
    names = {name for _, name in _imports(probe)}
    assert "conformance.featurize.descriptors" in names       # nested, relative import
    assert "conformance.audits.data" in names
    assert _offending([probe], lambda name: name == "conformance.audits.data")
