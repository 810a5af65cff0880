"""No stale result: every project module a stage's command imports is among that stage's `deps`.

DVC reruns a stage only when one of its `deps` changed, so a module the command
imports but the stage does not list (config.py, say) can change what the stage
computes while DVC keeps reusing the old result. This test walks each command's
import closure statically (every `import`, module level or inside a function)
and asks that each module file lies under one of the stage's deps.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from facetransfer.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "facetransfer"
# The command registry: it imports every command module so that each registers itself on the app;
# none of their code runs for another stage, so it is not followed (and a new command changes no result).
REGISTRY = f"{PACKAGE}.cli"


def module_file(module: str) -> Path | None:
    """src/<module path>.py or its package's __init__.py; None for what is not a project module."""
    base = SRC / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Project modules named by the imports of one module (names imported from a module count as it)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = module if is_package else module.rpartition(".")[0]
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # kept if it is a submodule
    return {name for name in found if name.split(".")[0] == PACKAGE and module_file(name) is not None}


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(module: str) -> set[Path]:
    """Files of every project module that importing `module` can load (the registry not followed)."""
    seen: set[str] = set()
    todo = _with_parents(module)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name == REGISTRY:
            continue
        path = module_file(name)
        for child in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            todo.extend(_with_parents(child))
    return {module_file(name) for name in seen if name != REGISTRY}


def command_modules() -> dict[str, str]:
    """`facetransfer <command>` -> the module that defines it, from the Typer app itself."""
    import facetransfer.cli  # noqa: F401  (registers every command)

    return {info.name or info.callback.__name__.replace("_", "-"): info.callback.__module__
            for info in app.registered_commands}


def stages() -> dict[str, dict]:
    """dvc.yaml stages with their command(s) and deps (foreach/matrix templates as written)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in raw.items():
        body = stage.get("do", stage)
        cmd = body["cmd"] if isinstance(body["cmd"], str) else " && ".join(body["cmd"])
        out[name] = {"cmd": cmd, "deps": [str(d) for d in body.get("deps", [])]}
    return out


def uncovered(stage: dict, commands: dict[str, str]) -> list[str]:
    """Project files the stage's commands import that none of its deps covers."""
    deps = [d.rstrip("/") for d in stage["deps"]]
    missing = set()
    for command in re.findall(rf"\b{PACKAGE}\s+([a-z][a-z0-9-]*)", stage["cmd"]):
        assert command in commands, f"dvc.yaml runs `{PACKAGE} {command}`, which the app does not define"
        for path in import_closure(commands[command]):
            rel = path.relative_to(ROOT).as_posix()
            if not any(rel == d or rel.startswith(d + "/") for d in deps):
                missing.add(rel)
    return sorted(missing)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_the_commands_import_closure(name):
    stage = stages()[name]
    missing = uncovered(stage, command_modules())
    assert not missing, f"dvc.yaml stage {name!r}: add to deps (the command imports them): {missing}"


def test_closure_follows_function_level_imports_and_package_inits(tmp_path):
    # The walk itself: a function-level import is found, parents' __init__ files are included,
    # and the registry's imports of other commands are not followed.
    closure = {p.relative_to(SRC).as_posix() for p in import_closure("facetransfer.stages.forgetting")}
    assert {"facetransfer/__init__.py", "facetransfer/config.py", "facetransfer/cli/app.py",
            "facetransfer/analysis/forgetting.py", "facetransfer/stats/mcnemar.py"} <= closure
    assert "facetransfer/stages/train_emotion.py" not in closure and "facetransfer/cli/__init__.py" not in closure
    inner = ast.parse("def f():\n    from facetransfer.stats import holm\n")
    assert _imported(inner, "facetransfer.x", False) == {"facetransfer.stats"}


def test_a_missing_dep_is_reported():
    stage = stages()["forgetting"]
    dropped = {**stage, "deps": [d for d in stage["deps"] if d != "src/facetransfer/stats"]}
    assert "src/facetransfer/stats/mcnemar.py" in uncovered(dropped, command_modules())
