"""Workflow configuration: loading, schema validation and semantic checks.

The Snakemake workflow (workflow/rules/common.smk) validates ``config`` with
``snakemake.utils.validate`` against ``workflow/schemas/config.schema.yaml`` and
then calls :func:`check_config`. Tests and the command line can do the same
without Snakemake through :func:`load_config`.

Semantic checks (things a JSON schema cannot say):

* every clip is a DeepMimic humanoid clip name or has a file ``motions/{clip}.txt``;
* every method is a known method;
* a method's ``init`` names a known method other than itself, and following
  ``init`` links never comes back to a method already visited (no cycles);
* every method block's settings, with the relations between them (the
  method's typed settings);
* every clip named anywhere (``clips`` and ``clip_options.cycles``) exists,
  loads (clip.load_clip: format and plausibility), loops when it has cycles,
  has at least one physics step per frame at ``physics.target_hz``, and has a
  Nyquist frequency above invdyn's butterworth cutoff when invdyn runs.

All of this runs at Snakemake parse time and at ``mocap-refine run``'s
start, before the first job: every problem is reported, one per line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "ConfigError",
    "default_schema_path",
    "known_clips",
    "known_methods",
    "method_threads",
    "validate_schema",
    "check_config",
    "load_config",
    "method_params",
    "init_method",
    "init_chain",
    "required_actions",
    "clip_cycles",
    "clip_file",
    "dataset_settings",
    "dataset_split",
]

class ConfigError(ValueError):
    """A configuration problem; the message lists every problem, one per line."""


def known_clips() -> tuple[str, ...]:
    """DeepMimic humanoid clip names that can be imported from pybullet_data."""
    from .clip import DEEPMIMIC_CLIPS
    return tuple(DEEPMIMIC_CLIPS)


def known_methods() -> tuple[str, ...]:
    """Names of the implemented methods."""
    from .methods import METHODS
    return tuple(METHODS)


def method_threads() -> dict[str, int]:
    """Threads each method uses well (from the method registry)."""
    from .methods import REGISTRY
    return {name: spec.threads for name, spec in REGISTRY.items()}


def default_schema_path() -> Path:
    """The schema of a source checkout: ``<repo>/workflow/schemas/config.schema.yaml``."""
    return Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _load_yaml(path: str | Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _set_defaults_validator(schema: dict):
    """The schema's validator class, extended to fill in ``default`` values
    (as snakemake.utils.validate does)."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    return schema


_SCALAR_TYPES = {"number": (int, float), "integer": (int,), "boolean": (bool,)}


def _coerce_strings(instance: Any, schema: dict, root: dict) -> Any:
    """Turn strings into numbers/booleans where the schema asks for one.

    Snakemake parses nested ``--config`` values with YAML's BaseLoader, so
    ``--config 'feedback={alpha: 0.25}'`` arrives as the string ``'0.25'``.
    """
    schema = _resolve(schema, root)
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in list(instance.items()):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                instance[key] = _coerce_strings(value, sub, root)
        return instance
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [_coerce_strings(v, schema["items"], root) for v in instance]
    wanted = schema.get("type")
    # A nullable setting has a list of types, e.g. [string, "null"].
    types = wanted if isinstance(wanted, list) else [wanted]
    if isinstance(instance, str) and any(t in _SCALAR_TYPES or t == "null" for t in types):
        import yaml

        try:
            value = yaml.safe_load(instance)
        except yaml.YAMLError:
            return instance
        if value is None and "null" in types:
            return None
        for t in types:
            ok = t in _SCALAR_TYPES and isinstance(value, _SCALAR_TYPES[t]) and (
                t == "boolean" or not isinstance(value, bool)
            )
            if ok:
                return value
    return instance


def validate_schema(config: dict, schema_path: str | Path | None = None) -> dict:
    """Validate ``config`` in place against the JSON schema, filling defaults.

    Strings given where the schema wants a number or boolean (as nested
    ``--config`` values arrive from Snakemake's command line) are converted
    first. Raises :class:`ConfigError` naming every violation (path and message).
    """
    schema = _load_yaml(schema_path or default_schema_path())
    _coerce_strings(config, schema, schema)
    validator = _set_defaults_validator(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"config {where}: {err.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return config


def method_params(config: Mapping, method: str) -> dict:
    """The parameter block of ``method`` (an empty dict when the config has none)."""
    block = config.get(method)
    return dict(block) if block else {}


def init_method(config: Mapping, method: str) -> str | None:
    """The method whose actions warm-start ``method``, or None."""
    return method_params(config, method).get("init") or None


def init_chain(config: Mapping, method: str) -> list[str]:
    """``[method, init, init of init, ...]``; raises ConfigError on a cycle."""
    chain = [method]
    current = init_method(config, method)
    while current is not None:
        if current in chain:
            raise ConfigError(
                "config: init links form a cycle: " + " -> ".join(chain + [current])
            )
        chain.append(current)
        current = init_method(config, current)
    return chain


def required_actions(config: Mapping) -> list[str]:
    """Every method whose actions are needed (the configured ones and their
    init methods), in an order they can be computed in: each init method comes
    before the methods that start from it; otherwise the configured order.

    With ``methods: [mpc, invdyn]`` and ``mpc.init: invdyn`` this is
    ``[invdyn, mpc]``: computing them one after the other in this order never
    warm-starts a method from a missing or stale init file.
    """
    needed: list[str] = []
    for method in config["methods"]:
        # init_chain is [method, init, init of init, ...]: deepest first.
        for m in reversed(init_chain(config, method)):
            if m not in needed:
                needed.append(m)
    return needed


def clip_cycles(config: Mapping, clip: str) -> int:
    """Number of repetitions of ``clip`` (``clip_options.cycles``, default 1)."""
    options = config.get("clip_options") or {}
    return int((options.get("cycles") or {}).get(clip, 1))


def check_config(config: Mapping, motions_dir: str | Path = "motions") -> None:
    """Semantic checks; raises :class:`ConfigError` listing every problem found."""
    problems: list[str] = []
    clips_known = known_clips()
    methods_known = known_methods()
    motions_dir = Path(motions_dir)

    for clip in config.get("clips", []):
        if clip not in clips_known and not (motions_dir / f"{clip}.txt").is_file():
            problems.append(
                f"config clips: unknown clip {clip!r}: it is not a DeepMimic clip "
                f"({', '.join(clips_known)}) and there is no file {motions_dir / (clip + '.txt')}"
            )
    cycles = dict((config.get("clip_options") or {}).get("cycles") or {})
    for clip in cycles:
        if clip not in clips_known and not (motions_dir / f"{clip}.txt").is_file():
            problems.append(
                f"config clip_options.cycles: unknown clip {clip!r}: it is not a DeepMimic clip "
                f"and there is no file {motions_dir / (clip + '.txt')} (misspelt?)"
            )

    methods = list(config.get("methods", []))
    for method in methods:
        if method not in methods_known:
            problems.append(
                f"config methods: unknown method {method!r}; known methods: "
                f"{', '.join(methods_known)}"
            )

    for method in methods_known:
        init = init_method(config, method)
        if init is None:
            continue
        if init not in methods_known:
            problems.append(
                f"config {method}.init: unknown method {init!r}; known methods: "
                f"{', '.join(methods_known)}"
            )
        elif init == method:
            problems.append(f"config {method}.init: a method cannot warm-start from itself")
    if not problems:
        for method in methods_known:
            try:
                init_chain(config, method)
            except ConfigError as err:
                problems.append(str(err))
                break

    problems += _settings_problems(config, methods_known)
    problems += _clip_problems(config, motions_dir)
    problems += _dataset_problems(config, clips_known, motions_dir)

    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _settings_problems(config: Mapping, methods_known) -> list[str]:
    """Every problem of the method blocks (ranges and relations the schema
    cannot express), through each method's typed settings (settings.from_block)."""
    from .methods import get_spec
    from .settings import SettingsError, from_block
    problems = []
    for method in methods_known:
        cls = get_spec(method).settings_class()
        if method not in config:
            continue
        try:
            from_block(cls, config.get(method), method)
        except SettingsError as err:
            problems += [f"config {line.strip()}" for line in str(err).splitlines()[1:]]
    return problems


def clip_file(clip: str, motions_dir: str | Path = "motions") -> Path | None:
    """The file clip `clip` is read from: motions/{clip}.txt when it exists,
    else pybullet_data's copy of a DeepMimic clip (what import_clip copies);
    None when there is neither."""
    path = Path(motions_dir) / f"{clip}.txt"
    if path.is_file():
        return path
    if clip in known_clips():
        try:
            from .pipeline import pybullet_clip_path
            return pybullet_clip_path(clip)
        except FileNotFoundError:
            return None
    return None


def _clip_problems(config: Mapping, motions_dir: Path) -> list[str]:
    """Problems of each clip named in the config that only its file shows:
    the file itself (clip.load_clip: format, plausibility), cycles on a clip
    that does not loop, a physics rate with no whole step per frame, invdyn's
    butterworth cutoff at or above the clip's Nyquist frequency."""
    from .clip import ClipError, load_clip
    from .model import substeps_for
    from .reference import uniform_frame_dt

    problems = []
    clips = list(config.get("clips", []))
    cycles = dict((config.get("clip_options") or {}).get("cycles") or {})
    physics_hz = (config.get("physics") or {}).get("target_hz", 600.0)
    try:
        runs_invdyn = "invdyn" in required_actions(config)
    except ConfigError:  # an init cycle, reported by check_config
        runs_invdyn = "invdyn" in config.get("methods", [])
    invdyn = method_params(config, "invdyn")
    cutoff = invdyn.get("smoothing_cutoff_hz", 6.0)
    if not (runs_invdyn and invdyn.get("smoothing") == "butterworth" and isinstance(cutoff, (int, float))):
        cutoff = None
    for clip in dict.fromkeys(clips + list(cycles)):
        path = clip_file(clip, motions_dir)
        if path is None:
            continue
        try:
            data = load_clip(path)
        except ClipError as err:
            problems.append(f"config clips: clip {clip!r}: {err}")
            continue
        n = cycles.get(clip, 1)
        if isinstance(n, int) and n > 1 and data.loop != "wrap":
            problems.append(f"config clip_options.cycles.{clip}: {n} cycles need a looping clip, but {path} "
                            f"has \"Loop\": \"{data.loop}\" (only \"wrap\" clips repeat)")
        if clip not in clips:
            continue
        frame_dt, _ = uniform_frame_dt(data)
        try:
            substeps_for(frame_dt, physics_hz)
        except ValueError as err:
            problems.append(f"config physics.target_hz: clip {clip!r} ({path}): {err}")
        if cutoff is not None and cutoff >= 0.5 / frame_dt:
            problems.append(f"config invdyn.smoothing_cutoff_hz: {cutoff:g} Hz is not below the Nyquist "
                            f"frequency {0.5 / frame_dt:g} Hz of clip {clip!r} ({path}, frames of "
                            f"{frame_dt:.6g} s); choose a cutoff below {0.5 / frame_dt:g} Hz")
    return problems


def _dataset_problems(config: Mapping, clips_known, motions_dir: Path) -> list[str]:
    """Problems of the `dataset` block's settings. Its validation clips are
    checked against the configured clips by dataset_split, when a dataset is
    asked for (a run on fewer clips with --config clips=... stays valid)."""
    from .dataset import DatasetSettings
    from .settings import SettingsError, from_block
    try:
        from_block(DatasetSettings, config.get("dataset"), "dataset")
    except SettingsError as err:
        return [f"config {line.strip()}" for line in str(err).splitlines()[1:]]
    return []


def dataset_settings(config: Mapping):
    """The `dataset` block as mocap_refine.dataset.DatasetSettings."""
    from .dataset import DatasetSettings
    from .settings import from_block
    return from_block(DatasetSettings, config.get("dataset"), "dataset")


def dataset_split(config: Mapping) -> tuple[list[str], list[str]]:
    """(train, validation) clips of the dataset of the configured clips;
    ConfigError when dataset.validation_clips leaves no clip to train on."""
    from .dataset import split_clips
    validation = dataset_settings(config).validation_clips
    unknown = [c for c in validation if c not in config["clips"]]
    if unknown:
        raise ConfigError(f"config dataset.validation_clips: {', '.join(map(repr, unknown))} "
                          f"{'is' if len(unknown) == 1 else 'are'} not among the configured clips "
                          f"({', '.join(config['clips'])}); a validation clip must be one of `clips` "
                          "(a misspelt name would otherwise train on every clip)")
    try:
        return split_clips(list(config["clips"]), validation)
    except ValueError as err:
        raise ConfigError(f"config {err}") from None


def load_config(
    path: str | Path,
    *,
    schema_path: str | Path | None = None,
    motions_dir: str | Path | None = None,
    overrides: Mapping | None = None,
) -> dict:
    """Read a YAML config, apply ``overrides`` (top-level keys replace, method
    blocks merge), validate against the schema and run :func:`check_config`.

    ``motions_dir`` defaults to ``motions/`` next to the config's folder
    (``config/config.yaml`` -> ``motions/``).
    """
    import yaml

    path = Path(path)
    try:
        config = _load_yaml(path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file (byte {e.start} is not UTF-8); a config is YAML text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (clips:, methods:, ...), "
                          f"got a {type(config).__name__}")
    if overrides:
        config = _merge(config, overrides)
    if motions_dir is None:
        motions_dir = path.resolve().parent.parent / "motions"
    try:
        validate_schema(config, schema_path)
        check_config(config, motions_dir)
    except ConfigError as err:
        head, *lines = str(err).splitlines()
        raise ConfigError("\n  ".join([head] + [f"{path}: {ln.strip()}" for ln in lines])) from None
    return config


def _merge(base: dict, update: Mapping) -> dict:
    """Recursive dict merge (like Snakemake's handling of ``--config``)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

