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


#: The suite's layers, bottom up: a module may import its own layer and those below.
LAYERS = ("featurize", "core", "toolkit", "audits", "checks", "reporting", "run", "plugin")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "conformance" and len(parts) > 1 and parts[1] in LAYERS else None


def _suite_modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(SUITE.rglob("*.py"))}


def test_every_module_of_the_suite_lives_in_a_layer():
    loose = [m for m in _suite_modules() if m != "conformance" and _layer(m) is None]
    assert loose == []
    assert {_layer(m) for m in _suite_modules()} - {None} == set(LAYERS)


def test_imports_point_down_the_layers():
    upward = []
    for module, path in _suite_modules().items():
        mine = _layer(module)
        if mine is None:
            continue
        for line, name in _imports(path):
            theirs = _layer(name)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {name} ({theirs})")
    assert upward == []


def test_no_import_cycles_between_modules():
    from graphlib import CycleError, TopologicalSorter

    modules = _suite_modules()
    graph = {m: {name for _, name in _imports(p) if name in modules and name != m
                 and not m.startswith(name + ".")}   # a package's own __init__ is no edge
             for m, p in modules.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert len(order) == len(modules)


def test_the_layer_reader_flags_an_upward_import():
    probe = SUITE / "core" / "registry.py"
    assert _layer("conformance.core.registry") == "core"
    assert _layer("conformance.plugin.hooks") == "plugin" and _layer("numpy") is None
    assert any(_layer(name) == "core" for _, name in _imports(probe))
