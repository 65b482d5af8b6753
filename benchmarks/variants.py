"""Write clip variants the methods never saw (issue 11) as DeepMimic clip files.

Mirrored versions of the library clips (all 15 by default, or --clips) and
walk, run, jump and dance_a (or --resample) resampled at 15, 24, 60 and 120 Hz
(or --rates), so the methods can be run on motions and frame rates they were
not tuned on. Prints each written file's frames, frame rate and length as
read back by load_clip.

Run: python benchmarks/variants.py --out benchmarks/out/variants [--clips walk run jump dance_a]
"""

from __future__ import annotations

import argparse

import numpy as np

from mocap_refine.clip import DEEPMIMIC_CLIPS, load_clip
from mocap_refine.variants import RATES_HZ, write_variants

RESAMPLED = ("walk", "run", "jump", "dance_a")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/out/variants", help="folder for the clip files")
    ap.add_argument("--clips", nargs="+", default=list(DEEPMIMIC_CLIPS), choices=DEEPMIMIC_CLIPS,
                    metavar="CLIP", help="library clips to mirror (default: all 15)")
    ap.add_argument("--resample", nargs="*", default=list(RESAMPLED), choices=DEEPMIMIC_CLIPS,
                    metavar="CLIP", help="library clips to resample (default: %(default)s)")
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES_HZ), help="frame rates (Hz)")
    args = ap.parse_args()

    names = write_variants(args.out, args.clips, rates=(), mirror=True)
    names += write_variants(args.out, args.resample, rates=args.rates, mirror=False)
    print(f"{len(names)} clips in {args.out}")
    print(f"{'name':<24} {'frames':>6} {'rate (Hz)':>9} {'seconds':>8}")
    for name in names:
        clip = load_clip(f"{args.out}/{name}.txt")
        print(f"{name:<24} {clip.n_frames:>6} {1 / np.median(clip.frame_dt):>9.3f} "
              f"{clip.frame_dt.sum():>8.3f}")


if __name__ == "__main__":
    main()
