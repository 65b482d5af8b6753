"""Command line: the workflow's stages for people who run one clip by hand.

    mocap-refine run dance_a                      # every configured method, like `snakemake` for one clip
    mocap-refine run dance_a --methods baseline gradient
    mocap-refine import-clip walk motions/walk.txt
    mocap-refine prepare motions/walk.txt results/walk/reference.h5 results/walk/diagnostics.csv
    mocap-refine actions results/walk/reference.h5 gradient results/walk/actions/gradient.h5 \\
        --params '{"window_frames": 6}' --init-h5 results/walk/actions/baseline.h5
    mocap-refine evaluate results/walk/reference.h5 results/walk/actions/gradient.h5 \\
        results/walk/gradient.h5 results/walk/gradient.csv
    mocap-refine gains results/walk/reference.h5 results/walk/actions/track.h5 results/walk/gains/track.h5
    mocap-refine gather results/walk/comparison.csv results/walk/*.csv

`run` reads the same config file as the workflow (validated the same way) and
writes the same files under results/{clip}/, skipping nothing: it is the
by-hand mirror of the rules, not a cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
from pathlib import Path

from . import pipeline
from .logs import route_mujoco_warnings


def _run(args) -> None:
    from .config import clip_cycles, init_method, load_config, method_params, required_actions
    clip = args.clip
    overrides = {"clips": [clip]}
    if args.methods:
        overrides["methods"] = list(args.methods)
    config = load_config(args.config, motions_dir=args.motions, overrides=overrides)
    motions = Path(args.motions)
    results = Path(args.results) / clip
    clip_path = motions / f"{clip}.txt"
    if not clip_path.is_file():
        logging.info("importing %s from pybullet_data", clip)
        pipeline.import_clip(clip, clip_path)
    options = config.get("clip_options") or {}
    reference = results / "reference.h5"
    pipeline.prepare(clip_path, reference, results / "diagnostics.csv",
                     ground_correction=bool(options.get("ground_correction", True)),
                     cycles=clip_cycles(config, clip),
                     physics_hz=float((config.get("physics") or {}).get("target_hz", 600.0)))
    # Dependency order: an init method's actions are computed (fresh, for
    # this reference) before the methods that warm-start from them.
    for method in required_actions(config):
        init = init_method(config, method)
        logging.info("%s: computing actions", method)
        pipeline.compute_actions(reference, method, method_params(config, method),
                                 results / "actions" / f"{method}.h5",
                                 init_h5=results / "actions" / f"{init}.h5" if init else None,
                                 threads=args.threads)
    csvs = []
    for method in config["methods"]:
        pipeline.evaluate(reference, results / "actions" / f"{method}.h5",
                          results / f"{method}.h5", results / f"{method}.csv")
        csvs.append(results / f"{method}.csv")
    pipeline.gather(csvs, results / "comparison.csv")
    print((results / "comparison.csv").read_text(), end="")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mocap-refine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress")
    ap.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="all stages for one clip, as the workflow does")
    p.add_argument("clip")
    p.add_argument("--methods", nargs="+", help="override the config's methods")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--motions", default="motions")
    p.add_argument("--results", default="results")
    p.add_argument("--threads", type=_positive_int, default=2)
    p.set_defaults(func=_run)

    p = sub.add_parser("import-clip", help="copy a DeepMimic clip from pybullet_data")
    p.add_argument("name")
    p.add_argument("out")
    p.set_defaults(func=lambda a: pipeline.import_clip(a.name, a.out))

    p = sub.add_parser("prepare", help="clip -> reference.h5 + diagnostics.csv")
    p.add_argument("clip")
    p.add_argument("reference")
    p.add_argument("diagnostics")
    p.add_argument("--no-ground-correction", action="store_true")
    p.add_argument("--cycles", type=_positive_int, default=1)
    p.add_argument("--physics-hz", type=_positive_float, default=600.0)
    p.set_defaults(func=lambda a: pipeline.prepare(a.clip, a.reference, a.diagnostics,
                                                   ground_correction=not a.no_ground_correction,
                                                   cycles=a.cycles, physics_hz=a.physics_hz))

    p = sub.add_parser("actions", help="one method's actions for one reference")
    p.add_argument("reference")
    p.add_argument("method")
    p.add_argument("out")
    p.add_argument("--params", default="{}", help="method parameters as JSON")
    p.add_argument("--init-h5", default=None)
    p.add_argument("--threads", type=_positive_int, default=1)
    p.set_defaults(func=lambda a: pipeline.compute_actions(a.reference, a.method, _json(a.params), a.out,
                                                           init_h5=a.init_h5, threads=a.threads))

    p = sub.add_parser("evaluate", help="replay actions and write metrics")
    p.add_argument("reference")
    p.add_argument("actions")
    p.add_argument("out_h5")
    p.add_argument("out_csv")
    p.set_defaults(func=lambda a: pipeline.evaluate(a.reference, a.actions, a.out_h5, a.out_csv))

    p = sub.add_parser("gains", help="feedback gains around a method's replay")
    p.add_argument("reference")
    p.add_argument("actions")
    p.add_argument("out")
    p.add_argument("--threads", type=_positive_int, default=1)
    p.set_defaults(func=lambda a: pipeline.compute_gains(a.reference, a.actions, a.out, threads=a.threads))

    p = sub.add_parser("gather", help="concatenate metric CSVs")
    p.add_argument("out")
    p.add_argument("csvs", nargs="+")
    p.set_defaults(func=lambda a: pipeline.gather(a.csvs, a.out))
    return ap


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--params is not valid JSON: {e.msg} (column {e.colno})") from e
    if not isinstance(value, dict):
        raise ValueError("--params must be a JSON object, e.g. '{\"alpha\": 0.5}'")
    return value


def _positive(convert, what: str):
    """argparse type: `convert(text)`, finite and > 0, else one line saying
    `what` was expected (threads and cycles: whole numbers; rates: numbers)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _positive(int, "a whole number >= 1")
_positive_float = _positive(float, "a finite number > 0")


# Per command: the arguments that are input files, and the output files with
# the suffix each must have (a swapped pair of outputs is caught before any
# work: an HDF5 file is never written under a .csv name).
H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
FILES = {
    "import-clip": ((), (("out", ".txt"),)),
    "prepare": (("clip",), (("reference", ".h5"), ("diagnostics", ".csv"))),
    "actions": (("reference", "init_h5"), (("out", ".h5"),)),
    "evaluate": (("reference", "actions"), (("out_h5", ".h5"), ("out_csv", ".csv"))),
    "gains": (("reference", "actions"), (("out", ".h5"),)),
    "gather": (("csvs",), (("out", ".csv"),)),
}


def check_paths(args) -> None:
    """Refuse, before any work, output paths that cannot be right: the wrong
    suffix (arguments in the wrong order), a folder, a path under a file,
    an output that is also an input, two outputs at one path (ValueError,
    one sentence naming the path)."""
    inputs, outputs = FILES.get(args.command, ((), ()))
    given = []
    for name in inputs:
        value = getattr(args, name, None)
        given += [Path(v) for v in (value if isinstance(value, list) else [value]) if v]
    seen = {}
    for name, suffix in outputs:
        path = Path(getattr(args, name))
        ok = path.suffix.lower() in (H5_SUFFIXES if suffix == ".h5" else (suffix,))
        if not ok:
            raise ValueError(f"{path}: the {name.replace('_', ' ')} output must end in {suffix}; are the file "
                             f"arguments in the right order? (mocap-refine {args.command} --help)")
        if path.is_dir():
            raise ValueError(f"{path}: is a folder; the {name.replace('_', ' ')} output must be a file path")
        for anc in path.parents:
            if anc.exists() and not anc.is_dir():
                raise ValueError(f"{path}: cannot be created: {anc} is a file, not a folder")
        if any(path.resolve() == p.resolve() for p in given):
            raise ValueError(f"{path}: is an input of this command too; writing it would destroy the "
                             "input; choose another output path")
        if path.resolve() in seen:
            raise ValueError(f"{path}: given as both the {seen[path.resolve()]} and the {name} output")
        seen[path.resolve()] = name


def _command_files(args) -> list:
    """The files a command reads and writes (for errors that name none)."""
    if args.command == "run":
        return [args.config, Path(args.results) / args.clip]
    inputs, outputs = FILES.get(args.command, ((), ()))
    files = []
    for name in list(inputs) + [n for n, _ in outputs]:
        value = getattr(args, name, None)
        files += [v for v in (value if isinstance(value, list) else [value]) if v]
    return files


def error_lines(err: BaseException) -> list[str]:
    """One line per problem: a message listing problems under a heading
    ("invalid configuration:" then one per line) gives its problems."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    return lines or [type(err).__name__]


def main(argv=None) -> int:
    """Run one command. Errors: one line per problem on stderr, exit status
    2 (bad input or files) or 1 (unexpected: a bug), 130 on Ctrl-C; --debug
    shows the traceback instead."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    route_mujoco_warnings()
    previous = _stop_on_sigterm()
    try:
        check_paths(args)
        args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("mocap-refine: interrupted; outputs are written whole or not at all, rerun to finish",
              file=sys.stderr)
        return 130
    except Terminated:
        if args.debug:
            raise
        print("mocap-refine: stopped (SIGTERM); outputs are written whole or not at all, rerun to finish",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except (ValueError, OSError, NotImplementedError, RuntimeError) as e:
        # ClipError, ConfigError, SettingsError, io.FileProblem are
        # ValueErrors; io.WriteError an OSError; all name their file.
        if args.debug:
            raise
        files = _command_files(args)
        for line in error_lines(e):
            if files and not any(str(f) in line for f in files):
                line += f" (in `mocap-refine {args.command}` on {', '.join(map(str, files[:3]))})"
            print(f"mocap-refine: error: {line}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        print(f"mocap-refine: error: unexpected {type(e).__name__} in `{args.command}`: {e} "
              "(a bug; rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


class Terminated(BaseException):
    """SIGTERM arrived (a batch system or `kill` stopping the job). A
    BaseException like KeyboardInterrupt: the write in progress deletes its
    temporary file on the way out (io.atomic_path)."""


def _stop_on_sigterm():
    """Turn SIGTERM into Terminated in the main thread (the default would end
    the process at once, leaving a temporary file of a write in progress);
    returns the previous handler, or None when not in the main thread."""
    def handler(signum, frame):
        raise Terminated()
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the handler alone
        return None


if __name__ == "__main__":
    sys.exit(main())
