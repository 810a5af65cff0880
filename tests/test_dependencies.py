"""Every third-party package the source imports is declared in pyproject.toml (issue 19: pydantic, joblib and
tabulate had arrived only through other packages, and a dependency's release could have dropped them)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.conftest import REPO

# Imported by name, but pulled in by pandas for DataFrame.to_markdown: there is no `import tabulate`.
USED_THROUGH_PANDAS = {"tabulate": "to_markdown("}


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"facetransfer", "__future__"}


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower().replace("_", "-")
            for spec in project["dependencies"]}


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()  # module -> the distributions providing it
    undeclared = {}
    for module in sorted(_imported_top_level_modules()):
        provided_by = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not provided_by & _declared():
            undeclared[module] = sorted(provided_by)
    assert not undeclared, f"imported but not in pyproject.toml dependencies: {undeclared}"


def test_packages_used_through_pandas_are_declared_where_they_are_used():
    source = "".join(path.read_text() for path in (REPO / "src").rglob("*.py"))
    for package, use in USED_THROUGH_PANDAS.items():
        assert use in source and package in _declared()


def test_the_config_imports_no_reader():
    """Issue 19: importing facetransfer.config must not load the dataset readers or prepare (which import
    the config: a cycle). The labels it needs live in data/labels.py, which imports nothing."""
    import subprocess

    code = ("import sys, facetransfer.config\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('facetransfer'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=REPO).stdout.split())
    assert loaded == {"facetransfer", "facetransfer.config", "facetransfer.data", "facetransfer.data.errors",
                      "facetransfer.data.labels",
                      "facetransfer.fsutil", "facetransfer.names"}, loaded  # names.py imports nothing either
