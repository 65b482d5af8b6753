"""Typed method settings: one declaration read by the method, the schema, the
config file and the config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mocap_refine import config as mr_config
from mocap_refine.methods import REGISTRY, METHODS, method_settings
from mocap_refine.settings import SettingsError, describe, from_block, schema_block, to_block

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
TYPED = [name for name, spec in REGISTRY.items() if spec.settings is not None]


def test_some_methods_have_typed_settings():
    assert "track" in TYPED


@pytest.mark.parametrize("method", TYPED)
def test_schema_block_is_generated_from_the_settings(method):
    spec = REGISTRY[method]
    want = schema_block(spec.settings_class(), spec.summary)
    got = SCHEMA["properties"][method]
    assert got == want, "regenerate the schema block:\n" + yaml.safe_dump({method: want}, sort_keys=False)


@pytest.mark.parametrize("method", TYPED)
def test_config_file_holds_the_defaults(method):
    cls = REGISTRY[method].settings_class()
    assert CONFIG[method] == to_block(cls())
    assert method_settings(method, CONFIG[method]) == cls()


def test_schema_lists_every_registered_method():
    assert SCHEMA["properties"]["methods"]["items"]["enum"] == list(METHODS)


@pytest.mark.parametrize("block, message", [
    ({"horizon_s": 0}, "track.horizon_s: 0.0 must be greater than 0.0"),
    ({"iterations": 0}, "track.iterations: 0 is below the minimum 1"),
    ({"iterations": 2.5}, "track.iterations: expected an integer, got 2.5"),
    ({"iterations": float("inf")}, "track.iterations: expected an integer, got inf"),
    ({"iterations": float("nan")}, "track.iterations: expected an integer, got nan"),
    ({"w_joint": "heavy"}, "track.w_joint: expected a finite number, got 'heavy'"),
    ({"w_joint": float("nan")}, "track.w_joint: expected a finite number"),
    ({"init": "track"}, "track.init: expected one of baseline"),
    ({"horizon": 1}, "track.horizon: unknown setting; known: w_root_pos"),
    ({"horizon_s": 0.1, "commit_s": 0.2}, "commit_s (0.2) must not exceed horizon_s (0.1)"),
])
def test_bad_settings_are_refused_with_the_key_and_value(block, message):
    with pytest.raises(SettingsError, match=None) as err:
        method_settings("track", block)
    assert message in str(err.value)


def test_every_problem_is_listed():
    with pytest.raises(SettingsError) as err:
        from_block(REGISTRY["track"].settings_class(), {"iterations": 0, "tolerance": 2, "typo": 1}, "track")
    lines = str(err.value).splitlines()
    assert len(lines) == 4 and lines[0] == "invalid settings:"


def test_config_check_reports_settings_before_any_job(tmp_path):
    cfg = dict(CONFIG, track={"horizon_s": 0.1, "commit_s": 0.5})
    mr_config.validate_schema(cfg, REPO / "workflow" / "schemas" / "config.schema.yaml")
    with pytest.raises(mr_config.ConfigError, match=r"config track: commit_s \(0.5\) must not exceed"):
        mr_config.check_config(cfg, tmp_path)


def test_describe_covers_every_setting():
    cls = REGISTRY["track"].settings_class()
    rows = describe(cls)
    assert [r["name"] for r in rows] == list(to_block(cls()))
    assert all(r["doc"] for r in rows)


@pytest.mark.parametrize("method", TYPED)
def test_docs_table_is_generated(method, tmp_path):
    from mocap_refine.settings import sync_docs
    doc = REPO / "docs" / "methods" / f"{method}.md"
    copy = tmp_path / doc.name
    copy.write_text(doc.read_text())
    assert sync_docs([copy]) == [], "run: python -m mocap_refine.settings"


def test_generated_blocks_are_current(tmp_path):
    """`python -m mocap_refine.settings` rewrites the schema and config blocks
    from the settings classes; on the repository it changes nothing."""
    import shutil
    from mocap_refine.settings import sync_config_files
    schema = tmp_path / "schema.yaml"
    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "workflow" / "schemas" / "config.schema.yaml", schema)
    shutil.copy(REPO / "config" / "config.yaml", config)
    assert sync_config_files(schema, config) == [], "run: python -m mocap_refine.settings"
