"""Configuration loading and validation (no Snakemake run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mocap_refine import config as mr_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEEPMIMIC = (
    "backflip cartwheel crawl dance_a dance_b getup_facedown getup_faceup jump "
    "kick punch roll run spin spinkick walk"
).split()


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_complete(tmp_path):
    cfg = mr_config.load_config(REPO / "config" / "config.yaml", schema_path=SCHEMA, motions_dir=tmp_path)
    assert cfg["clips"] == DEEPMIMIC
    assert cfg["methods"] == ["baseline", "feedback", "mpc", "invdyn", "track"]
    assert cfg["physics"]["target_hz"] == 600
    assert cfg["clip_options"] == {"ground_correction": True, "cycles": {}}
    assert cfg["feedback"]["init"] == "baseline"
    # mpc starts from invdyn: invdyn's actions first.
    assert mr_config.required_actions(cfg) == ["baseline", "feedback", "invdyn", "mpc", "track"]


def test_known_names_match_package():
    assert list(mr_config.known_clips()) == DEEPMIMIC
    # The registry is the one list of methods (a new method is one entry there).
    from mocap_refine.methods import REGISTRY
    assert list(mr_config.known_methods()) == list(REGISTRY)
    assert {"baseline", "feedback", "gradient", "mpc", "invdyn", "track"} <= set(REGISTRY)
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["methods"]["items"]["enum"] == list(mr_config.known_methods())


def test_test_config_is_valid(tmp_path):
    from mocap_refine.generate import write_generated_clip
    cfg = yaml.safe_load((REPO / "config" / "test_config.yaml").read_text())
    for clip in cfg["clips"]:
        write_generated_clip(tmp_path / f"{clip}.txt", seconds=0.2)
    mr_config.validate_schema(cfg, SCHEMA)
    mr_config.check_config(cfg, tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"methods": ["baseline", "nosuch"]}, "config methods/1: 'nosuch' is not one of"),
        ({"clips": []}, "config clips"),
        ({"feedback": {"alpha": -1.0}}, "config feedback/alpha"),
        ({"feedback": {"typo": 1}}, "'typo' was unexpected"),
        ({"gradient": {"optimizer": "sgd"}}, "config gradient/optimizer"),
        ({"mpc": {"init": "mpc"}}, "config mpc/init"),
        ({"clip_options": {"cycles": {"walk": 0}}}, "config clip_options/cycles/walk"),
        ({"physics": {"target_hz": 0}}, "config physics/target_hz"),
        ({"extra_key": 1}, "'extra_key' was unexpected"),
    ],
)
def test_schema_rejects(change, message):
    cfg = default_config()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    with pytest.raises(mr_config.ConfigError) as err:
        mr_config.validate_schema(cfg, SCHEMA)
    assert message in str(err.value)


def test_unknown_clip_needs_a_file(tmp_path):
    cfg = default_config()
    cfg["clips"] = ["walk", "my_clip"]
    mr_config.validate_schema(cfg, SCHEMA)
    with pytest.raises(mr_config.ConfigError, match=r"unknown clip 'my_clip'.*my_clip\.txt"):
        mr_config.check_config(cfg, tmp_path)
    # The file is read at config time: an empty JSON object is no clip.
    (tmp_path / "my_clip.txt").write_text("{}")
    with pytest.raises(mr_config.ConfigError, match=r"clip 'my_clip': .*my_clip\.txt: not a DeepMimic clip"):
        mr_config.check_config(cfg, tmp_path)
    from mocap_refine.generate import write_generated_clip
    write_generated_clip(tmp_path / "my_clip.txt", seconds=0.2)
    mr_config.check_config(cfg, tmp_path)


def test_init_self_and_cycles_rejected(tmp_path):
    cfg = default_config()
    cfg["feedback"]["init"] = "feedback"  # schema would reject; check the semantic layer too
    with pytest.raises(mr_config.ConfigError, match="cannot warm-start from itself"):
        mr_config.check_config(cfg, tmp_path)
    cfg = default_config()
    cfg["feedback"]["init"] = "gradient"
    cfg["gradient"]["init"] = "feedback"
    with pytest.raises(mr_config.ConfigError, match="cycle"):
        mr_config.check_config(cfg, tmp_path)
    cfg = default_config()
    cfg["mpc"]["init"] = "nosuch"
    with pytest.raises(mr_config.ConfigError, match="mpc.init: unknown method 'nosuch'"):
        mr_config.check_config(cfg, tmp_path)


def test_init_chain_pulls_in_init_actions():
    cfg = default_config()
    cfg["methods"] = ["mpc"]
    cfg["mpc"]["init"] = "invdyn"
    assert mr_config.init_chain(cfg, "mpc") == ["mpc", "invdyn"]
    assert mr_config.required_actions(cfg) == ["invdyn", "mpc"]


@pytest.mark.parametrize(
    "methods, inits, expected",
    [
        # the case: mpc listed first, it starts from invdyn
        (["mpc", "invdyn"], {"mpc": "invdyn"}, ["invdyn", "mpc"]),
        (["baseline", "mpc", "feedback", "invdyn"], {"mpc": "invdyn", "feedback": "baseline"},
         ["baseline", "invdyn", "mpc", "feedback"]),
        # a chain of two links, the deepest method not configured
        (["mpc"], {"mpc": "gradient", "gradient": "invdyn"}, ["invdyn", "gradient", "mpc"]),
        (["feedback", "gradient", "mpc"], {"feedback": "mpc", "mpc": "gradient", "gradient": "baseline"},
         ["baseline", "gradient", "mpc", "feedback"]),
        # no init links among them: the configured order
        (["invdyn", "baseline", "track"], {"mpc": "invdyn"}, ["invdyn", "baseline", "track"]),
    ],
)
def test_required_actions_puts_init_methods_first(methods, inits, expected):
    cfg = default_config()
    for method in mr_config.known_methods():
        if method in cfg:
            cfg[method].pop("init", None)
    cfg["methods"] = methods
    for method, init in inits.items():
        cfg[method]["init"] = init
    order = mr_config.required_actions(cfg)
    assert order == expected
    for method in order:
        init = mr_config.init_method(cfg, method)
        assert init is None or order.index(init) < order.index(method), (method, init)


def test_command_line_strings_are_typed():
    # Snakemake hands nested --config values over as strings.
    cfg = default_config()
    cfg["feedback"].update(alpha="0.25", windowed="false", iterations="5")
    cfg["clip_options"]["cycles"] = {"walk": "3"}
    cfg["physics"]["target_hz"] = "1200"
    mr_config.validate_schema(cfg, SCHEMA)
    assert cfg["feedback"]["alpha"] == 0.25
    assert cfg["feedback"]["windowed"] is False
    assert cfg["feedback"]["iterations"] == 5
    assert cfg["clip_options"]["cycles"] == {"walk": 3}
    assert cfg["physics"]["target_hz"] == 1200
    cfg["feedback"]["alpha"] = "abc"
    with pytest.raises(mr_config.ConfigError, match="feedback/alpha"):
        mr_config.validate_schema(cfg, SCHEMA)


def test_command_line_null_and_strings_of_nullable_settings():
    # A nullable setting (type [string, null]) from Snakemake's command line.
    cfg = default_config()
    cfg["feedback"]["init"] = "null"
    cfg["track"]["init"] = "baseline"
    mr_config.validate_schema(cfg, SCHEMA)
    assert cfg["feedback"]["init"] is None
    assert cfg["track"]["init"] == "baseline"


def test_clip_cycles_default():
    cfg = default_config()
    cfg["clip_options"]["cycles"] = {"walk": 3}
    assert mr_config.clip_cycles(cfg, "walk") == 3
    assert mr_config.clip_cycles(cfg, "run") == 1


def test_readme_documents_every_config_key():
    """config/README.md's table of keys (or, for method settings, their
    generated tables in docs/methods/) names every key the schema accepts."""
    readme = (REPO / "config" / "README.md").read_text()
    readme += "".join(p.read_text() for p in sorted((REPO / "docs" / "methods").glob("*.md")))
    readme += (REPO / "docs" / "dataset.md").read_text()  # the dataset block's generated table
    schema = yaml.safe_load(SCHEMA.read_text())
    missing = []
    for key, sub in schema["properties"].items():
        props = sub.get("properties") or {}
        if not props:
            if f"`{key}`" not in readme:
                missing.append(key)
        for name in props:
            if f"`{key}.{name}`" not in readme:
                missing.append(f"{key}.{name}")
    assert not missing, f"config/README.md and docs/methods/ do not document config keys: {missing}"


def test_test_config_runs_every_method_through_snakemake():
    """config/test_config.yaml (tests/test_workflow.py, .test/, CI) lists
    every registered method, feedback in its windowed form (its default),
    and each block is valid typed settings."""
    import yaml

    from mocap_refine.methods import METHODS, method_settings

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "test_config.yaml").read_text())
    assert sorted(cfg["methods"]) == sorted(METHODS)
    settings = {m: method_settings(m, cfg.get(m)) for m in cfg["methods"]}
    assert settings["feedback"].windowed
