"""Workflow configuration: loading, schema validation and semantic checks.

The Snakemake workflow (workflow/rules/common.smk) validates ``config`` with
``snakemake.utils.validate`` against ``workflow/schemas/config.schema.yaml`` and
then calls :func:`check_config`. Tests and the command line can do the same
without Snakemake through :func:`load_config`.

Semantic checks (things a JSON schema cannot say):

* every clip is a DeepMimic humanoid clip name or has a file ``motions/{clip}.txt``;
* every method is a known method;
* a method's ``init`` names a known method other than itself, and following
  ``init`` links never comes back to a method already visited (no cycles).
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

    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _settings_problems(config: Mapping, methods_known) -> list[str]:
    """Every problem of the method blocks that have typed settings
    (ranges and relations the schema cannot express)."""
    from .methods import get_spec
    from .settings import SettingsError, from_block
    problems = []
    for method in methods_known:
        cls = get_spec(method).settings_class()
        if cls is None or method not in config:
            continue
        try:
            from_block(cls, config.get(method), method)
        except SettingsError as err:
            problems += [f"config {line.strip()}" for line in str(err).splitlines()[1:]]
    return problems


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
    path = Path(path)
    config = _load_yaml(path) or {}
    if overrides:
        config = _merge(config, overrides)
    validate_schema(config, schema_path)
    if motions_dir is None:
        motions_dir = path.resolve().parent.parent / "motions"
    check_config(config, motions_dir)
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

