"""One option table: every option is a pytest flag, a RunConfig attribute and a README row."""

import dataclasses
import re
from pathlib import Path

from conformance.run.config import RunConfig, build_config
from conformance.run.options import OPTIONS, markdown_table

COMMAND_LINE = [option for option in OPTIONS if option.command_line]
README = Path(__file__).parents[1] / "README.md"


def test_option_names_are_unique():
    names = [option.name for option in OPTIONS]
    assert len(names) == len(set(names))


def test_every_runconfig_attribute_is_an_option_with_its_default():
    assert {f.name for f in dataclasses.fields(RunConfig)} == {option.field for option in OPTIONS}
    config = RunConfig()
    assert {option.field: getattr(config, option.field) for option in OPTIONS} == \
        {option.field: option.default for option in OPTIONS}


def test_help_lists_every_command_line_option_and_no_other(pytester):
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert set(re.findall(r"--mlip-[a-z-]+[a-z]", help_text)) == {option.flag for option in COMMAND_LINE}
    for option in COMMAND_LINE:
        shown = option.flag if option.metavar is None else f"{option.flag}={option.metavar}"
        assert re.search(rf"^\s+{re.escape(shown)}(\s|$)", help_text, re.M), shown


def test_every_command_line_option_reaches_its_runconfig_attribute(pytester):
    args = [option.flag if option.metavar is None else f"{option.flag}=given" for option in COMMAND_LINE]
    config = pytester.parseconfig(*args)
    assert {option.field: config.getoption(option.dest) for option in COMMAND_LINE} == \
        {option.field: True if option.metavar is None else "given" for option in COMMAND_LINE}


def test_flags_without_value_switch_their_option_on():
    flags = [option for option in COMMAND_LINE if option.metavar is None]
    assert {option.name for option in flags} == {"md-long", "resume", "golden-update"}
    config = build_config({option.field: True for option in flags})
    assert all(getattr(config, option.field) is True for option in flags)


def test_readme_options_table_is_the_generated_one():
    readme = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- options:start[^\n]*-->\n(.*?)<!-- options:end -->", readme, re.S)
    assert block is not None, "README has no <!-- options:start --> ... <!-- options:end --> block"
    assert block.group(1) == markdown_table() + "\n", \
        "run: python -m conformance.run.options --update README.md"
    assert len(markdown_table().splitlines()) == 2 + len(OPTIONS)
