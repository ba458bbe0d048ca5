"""The docs tell the truth about the code they describe: the configuration reference is what the
settings print, .env.example lists every setting at its default, and docs/cli.md has a section for
every command that names each of its options and arguments (and none for a command that is gone)."""

from __future__ import annotations

import re

from pydantic import SecretStr

from orchestrator_data.settings import Settings, load_settings
from orchestrator_data.settings_reference import reference, variable_of
from tests.conftest import PROJECT_ROOT

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
CLI_DOC = PROJECT_ROOT / "docs" / "cli.md"


def _variables() -> dict[str, str]:
    """Field name → the variable it is read from, for every setting."""
    return {name: variable_of(field)[0] for name, field in Settings.model_fields.items()}


def test_the_configuration_reference_is_what_the_settings_print():
    written = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == reference(), ("docs/configuration.md differs from the settings: run "
                                    ".venv/bin/python -m orchestrator_data.settings_reference > docs/configuration.md")


def test_the_reference_generator_runs_without_dagster():
    """The core never imports Dagster; the generator is part of it and runs as a plain module."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, runpy; runpy.run_module("
                           "'orchestrator_data.settings_reference', run_name='__main__'); "
                           "sys.stderr.write(str(any(m.split('.')[0] == 'dagster' for m in sys.modules)))"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == reference()
    assert done.stderr.strip().endswith("False")


def test_every_setting_has_a_description_and_appears_in_the_reference():
    assert [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()] == []
    text = reference()
    assert [variable for variable in _variables().values() if f"| `{variable}`" not in text] == []


def test_env_example_lists_every_setting_and_nothing_else():
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = re.findall(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", text, flags=re.M)
    assert sorted(set(_variables().values()) - set(listed)) == []
    assert sorted(set(listed) - set(_variables().values())) == []


def _unset_if_blank(value):
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return None if value == "" else value


def test_env_example_as_given_means_the_defaults(monkeypatch, tmp_path):
    """`cp .env.example .env.local` changes nothing until a value is edited: every value it sets is the
    setting's default (a blank one: unset)."""
    for field in Settings.model_fields.values():
        for variable in (variable_of(field)[0], *variable_of(field)[1]):
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the working directory takes part
    from_example = load_settings(_env_file=ENV_EXAMPLE)
    defaults = load_settings(_env_file=None)
    differing = {name: (getattr(from_example, name), getattr(defaults, name)) for name in Settings.model_fields
                 if _unset_if_blank(getattr(from_example, name)) != _unset_if_blank(getattr(defaults, name))}
    assert differing == {}


# -- docs/cli.md --------------------------------------------------------------------------------------
def _commands():
    """(path, command) for every command the console script runs, e.g. (("search", "snapshot", "prune"), ...)."""
    import typer

    from orchestrator_data.cli.main import app

    def walk(command, path):
        children = getattr(command, "commands", None)
        if children is None:
            yield path, command
            return
        for name, child in children.items():
            yield from walk(child, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


def _sections() -> dict[str, str]:
    """Each command's section of docs/cli.md (a heading "### `<command path>`"), by command path."""
    text = CLI_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^(#{1,3} .*)$", text, flags=re.M)
    sections = {}
    for heading, body in zip(parts[1::2], parts[2::2]):
        found = re.fullmatch(r"### `([a-z][a-z -]*)`", heading.strip())
        if found:
            sections[found.group(1)] = body
    return sections


def test_the_cli_reference_has_a_section_for_every_command_and_no_other():
    documented = set(_sections())
    commands = {" ".join(path) for path, _ in _commands()}
    assert sorted(commands - documented) == []
    assert sorted(documented - commands) == []


def test_each_command_section_names_its_options_and_arguments():
    sections = _sections()
    missing = []
    for path, command in _commands():
        body = sections.get(" ".join(path), "")
        for param in command.params:
            if param.param_type_name == "argument":
                if not re.search(rf"\b{param.name.upper()}\b", body):
                    missing.append(f"{' '.join(path)}: argument {param.name.upper()}")
            else:
                missing += [f"{' '.join(path)}: {opt}" for opt in param.opts
                            if opt != "--help" and not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", body)]
    assert missing == []


def test_each_command_section_gives_its_exit_codes():
    assert [name for name, body in _sections().items() if "Exit codes" not in body] == []


# -- README.md and docs/dagster.md ----------------------------------------------------------------------
def test_the_readme_make_targets_exist():
    """The README's commands (`make run`, `make test` — CI's .ci/run calls it — `make ui`, ...) are targets."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+(?: [\w-]+)*):", makefile, flags=re.M))
    targets = {name for line in targets for name in line.split()}
    named = set(re.findall(r"`make ([\w-]+)`|^\s+make ([\w-]+)", readme, flags=re.M))
    named = {first or second for first, second in named}
    assert {"run", "test", "ui"} <= named
    assert sorted(named - targets) == []


def _named_in(text: str, name: str) -> bool:
    """`name`, or its pattern over the search indices (search_workflows_index → search_<index>_index)."""
    from orchestrator_data.search.indices import NAMES

    return any(f"`{candidate}`" in text or f"`{candidate}," in text
               for candidate in {name, *(name.replace(f"_{index}_", "_<index>_") for index in NAMES)})


def test_the_dagster_page_names_every_asset_check_job_schedule_and_sensor():
    from definitions import defs

    text = (PROJECT_ROOT / "docs" / "dagster.md").read_text(encoding="utf-8")
    graph = defs.resolve_asset_graph()
    names = [key.to_user_string() for key in graph.get_all_asset_keys()]
    names += [key.name for key in graph.asset_check_keys]
    names += [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    names += [schedule.name for schedule in defs.schedules] + [sensor.name for sensor in defs.sensors]
    assert [name for name in names if not _named_in(text, name)] == []
