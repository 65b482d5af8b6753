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


def test_a_new_method_needs_only_its_module_and_registry_entry(tmp_path, monkeypatch):
    """With a method added to the registry, `python -m mocap_refine.settings`
    writes everything else: its schema block and the schema's list of
    methods, its config.yaml block, its docs page with the settings table,
    and its row in docs/methods/README.md; the schema then accepts it."""
    import dataclasses
    import shutil

    from mocap_refine import methods
    from mocap_refine.settings import setting, sync_config_files, sync_docs, sync_methods_index

    @dataclasses.dataclass(frozen=True)
    class HoldSettings:
        scale: float = setting(0.5, "fraction of the first PD action held", minimum=0.0, maximum=1.0)

    spec = methods.MethodSpec("hold", ".baseline", "baseline", "HoldSettings", False, 1, "#17becf",
                              "the first PD action, scaled and held")
    monkeypatch.setattr(methods.MethodSpec, "settings_class",
                        lambda self: HoldSettings if self.name == "hold" else getattr(
                            __import__(f"mocap_refine.methods{self.module}", fromlist=["x"]), self.settings))
    monkeypatch.setitem(methods.REGISTRY, "hold", spec)
    monkeypatch.setattr(methods, "METHODS", tuple(methods.REGISTRY))
    schema, config = tmp_path / "schema.yaml", tmp_path / "config.yaml"
    shutil.copy(REPO / "workflow" / "schemas" / "config.schema.yaml", schema)
    shutil.copy(REPO / "config" / "config.yaml", config)
    index = tmp_path / "README.md"
    shutil.copy(REPO / "docs" / "methods" / "README.md", index)
    assert sync_config_files(schema, config) == [str(schema), str(config)]
    assert sync_docs([tmp_path / "hold.md"]) == [str(tmp_path / "hold.md")]
    assert sync_methods_index(index) == [str(index)]
    assert sync_config_files(schema, config) == [] and sync_methods_index(index) == []  # idempotent

    got = yaml.safe_load(schema.read_text())
    assert got["properties"]["hold"] == schema_block(HoldSettings, spec.summary)
    assert got["properties"]["methods"]["items"]["enum"][-1] == "hold"
    cfg = yaml.safe_load(config.read_text())
    assert cfg["hold"] == {"scale": 0.5}
    cfg["methods"] = ["baseline", "hold"]
    mr_config.validate_schema(cfg, schema)
    # The other blocks are untouched.
    old = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert {k: v for k, v in cfg.items() if k not in ("hold", "methods")} == \
        {k: v for k, v in old.items() if k != "methods"}
    page = (tmp_path / "hold.md").read_text()
    assert "| `hold.scale` | 0.5 | >= 0.0, <= 1.0 | fraction of the first PD action held |" in page
    assert "| `hold` | the first PD action, scaled and held | [hold.md](hold.md) |" in index.read_text()
