"""One module per stage: every dvc.yaml stage is declared by one module under facetransfer/stages/, runs commands
defined there, and passes the paths that module's OUTPUTS declares (the report reads the same declarations)."""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import facetransfer.stages
from facetransfer.stages.outputs import Outputs
from tests.test_dvc_deps import command_modules, stages

# control-data runs the synth and prepare commands into controls/ instead of data/ and prepared/.
OTHER_FOLDERS = {"control-data"}


def stage_modules() -> dict[str, object]:
    """facetransfer.stages.<name> -> module, for every stage module (not outputs.py or the _private helpers)."""
    names = [m.name for m in pkgutil.iter_modules(facetransfer.stages.__path__)
             if not m.name.startswith("_") and m.name != "outputs"]
    return {name: importlib.import_module(f"facetransfer.stages.{name}") for name in names}


def declared() -> dict[str, str]:
    """dvc.yaml stage -> the stage module declaring it in DVC_STAGES (each exactly once)."""
    out: dict[str, str] = {}
    for name, module in stage_modules().items():
        for stage in module.DVC_STAGES:
            assert stage not in out, f"{stage} is declared by both stages/{out[stage]}.py and stages/{name}.py"
            out[stage] = name
    return out


def cmd_options(cmd: str, command: str) -> dict[str, str]:
    """`--some-option value` pairs of one `facetransfer <command>` in a stage's cmd, as Python names."""
    part = cmd.split(f"facetransfer {command}", 1)[1].split("facetransfer ", 1)[0]
    return {opt.replace("-", "_"): value for opt, value in re.findall(r"--([a-z][a-z-]*)\s+([^\s-][^\s]*)", part)}


def matches(declared_path: str, dvc_path: str) -> bool:
    """A declared path with {fields} against dvc.yaml's with ${...} templates (both as glob patterns)."""
    return fnmatch.fnmatchcase(re.sub(r"\$\{[^}]+\}", "X", dvc_path), re.sub(r"\{[^}]+\}", "*", declared_path))


def test_every_dvc_stage_is_declared_by_one_stage_module():
    assert sorted(declared()) == sorted(stages()), "DVC_STAGES and dvc.yaml disagree"


def test_every_stage_module_has_outputs_a_run_and_a_docstring_saying_what_it_reads_and_writes():
    for name, module in stage_modules().items():
        assert isinstance(module.OUTPUTS, Outputs), name
        assert callable(module.run), name
        assert "Writes" in module.__doc__ and "OUTPUTS" in module.__doc__, name


@pytest.mark.parametrize("stage", sorted(stages()))
def test_the_stage_runs_commands_of_its_module_with_the_declared_output_paths(stage):
    commands, module_name = command_modules(), declared()[stage]
    module = stage_modules()[module_name]
    cmd = stages()[stage]["cmd"]
    run = re.findall(r"\bfacetransfer\s+([a-z][a-z0-9-]*)", cmd)
    assert all(commands[c].startswith("facetransfer.stages.") for c in run), (stage, run)
    own = [c for c in run if commands[c] == module.__name__]
    assert own, f"dvc.yaml stage {stage} runs {run}, none defined in stages/{module_name}.py"
    if stage in OTHER_FOLDERS:
        return
    given = cmd_options(cmd, own[0])
    for option, path in module.OUTPUTS.options.items():
        assert option in given, f"{stage}: dvc.yaml does not pass --{option.replace('_', '-')} (OUTPUTS declares it)"
        assert matches(path, given[option]), f"{stage}: --{option} {given[option]} in dvc.yaml, {path} in OUTPUTS"


def test_a_path_dvc_yaml_changes_is_caught():
    assert matches("models/pain/seed{seed}/freeze{freeze}", "models/pain/seed${item.seed}/freeze${item.freeze}")
    assert not matches("models/pain/seed{seed}/freeze{freeze}", "models/painx/seed${item.seed}/freeze${item.freeze}")
    assert not matches("metrics/cka.json", "metrics/cka2.json")


def test_outputs_fill_fields_and_refuse_a_file_in_an_undeclared_folder():
    outputs = Outputs({"out": "models/trainee/seed{seed}"}, {"model": ("out", "{variant}/model.pt")})
    assert outputs.file("model", seed=7, variant="plain") == Path("models/trainee/seed7/plain/model.pt")
    assert outputs.file("model", Path("elsewhere"), variant="plain") == Path("elsewhere/plain/model.pt")
    with pytest.raises(ValueError, match="not declared"):
        Outputs({"out": "x"}, {"model": ("plots", "model.pt")})
