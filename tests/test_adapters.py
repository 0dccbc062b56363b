"""Model specs -> calculators, and a clear error for each way a spec can be wrong."""

import textwrap

import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from adapters import SpecError, load


@pytest.mark.parametrize("spec, cls", [("ase:EMT", EMT), ("ase:emt", EMT),
                                       ("ase:LennardJones", LennardJones), ("ase:lj", LennardJones)])
def test_ase_calculators_by_class_or_short_name(spec, cls):
    loaded = load(spec)
    assert isinstance(loaded.calc, cls)
    assert isinstance(loaded.factory(), cls) and loaded.factory() is not loaded.calc


def test_kwargs_reach_the_class():
    loaded = load("ase:LennardJones", {"sigma": 2.1, "rc": 4.5})
    assert loaded.calc.parameters.sigma == 2.1 and loaded.calc.parameters.rc == 4.5


def test_module_attr_instance_class_and_factory(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent("""
        from ase.calculators.emt import EMT
        instance = EMT()
        Klass = EMT
        def factory(scale=1.0):
            calc = EMT()
            calc.species = ["Cu", "Ni"]
            calc.cutoff = 5.5
            calc.precision = "float32"
            return calc
        not_a_calc = 42
        def returns_string():
            return "hello"
        def raises():
            raise RuntimeError("weights file missing")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(load("mymodels:instance").calc, EMT)
    assert isinstance(load("mymodels:Klass").calc, EMT)
    loaded = load("mymodels:factory", {"scale": 2.0})
    assert loaded.species == ["Cu", "Ni"] and loaded.cutoff == 5.5 and loaded.precision == "float32"
    # the same from a file path
    loaded = load(f"{tmp_path / 'mymodels.py'}:factory")
    assert loaded.species == ["Cu", "Ni"]
    with pytest.raises(SpecError, match="not a calculator, a calculator class or a factory"):
        load("mymodels:not_a_calc")
    with pytest.raises(SpecError, match=r"returned str, not an ASE calculator"):
        load("mymodels:returns_string")
    with pytest.raises(SpecError, match="the factory raised RuntimeError: weights file missing"):
        load("mymodels:raises")
    with pytest.raises(SpecError, match="has no attribute 'missing'; it defines: .*factory"):
        load("mymodels:missing")
    with pytest.raises(SpecError, match=r"calling factory\(\*\*\{'bogus': 1\}\) failed"):
        load("mymodels:factory", {"bogus": 1})
    with pytest.raises(SpecError, match="takes no model keyword arguments"):
        load("mymodels:instance", {"x": 1})


@pytest.mark.parametrize("spec, match", [
    ("EMT", "must look like 'ase:EMT'"),
    (":EMT", "both sides of ':' are needed"),
    ("ase:", "both sides of ':' are needed"),
    ("ase:NoSuchCalc", "ASE has no calculator called 'NoSuchCalc'"),
    ("no_such_package_xyz.models:calc", "module 'no_such_package_xyz.models' not found"),
    ("missing/file.py:calc", "file 'missing/file.py' not found"),
    ("reference:nope", "no reference model 'nope'"),
    ("entry:nope", "no entry point 'nope' in group mlip_conformance.models"),
])
def test_bad_specs_have_clear_messages(spec, match):
    with pytest.raises(SpecError, match=match):
        load(spec)


def test_file_that_raises_on_import(tmp_path):
    f = tmp_path / "broken.py"
    f.write_text("raise ImportError('needs torch')\n")
    with pytest.raises(SpecError, match="executing .*broken.py raised ImportError: needs torch"):
        load(f"{f}:calc")


def test_species_cutoff_and_precision_declared_on_a_factory_reach_the_session(tmp_path, monkeypatch):
    from conformance.run.config import build_config
    from conformance.run.session import open_session

    (tmp_path / "declaring_models.py").write_text(textwrap.dedent("""
        from ase.calculators.emt import EMT
        def make():
            return EMT()
        make.species = ["Cu", "Ni"]
        make.cutoff = 6.5
        make.precision = "float32"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    session = open_session(build_config({"model": "declaring_models:make", "checks": ["net_force"]}),
                           probe=False)
    tags = session.model.tags
    assert (tags.species, tags.cutoff, tags.precision) == (("Cu", "Ni"), 6.5, "float32")
    assert {c.name for c in session.cases} >= {"bulk_Cu_fcc", "bulk_Ni_fcc", "alloy_CuNi_fcc"}
    # the command line still wins over the factory's declaration
    session = open_session(build_config({"model": "declaring_models:make", "species": "Cu",
                                         "precision": "float64", "checks": ["net_force"]}), probe=False)
    assert (session.model.tags.species, session.model.tags.precision) == (("Cu",), "float64")


def test_a_model_file_imports_the_modules_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "potential_parts.py").write_text("from ase.calculators.emt import EMT\nSCALE = 1.0\n")
    (folder / "my_model.py").write_text(textwrap.dedent("""
        from potential_parts import EMT
        def calc():
            return EMT()
    """))
    monkeypatch.chdir(tmp_path)                     # run from elsewhere, as `python project/my_model.py`
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    loaded = load("project/my_model.py:calc")
    assert type(loaded.calc).__name__ == "EMT"
