"""Profiles: each file of profiles/ is a whole params file (`cp profiles/X.yaml params.yaml` works as it is), and
differs from params.yaml only in the keys its header comment lists, so a new default reaches every profile."""

from __future__ import annotations

import re
from itertools import takewhile
from pathlib import Path

import pytest
import yaml

from facetransfer.config import SECTIONS, ConfigError, load_section, read_params
from tests.conftest import REPO, SMOKE_PARAMS

DEFAULTS = REPO / "params.yaml"
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))  # a new profile is checked without being named here
LIST_START = "# Differs from params.yaml in"
LIST_LINE = "#   "  # the list's lines: comma-separated dotted paths, indented under LIST_START
_ABSENT = object()


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{dotted path to a leaf: value}; lists and empty mappings are leaves (compared whole)."""
    leaves = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, f"{path}."))
        else:
            leaves[path] = value
    return leaves


def listed_differences(profile: Path) -> list[str]:
    """The dotted paths listed in the profile's header comment (the lines under LIST_START)."""
    header = list(takewhile(lambda line: line.startswith("#"), profile.read_text().splitlines()))
    starts = [i for i, line in enumerate(header) if line.startswith(LIST_START)]
    assert starts, (f"{profile}: its header comment has no line starting {LIST_START!r}, followed by the keys in "
                    f"which it differs from params.yaml on lines starting {LIST_LINE!r}")
    after = header[starts[0] + 1:]
    after = after[next((i for i, line in enumerate(after) if line.startswith(LIST_LINE)), len(after)):]
    lines = takewhile(lambda line: line.startswith(LIST_LINE), after)
    return [key.strip() for line in lines for key in line[1:].split(",") if key.strip()]


def check_listed_differences(profile: Path, defaults: Path = DEFAULTS) -> None:
    """AssertionError naming the profile and every key to add to or remove from its list, unless the list names
    exactly the keys in which it differs from `defaults`. A value differs, or the key is in one file only; a listed
    mapping stands for every key below it, and must have most of them differ (else list those keys)."""
    ours, theirs = flatten(read_params(profile)), flatten(read_params(defaults))
    leaves = ours.keys() | theirs.keys()
    differ = {key for key in leaves if ours.get(key, _ABSENT) != theirs.get(key, _ABSENT)}
    listed = listed_differences(profile)

    def below(path: str, keys) -> set[str]:
        return {key for key in keys if key == path or key.startswith(f"{path}.")}

    unlisted = sorted(key for key in differ if not any(below(path, [key]) for path in listed))
    stale = [path for path in listed if not below(path, differ)]
    coarse = [path for path in listed
              if path not in leaves and 0 < 2 * len(below(path, differ)) <= len(below(path, leaves))]
    repeated = sorted({path for path in listed if listed.count(path) > 1})
    problems = [f"{what}: {', '.join(keys)}" for what, keys in [
        (f"differs from {defaults.name} in keys its list leaves out, add them", unlisted),
        ("lists keys that do not differ (any more), remove them", stale),
        ("lists mappings where most keys below do not differ, list the keys that do", coarse),
        ("lists keys twice", repeated),
    ] if keys]
    assert not problems, (f"{profile}: the list at the top of the file ({LIST_START} ...) is out of step:\n  "
                          + "\n  ".join(problems))


def check_complete(params: Path) -> None:
    """ConfigError or AssertionError unless every section config.py defines loads and validates from `params` and
    it has no other top-level section: a file that can stand in for params.yaml as it is."""
    unknown = sorted(set(read_params(params)) - set(SECTIONS))
    assert not unknown, f"{params}: sections that config.py does not define: {unknown} (known: {sorted(SECTIONS)})"
    for section in SECTIONS:
        load_section(params, section)


def _copy_with(tmp_path: Path, profile: Path, key: str, value=_ABSENT) -> Path:
    """A copy of `profile` (its header comment kept) with the dotted `key` set to `value`, or removed."""
    params = read_params(profile)
    *parents, last = key.split(".")
    node = params
    for name in parents:
        node = node[name]
    if value is _ABSENT:
        del node[last]
    else:
        node[last] = value
    header = takewhile(lambda line: line.startswith("#"), profile.read_text().splitlines())
    path = tmp_path / profile.name
    path.write_text("\n".join(header) + "\n\n" + yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_each_profile_lists_exactly_the_keys_it_changes(profile):
    """A key added to params.yaml (or a default changed there) must reach every profile or be listed as a
    deliberate difference; a listed difference that was given up must leave the list."""
    check_listed_differences(profile)


@pytest.mark.parametrize("params", [DEFAULTS, *PROFILES], ids=lambda path: path.name)
def test_each_profile_and_params_yaml_is_a_complete_params_file(params):
    """Copied over params.yaml, a profile must serve every stage: each section of config.py validates from it, and
    no section is left over that no stage reads (a renamed or dropped section)."""
    check_complete(params)


def test_the_profiles_are_the_smoke_and_paper_ones():
    """The glob above finds the profiles (an empty or moved folder would make the parametrised tests vanish)."""
    assert SMOKE_PARAMS in PROFILES and REPO / "profiles" / "paper.yaml" in PROFILES


@pytest.mark.parametrize("key, value, says", [
    ("synth.seed", 7, "leaves out, add them: synth.seed"),  # a value changed without listing it
    ("synth.seed", _ABSENT, "leaves out, add them: synth.seed"),  # a key dropped from the profile
    ("train_emotion.epochs", 60, "do not differ (any more), remove them: train_emotion.epochs"),  # back to default
])
def test_the_list_check_catches_an_unlisted_or_stale_key(tmp_path, key, value, says):
    """One changed key in a copy of the smoke profile fails the check, which names the file and the key."""
    copy = _copy_with(tmp_path, SMOKE_PARAMS, key, value)
    with pytest.raises(AssertionError, match=f"(?s){re.escape(str(copy))}: the list at the top.*{re.escape(says)}"):
        check_listed_differences(copy)
    # the same copy with the value as it was passes: the failure is the edit's, not the rewritten file's
    check_listed_differences(_copy_with(tmp_path, SMOKE_PARAMS, "synth.seed", 2022))


def test_the_list_check_rejects_a_missing_list_a_coarse_mapping_and_a_repeat(tmp_path):
    """A listed mapping may stand for its keys only where most of them differ; without the list, nothing is
    checked, so its absence fails too."""
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("a: {x: 1, y: 2, z: 3}\nb: 1\n")
    profile = tmp_path / "profile.yaml"
    profile.write_text("# A profile.\n\na: {x: 9, y: 2, z: 3}\nb: 1\n")
    with pytest.raises(AssertionError, match="no line starting '# Differs from params.yaml in'"):
        check_listed_differences(profile, defaults)
    profile.write_text("# Differs from params.yaml in:\n#   a, b, b\n\na: {x: 9, y: 2, z: 3}\nb: 2\n")
    with pytest.raises(AssertionError) as err:
        check_listed_differences(profile, defaults)
    assert "most keys below do not differ, list the keys that do: a\n" in str(err.value)
    assert "lists keys twice: b" in str(err.value)
    profile.write_text("# Differs from params.yaml in (a comment line of its own)\n#   a.x,\n#   b\n\n"
                       "a: {x: 9, y: 2, z: 3}\nb: 2\n")
    check_listed_differences(profile, defaults)  # wrapped over lines, a trailing comma
    profile.write_text("# Differs from params.yaml in:\n#   a\n\na: {x: 9, y: 8, z: 3}\nb: 1\n")
    check_listed_differences(profile, defaults)  # a mapping with most keys below it changed stands for them


def test_the_complete_file_check_catches_a_missing_or_unknown_section(tmp_path):
    """A copy of the smoke profile without a section, with a misspelt one, or with a bad value is not a params
    file; with a valid changed value it still is."""
    check_complete(_copy_with(tmp_path, SMOKE_PARAMS, "units.top_k", 3))
    with pytest.raises(ConfigError, match="missing section 'cka'"):
        check_complete(_copy_with(tmp_path, SMOKE_PARAMS, "cka"))
    with pytest.raises(AssertionError, match=r"sections that config.py does not define: \['ckaa'\]"):
        check_complete(_copy_with(tmp_path, SMOKE_PARAMS, "ckaa", {"device": "auto"}))
    with pytest.raises(ConfigError, match="units.top_k: Input should be a valid integer"):
        check_complete(_copy_with(tmp_path, SMOKE_PARAMS, "units.top_k", "3"))
