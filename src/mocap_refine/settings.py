"""Typed method settings: one declaration per setting (type, range, default,
meaning) that the method, the config schema, the config checks and the docs
all read.

A method's settings are a frozen dataclass whose fields are made with
:func:`setting`. From it:

* :func:`from_block` turns a config block (dict) into the dataclass,
  refusing unknown keys, wrong types and out-of-range values with one line
  per problem that names the method, the key, the value and what is allowed;
* :func:`schema_block` writes the JSON-schema block of the config file;
* :func:`to_block` gives the defaults as they appear in config/config.yaml;
* :func:`describe` lists the settings for documentation.

Setting types: bool, int, float, str (``choices``: the allowed strings),
optional versions of these (``str | None``: null allowed), ``dict`` (a
mapping whose keys are ``choices`` and whose values are numbers >=
``minimum``), ``tuple[float, ...]`` (a non-empty list of numbers, each
within the setting's bounds; a list in the config file) and
``tuple[str, ...]`` (a list of names, possibly empty).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any


class SettingsError(ValueError):
    """Bad method settings; the message has one line per problem."""


def setting(default, doc: str, *, minimum=None, maximum=None, exclusive_minimum=None, choices=None,
            unit: str = ""):
    """A dataclass field with its documentation and allowed range."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum,
            "choices": tuple(choices) if choices is not None else None, "unit": unit}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _base(tp):
    """int | float | bool | str | dict | list of a (possibly optional) hint."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base(args[0])
    return origin or tp


def _item_type(tp):
    """The item type of a tuple[X, ...] hint (float when unstated)."""
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    return args[0] if args else float


def _check_value(method: str, f, tp, value) -> tuple[Any, list[str]]:
    name, meta = f.name, f.metadata
    where = f"{method}.{name}"
    base = _base(tp)
    if value is None and type(None) in typing.get_args(tp):
        return None, []
    if base is bool:
        if not isinstance(value, bool):
            return value, [f"{where}: expected true or false, got {value!r}"]
        return value, []
    if base in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
        if base is int and ok and float(value) != int(value):
            ok = False
        if not ok:
            kind = "an integer" if base is int else "a finite number"
            return value, [f"{where}: expected {kind}, got {value!r}"]
        value = base(value)
        lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
        if lo is not None and value < lo:
            return value, [f"{where}: {value} is below the minimum {lo}"]
        if xlo is not None and value <= xlo:
            return value, [f"{where}: {value} must be greater than {xlo}"]
        if hi is not None and value > hi:
            return value, [f"{where}: {value} is above the maximum {hi}"]
        return value, []
    if base is str:
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            return value, [f"{where}: expected {allowed}, got {value!r}"]
        return value, []
    if base is dict:
        if not isinstance(value, dict):
            return value, [f"{where}: expected a mapping, got {value!r}"]
        choices = meta.get("choices")
        bad = [k for k in value if choices and k not in choices]
        if bad:
            return value, [f"{where}: unknown key(s) {bad}; known: {', '.join(choices)}"]
        out = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) \
                    or (meta.get("minimum") is not None and v < meta["minimum"]):
                return value, [f"{where}.{k}: expected a number >= {meta.get('minimum')}, got {v!r}"]
            out[k] = float(v)
        return out, []
    if base is tuple and _item_type(tp) is str:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return value, [f"{where}: expected a list of names, got {value!r}"]
        return tuple(value), []
    if base is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            return value, [f"{where}: expected a non-empty list of numbers, got {value!r}"]
        item = dataclasses.field(metadata=meta)
        item.name = name
        out = []
        for i, v in enumerate(value):
            v, errs = _check_value(f"{method}", item, float, v)
            if errs:
                return value, [f"{where}: item {i}: " + e.split(": ", 1)[1] for e in errs]
            out.append(v)
        return tuple(out), []
    raise TypeError(f"{where}: unsupported setting type {tp}")


def from_block(cls, block: dict | None, method: str):
    """Config block -> settings dataclass; SettingsError lists every problem."""
    block = dict(block or {})
    known = {f.name: (f, tp) for f, tp in _fields(cls)}
    problems = [f"{method}.{k}: unknown setting; known: {', '.join(known)}" for k in block if k not in known]
    values = {}
    for key, value in block.items():
        if key in known:
            v, errs = _check_value(method, *known[key], value)
            problems += errs
            values[key] = v
    if not problems:
        try:
            obj = cls(**values)
        except (ValueError, TypeError) as e:
            problems.append(f"{method}: {e}")
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    return obj


def _plain(value):
    """A setting's value as it appears in YAML (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def to_block(obj) -> dict:
    """Settings dataclass -> config block (plain dict, config file order)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def schema_block(cls, description: str) -> dict:
    """The JSON-schema block of a method's config (types, ranges, defaults)."""
    props = {}
    defaults = cls()
    for f, tp in _fields(cls):
        m = f.metadata
        base = _base(tp)
        p: dict = {"description": m["doc"] + (f" ({m['unit']})" if m.get("unit") else "")}
        if base is dict:
            p["type"] = "object"
            p["additionalProperties"] = False
            p["properties"] = {k: {"type": "number", "minimum": m["minimum"]} for k in m["choices"]}
        elif base is tuple and _item_type(tp) is str:
            p["type"] = "array"
            p["items"] = {"type": "string"}
            p["uniqueItems"] = True
        elif base is tuple:
            p["type"] = "array"
            p["items"] = {"type": "number"}
            for key, sk in (("minimum", "minimum"), ("maximum", "maximum"), ("exclusive_minimum", "exclusiveMinimum")):
                if m.get(key) is not None:
                    p["items"][sk] = m[key]
            p["minItems"] = 1
        else:
            p["type"] = {bool: "boolean", int: "integer", float: "number", str: "string"}[base]
            if type(None) in typing.get_args(tp):
                p["type"] = [p["type"], "null"]
            if m.get("choices"):
                p["enum"] = list(m["choices"]) + ([None] if type(None) in typing.get_args(tp) else [])
            for key, sk in (("minimum", "minimum"), ("maximum", "maximum"), ("exclusive_minimum", "exclusiveMinimum")):
                if m.get(key) is not None:
                    p[sk] = m[key]
        p["default"] = _plain(getattr(defaults, f.name))
        props[f.name] = p
    return {"description": description, "type": "object", "properties": props, "additionalProperties": False,
            "default": {}}


def describe(cls) -> list[dict]:
    """One dict per setting (name, type, default, range, unit, doc), for docs."""
    rows = []
    defaults = cls()
    for f, tp in _fields(cls):
        m = f.metadata
        rng = []
        if m.get("choices"):
            rng.append(" / ".join(m["choices"]))
        if m.get("minimum") is not None:
            rng.append(f">= {m['minimum']}")
        if m.get("exclusive_minimum") is not None:
            rng.append(f"> {m['exclusive_minimum']}")
        if m.get("maximum") is not None:
            rng.append(f"<= {m['maximum']}")
        base = _base(tp)
        if base is tuple:
            rng = ["list of names"] if _item_type(tp) is str else [" ".join(["non-empty list of numbers"] + rng)]
        rows.append({"name": f.name, "type": base.__name__, "default": _plain(getattr(defaults, f.name)),
                     "range": ", ".join(rng), "unit": m.get("unit", ""), "doc": m["doc"]})
    return rows


def markdown_table(cls, method: str) -> str:
    """The settings of `method` as a Markdown table (docs/methods/*.md)."""
    if not describe(cls):
        return f"`{method}` has no settings: its block in config/config.yaml is `{method}: {{}}`."
    lines = ["| setting | default | allowed | meaning |", "|---|---|---|---|"]
    for r in describe(cls):
        default = "null" if r["default"] is None else r["default"]
        unit = f" ({r['unit']})" if r["unit"] else ""
        lines.append(f"| `{method}.{r['name']}` | {default} | {r['range'] or r['type']} | {r['doc']}{unit} |")
    return "\n".join(lines)


BEGIN, END = "<!-- settings table: generated by `python -m mocap_refine.settings` -->", "<!-- end settings table -->"


def sync_docs(paths) -> list[str]:
    """Rewrite the generated settings table of each docs/methods/{method}.md
    (and of docs/dataset.md: the dataset block); returns the paths that changed."""
    from pathlib import Path

    from .dataset import DatasetSettings
    from .methods import get_spec
    changed = []
    for path in map(Path, paths):
        method = path.stem
        cls = DatasetSettings if method == "dataset" else get_spec(method).settings_class()
        if not path.exists():  # a new method: its page, with what the registry says
            spec = get_spec(method)
            path.write_text(f"# {method}\n\n`{method}`: {spec.summary}. Function `mocap_refine.methods"
                            f"{spec.module}.{spec.function}`, settings `{spec.settings}`.\n\n## Settings\n\n"
                            f"{BEGIN}\n{END}\n")
        text = path.read_text()
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        new = head + BEGIN + "\n" + markdown_table(cls, method) + "\n" + END + tail
        if new != text:
            path.write_text(new)
            changed.append(str(path))
    return changed


def _block_end(lines: list, start: int, indent: str) -> int:
    """Index after the YAML block whose marker comment is lines[start] (up to
    the next line at the block's own indentation that is not a
    continuation, or a blank line before a top-level key)."""
    end = start + 2
    while end < len(lines):
        ln = lines[end]
        if ln.strip() and not ln.startswith(indent + " ") and not ln.startswith(indent + "-"):
            break
        if not ln.strip() and (end + 1 == len(lines) or not lines[end + 1].startswith(indent + " ")):
            break
        end += 1
    return end


def _replace_block(text: str, marker: str, new_block: str, indent: str, family: str) -> str:
    """Replace the YAML block that follows the comment line starting with
    `marker`; without one (a new method) the marker and the block go after
    the last block whose comment starts with `family`."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith(marker)), None)
    block = new_block.rstrip("\n").split("\n")
    if start is None:
        last = max(i for i, ln in enumerate(lines) if ln.startswith(family))
        end = _block_end(lines, last, indent)
        return "\n".join(lines[:end] + ["", marker] + block + lines[end:])
    end = _block_end(lines, start, indent)
    return "\n".join(lines[:start + 1] + block + lines[end:])


def _methods_enum(text: str, methods) -> str:
    """The schema's list of method names (`methods: items: enum:`)."""
    lines = text.split("\n")
    top = lines.index("  methods:")
    k = next(i for i in range(top + 1, len(lines)) if lines[i].startswith("      enum:"))
    lines[k] = "      enum: [" + ", ".join(methods) + "]"
    return "\n".join(lines)


def sync_methods_index(path) -> list[str]:
    """Add a row for every registered method missing from the methods table
    of docs/methods/README.md (rows written by hand stay)."""
    from pathlib import Path

    from .methods import REGISTRY
    path = Path(path)
    lines = path.read_text().split("\n")
    rows = [i for i, ln in enumerate(lines) if ln.startswith("| `")]
    listed = {ln.split("`")[1] for ln in (lines[i] for i in rows)}
    new = [f"| `{name}` | {spec.summary} | [{name}.md]({name}.md) |"
           for name, spec in REGISTRY.items() if name not in listed]
    if not new:
        return []
    lines[rows[-1] + 1:rows[-1] + 1] = new
    path.write_text("\n".join(lines))
    return [str(path)]


def _flow_list_dumper():
    import yaml

    class Dumper(yaml.SafeDumper):
        """Block mappings, one-line lists (as a person writes config.yaml)."""
    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    return Dumper


def sync_config_files(schema_path, config_path) -> list[str]:
    """Rewrite the generated method blocks of the schema and the config
    file from the settings classes; returns the files that changed."""
    from pathlib import Path

    import yaml

    from .dataset import DATASET_SUMMARY, DatasetSettings
    from .methods import METHODS, REGISTRY
    _FlowListDumper = _flow_list_dumper()
    blocks = [(name, spec.settings_class(), spec.summary) for name, spec in REGISTRY.items()]
    blocks.append(("dataset", DatasetSettings, DATASET_SUMMARY))
    changed = []
    for path, indent in ((Path(schema_path), "  "), (Path(config_path), "")):
        text = path.read_text()
        new = _methods_enum(text, METHODS) if indent else text
        for name, cls, summary in blocks:
            where = f"{cls.__module__}.{cls.__name__}"
            if indent:
                family = "  # Generated from "
                marker = f"{family}{where}; tests/test_settings.py checks it."
                block = yaml.safe_dump({name: schema_block(cls, summary)}, sort_keys=False, width=100)
            else:
                family = "# Defaults of "
                marker = f"{family}{where} (docs/methods/{name}.md)."
                block = yaml.dump({name: to_block(cls())}, Dumper=_FlowListDumper, sort_keys=False, width=100)
            block = "\n".join(indent + ln if ln else ln for ln in block.splitlines())
            # An existing marker is matched on its first words: the comment's end is free text.
            new = _replace_block(new, marker if f"{family}{where}" not in new else f"{family}{where}",
                                 block, indent, family)
        if new != text:
            path.write_text(new)
            changed.append(str(path))
    return changed


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from .methods import REGISTRY
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    files = [root / "docs" / "methods" / f"{name}.md" for name in REGISTRY]
    files.append(root / "docs" / "dataset.md")
    for path in sync_docs(files) + sync_methods_index(root / "docs" / "methods" / "README.md") + \
            sync_config_files(root / "workflow" / "schemas" / "config.schema.yaml", root / "config" / "config.yaml"):
        print(f"updated {path}")
