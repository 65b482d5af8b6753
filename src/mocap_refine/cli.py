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
import sys
from pathlib import Path

from . import pipeline
from .clip import ClipError
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
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="all stages for one clip, as the workflow does")
    p.add_argument("clip")
    p.add_argument("--methods", nargs="+", help="override the config's methods")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--motions", default="motions")
    p.add_argument("--results", default="results")
    p.add_argument("--threads", type=int, default=2)
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
    p.add_argument("--cycles", type=int, default=1)
    p.add_argument("--physics-hz", type=float, default=600.0)
    p.set_defaults(func=lambda a: pipeline.prepare(a.clip, a.reference, a.diagnostics,
                                                   ground_correction=not a.no_ground_correction,
                                                   cycles=a.cycles, physics_hz=a.physics_hz))

    p = sub.add_parser("actions", help="one method's actions for one reference")
    p.add_argument("reference")
    p.add_argument("method")
    p.add_argument("out")
    p.add_argument("--params", default="{}", help="method parameters as JSON")
    p.add_argument("--init-h5", default=None)
    p.add_argument("--threads", type=int, default=1)
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
    p.add_argument("--threads", type=int, default=1)
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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(message)s")
    route_mujoco_warnings()
    try:
        args.func(args)
    except (ClipError, ValueError, FileNotFoundError, NotImplementedError) as e:
        print(f"mocap-refine: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
