"""fsutil: atomic writes and the fast YAML reader every stage uses for params.yaml and dvc.lock."""

from __future__ import annotations

import pytest
import yaml

from facetransfer.fsutil import read_yaml
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["params.yaml", "dvc.yaml", "dvc.lock", "profiles/smoke.yaml"])
def test_read_yaml_equals_pyyaml_safe_load(name):
    path = REPO / name
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_read_yaml_uses_libyaml_where_pyyaml_has_it(monkeypatch, tmp_path):
    """The point of read_yaml is speed: it must take the C loader when PyYAML was built with it."""
    used = []
    real_load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda text, Loader: used.append(Loader) or real_load(text, Loader=Loader))
    (tmp_path / "a.yaml").write_text("a: [1, 2]\n")
    assert read_yaml(tmp_path / "a.yaml") == {"a": [1, 2]}
    assert used == [yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader]


def test_read_yaml_is_safe(tmp_path):
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError):
        read_yaml(tmp_path / "evil.yaml")
