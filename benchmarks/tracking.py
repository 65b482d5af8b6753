"""Tracking benchmark: methods on the library clips, split into the clips
settings were chosen on (tune) and the clips they are reported on (test),
plus variants no method was tuned on (mirrored clips, other frame rates).

Each (clip, method) goes through the workflow's own stages (prepare,
compute_actions, evaluate), so err50, drift50, the fall rule and
cost_replays (wall time over one open-loop replay of the same clip, measured
in the same job) are exactly what the workflow reports.

Run:
    python benchmarks/tracking.py --methods track gradient --set test
    python benchmarks/tracking.py --methods track --set variants --threads 2
    python benchmarks/tracking.py --methods track --set tune --params '{"track": {"horizon_s": 0.4}}'
    python benchmarks/tracking.py --set tune --clips walk --verbose --work /tmp/tracking   # keep the replays
Writes benchmarks/out/tracking_{set}_{methods}.csv and prints a Markdown table; with
--table-out the table is also written to that file. The tables in docs/ are
rendered from those CSVs:
    python benchmarks/tracking.py --render benchmarks/out/tracking_test_*.csv --table-out docs/results/tracking_test.md
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from mocap_refine import pipeline
from mocap_refine.clip import DEEPMIMIC_CLIPS
from mocap_refine.config import init_chain
from mocap_refine.variants import write_variants

ROOT = Path(__file__).resolve().parents[1]
# Settings of the tracker were chosen on TUNE only; TEST is what it is scored on.
TUNE = ("walk", "jump", "dance_b", "kick", "roll", "getup_faceup", "crawl", "spinkick")
TEST = tuple(c for c in DEEPMIMIC_CLIPS if c not in TUNE)
RESAMPLED = ("walk", "run", "jump", "dance_a")
RATES_HZ = (15, 24, 60, 120)
# Rates no variant has: --set tune_more, more runs to choose settings on.
TUNE_MORE_HZ = (20, 40)
COLUMNS = ["clip", "split", "method", "err50_rad", "root_drift50_m", "root_rot_err50_deg", "fall_frame",
           "fall_reason", "cost_replays", "wall_s", "frames", "frame_dt"]


def clip_files(which: str, work: Path) -> dict[str, tuple[Path, str]]:
    """name -> (clip file, split) for a set: tune, test, library, variants,
    tune_rates (the tune clips that are not in the variants' resampling,
    resampled at 15 and 24 Hz: low frame rates to choose settings on) or
    tune_more (every tune clip at TUNE_MORE_HZ, rates no variant has)."""
    import pybullet_data
    lib = Path(pybullet_data.getDataPath()) / "data" / "motions"
    if which in ("tune", "test", "library"):
        names = {"tune": TUNE, "test": TEST, "library": DEEPMIMIC_CLIPS}[which]
        return {c: (lib / f"humanoid3d_{c}.txt", "tune" if c in TUNE else "test") for c in names}
    out = work / "variants"
    if which == "tune_rates":
        names = write_variants(out, [c for c in TUNE if c not in RESAMPLED], rates=(15, 24), mirror=False)
        return {n: (out / f"{n}.txt", "tune") for n in names}
    if which == "tune_more":
        names = write_variants(out, list(TUNE), rates=TUNE_MORE_HZ, mirror=False)
        return {n: (out / f"{n}.txt", "tune") for n in names}
    names = write_variants(out, list(DEEPMIMIC_CLIPS), rates=(), mirror=True)
    names += write_variants(out, list(RESAMPLED), rates=RATES_HZ, mirror=False)
    return {n: (out / f"{n}.txt", "variant") for n in names}


def run_one(clip_path: Path, name: str, method: str, config: dict, work: Path, threads: int) -> dict:
    d = work / name
    ref = d / "reference.h5"
    if not ref.exists():
        pipeline.prepare(clip_path, ref, d / "diagnostics.csv",
                         physics_hz=float(config["physics"]["target_hz"]))
    for m in reversed(init_chain(config, method)):
        out = d / "actions" / f"{m}.h5"
        if out.exists():
            continue
        init = (config.get(m) or {}).get("init")
        pipeline.compute_actions(ref, m, config.get(m) or {}, out,
                                 init_h5=d / "actions" / f"{init}.h5" if init else None, threads=threads)
    pipeline.evaluate(ref, d / "actions" / f"{method}.h5", d / f"{method}.h5", d / f"{method}.csv")
    return pd.read_csv(d / f"{method}.csv").iloc[0].to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["track"])
    ap.add_argument("--set", default="test", choices=["tune", "test", "library", "variants", "tune_rates", "tune_more"])
    ap.add_argument("--clips", nargs="+", help="only these names of the set")
    ap.add_argument("--params", default="{}", help='config overrides as JSON, e.g. {"track": {"horizon_s": 0.4}}')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", help="name the method column this instead (a run with --params of one method)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    ap.add_argument("--table-out", help="also write the Markdown table here")
    ap.add_argument("--work", help="keep the references and actions in this folder (default: a temporary one); "
                    "files already there are reused")
    ap.add_argument("--verbose", action="store_true",
                    help="print the methods' progress lines (track: each window's loss, iterations and "
                         "regularisation)")
    ap.add_argument("--render", nargs="+", metavar="CSV",
                    help="only render the table of earlier runs' CSVs (several: rows of all)")
    args = ap.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.render:
        table = pd.concat([pd.read_csv(p) for p in args.render], ignore_index=True)
        md = render(table, args.render)
        print(md)
        if args.table_out:
            Path(args.table_out).write_text(md + "\n")
        return

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, block in json.loads(args.params).items():
        config[key] = {**(config.get(key) or {}), **block}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        clips = clip_files(args.set, work)
        if args.clips:
            clips = {k: v for k, v in clips.items() if k in args.clips}
        for name, (path, split) in clips.items():
            for method in args.methods:
                row = run_one(path, name, method, config, work, args.threads)
                row.update(clip=name, split=split)
                rows.append(row)
                print(f"{name:>18} {method:>9} err50 {row['err50_rad']:.4f} drift50 {row['root_drift50_m']:.3f} "
                      f"rot50 {row['root_rot_err50_deg']:.1f} fall {row['fall_frame']} {row['fall_reason'] or ''} "
                      f"cost {row['cost_replays']:.0f}", flush=True)
    table = pd.DataFrame(rows)[COLUMNS]
    if args.label:
        table["method"] = args.label
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"tracking_{args.set}_{'_'.join(args.methods)}.csv", index=False, float_format="%.6g")
    md = markdown(table)
    print(md)
    if args.table_out:
        Path(args.table_out).write_text(md + "\n")


def render(table: pd.DataFrame, csvs) -> str:
    """The Markdown of --render: the command that made it, then :func:`markdown`."""
    return f"Generated by `python benchmarks/tracking.py --render {' '.join(map(str, csvs))}`.\n\n" + markdown(table)


def markdown(table: pd.DataFrame) -> str:
    """Per-clip rows and a per-method summary (never falls, medians)."""
    t = table.sort_values(["clip", "method"]).copy()
    t["fall_reason"] = t["fall_reason"].fillna("")
    per_clip = t.to_markdown(index=False, floatfmt=".4g")
    agg = dict(clips=("clip", "count"), never_falls=("fall_frame", lambda s: int((s < 0).sum())),
               median_err50_rad=("err50_rad", "median"), median_drift50_m=("root_drift50_m", "median"),
               median_cost_replays=("cost_replays", "median"))
    summary = t.groupby(["method", "split"]).agg(**agg).reset_index()
    if t["split"].nunique() > 1:
        # Several splits (the library: tune and test): each method over all of them too.
        every = t.groupby("method").agg(**agg).reset_index()
        every.insert(1, "split", "all")
        summary = pd.concat([summary, every]).sort_values(["method", "split"], kind="stable")
    return per_clip + "\n\n" + summary.to_markdown(index=False, floatfmt=".4g")


if __name__ == "__main__":
    main()
