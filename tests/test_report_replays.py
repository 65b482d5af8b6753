"""The replays in the report (issue 13: a 15-clip report under 15 MB):
results/{clip}/replays.png, every method's replay at key frames
(mocap_refine.report.keyframes), instead of one embedded animation page per
clip and method; and the size of the whole report.

Unit part: key frame indices, and the figure of made-up results (a fall, a
divergence, a drift out of view, a missing file) built from the generated
trajectory. Slow part: the session's .test run (conftest) and its report.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mocap_refine import report

# 15 MB for the default run's 15 clips x 5 methods (issue 13).
REPORT_BUDGET_BYTES = 15e6
DEFAULT_CLIPS, DEFAULT_METHODS = 15, 5
# One clip's share of that: replays.png must leave room for the comparison figure and table.
REPLAYS_PNG_BUDGET_BYTES = 400e3
N_JOINTS = 12


def test_key_frames_are_evenly_spaced_and_include_the_ends():
    for n in (1, 2, 5, 6, 7, 31, 301):
        frames = report.key_frames(n)
        assert frames[0] == 0 and frames[-1] == n - 1
        assert len(frames) == min(report.KEYFRAMES, n)
        assert frames == sorted(set(frames))
        gaps = np.diff(frames)
        if len(gaps):
            assert gaps.max() - gaps.min() <= 1  # evenly spaced up to rounding
    assert report.key_frames(0) == []
    assert report.key_frames(31, count=4) == [0, 10, 20, 30]


def _write_result(path: Path, method: str, ref_qpos, replay_qpos, physics_dt: float, fall_frame=-1,
                  status="ok", frame_dt=1 / 30) -> Path:
    """The parts of an evaluated result (results/{clip}/{method}.h5) the
    figure reads."""
    n = ref_qpos.shape[0]
    with h5py.File(path, "w") as f:
        f["reference/qpos"] = ref_qpos
        f["replay/qpos"] = replay_qpos
        f["replay/joint_err"] = np.zeros((n, N_JOINTS))
        f["replay/root_err"] = np.zeros(n)
        f.attrs.update({"clip": "gen", "method": method, "status": status, "frame_dt": frame_dt,
                        "physics_dt": physics_dt, "fall_frame": fall_frame})
    return path


@pytest.fixture
def made_up_results(tmp_path, gen) -> dict:
    """method -> result file: baseline falls at frame 13, feedback diverges
    at 7, gradient tracks but 2 m ahead of the reference, mpc has no file."""
    ref = np.array(gen.qpos)
    ahead = ref.copy()
    ahead[:, 0] += 2.0
    fallen = ref.copy()
    fallen[13:, 2] = 0.2  # root on the floor
    return {
        "baseline": _write_result(tmp_path / "baseline.h5", "baseline", ref, fallen, gen.physics_dt,
                                  fall_frame=13),
        "feedback": _write_result(tmp_path / "feedback.h5", "feedback", ref, ref, gen.physics_dt,
                                  fall_frame=7, status="diverged at frame 7"),
        "gradient": _write_result(tmp_path / "gradient.h5", "gradient", ref, ahead, gen.physics_dt),
        "mpc": tmp_path / "mpc.h5",
    }


def _texts(fig) -> list:
    return [(t.get_text(), t.get_gid()) for ax in fig.axes for t in ax.texts]


def test_fallen_and_diverged_appear_from_their_frame_on(made_up_results):
    runs = report.load_runs(made_up_results)
    fig, info = report.keyframes_figure(runs, "gen")
    try:
        frames = info["frames"]
        assert frames == report.key_frames(len(np.asarray(runs[0].ref_qpos)))
        assert info["rows"] == list(made_up_results)
        states = {gid: text for text, gid in _texts(fig) if gid and gid.startswith("state:")}
        expected = {}
        for run in runs[:2]:
            first = run.diverged_frame if run.diverged_frame >= 0 else run.fall_frame
            assert 0 < first < frames[-1]  # some panels before, some after
            label = "DIVERGED" if run.diverged_frame >= 0 else "FALLEN"
            expected.update({f"state:{run.method}:{t}": label for t in frames if t >= first})
        assert states == expected
        # Row labels: the method, its fate, or why there is no replay.
        ylabels = [fig.axes[row * len(frames)].get_ylabel() for row in range(len(runs))]
        assert ylabels[0].startswith("baseline\nfalls at 13")
        assert ylabels[1].startswith("feedback\n") and "diverged at 7" in ylabels[1]
        assert ylabels[3] == "mpc\nno replay"
        assert [t.get_text() for t in fig.axes[3 * len(frames)].texts] == [runs[3].status]
        assert runs[3].status.startswith("failed") and "mpc.h5" in runs[3].status
        # The replay 2 m ahead of the view that follows the reference: said on every panel.
        gradient_row = fig.axes[2 * len(frames):3 * len(frames)]
        assert all(any(t.get_text() == "+2.0 m >" for t in ax.texts) for ax in gradient_row)
        assert not any("m >" in text or "< " in text for text, _ in _texts(fig)
                       if text not in ("+2.0 m >",))
        # Every column is titled with its frame and time, also over a row without a replay.
        assert [ax.get_title() for ax in fig.axes[:len(frames)]] == [
            f"frame {t} ({t / 30:.2f} s)" for t in frames]
    finally:
        plt.close(fig)


def test_replays_png_is_small_and_of_the_declared_size(made_up_results, tmp_path):
    out = tmp_path / "replays.png"
    info = report.plot_keyframes(made_up_results, out)
    w_in, h_in = report.keyframes_figsize(len(made_up_results))
    assert info["size_px"] == (round(w_in * report.DPI), round(h_in * report.DPI))
    with h5py.File(made_up_results["baseline"], "r") as f:
        assert info["frames"] == report.key_frames(f["reference/qpos"].shape[0])
    pixels = plt.imread(out)
    assert pixels.shape[:2] == info["size_px"][::-1]
    assert pixels.std() > 0.05  # drawn, not blank
    # Fits a 1366-pixel screen; small enough that 15 clips' worth is a
    # small part of the report's budget.
    assert info["size_px"][0] <= 1366
    assert out.stat().st_size < REPLAYS_PNG_BUDGET_BYTES
    # The replay is drawn in the method's colour.
    rgb = (pixels[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for method in ("baseline", "gradient"):
        target = np.array([int(report.method_color(method)[k:k + 2], 16) for k in (1, 3, 5)])
        assert (np.abs(rgb - target).sum(axis=1) < 30).sum() > 50, method


# ---------------------------------------------------------------- the whole report

def report_results(page: str) -> dict:
    """The report's `var results = {path: {..., "data_uri": ...}}`: every
    registered file with its caption, labels and embedded data."""
    marker = '<script id="results">'
    start = page.index("var results = ", page.index(marker)) + len("var results = ")
    results, _ = json.JSONDecoder().raw_decode(page, start)
    return results


@pytest.mark.slow
def test_report_for_15_clips_stays_under_15_mb(test_workflow_report):
    """The report of the session's .test run (2 clips x 6 methods) in
    bytes, extrapolated to the default run's 15 clips x 5 methods from the
    actual embedded entries (each registered file's data URI, caption and
    labels as report.html holds them): the page without its entries (the
    report's own scripts and styles), plus 15 x the largest clip's entries
    (comparison.png, comparison.html, replays.png; drawn here for 6 methods,
    so an upper bound for 5), plus the summary's entries scaled by the number
    of (clip, method) rows. Under 15 MB (it was about 60 MB with one embedded
    animation page per clip and method)."""
    import yaml

    work = test_workflow_report.workdir
    cfg = yaml.safe_load((work / "config" / "config.yaml").read_text())
    clips, n_methods = list(cfg["clips"]), len(cfg["methods"])
    page = (work / "results" / "report.html").read_text()
    results = report_results(page)
    per_clip = {c: {f"results/{c}/{name}" for name in ("comparison.png", "comparison.html", "replays.png")}
                for c in clips}
    per_run = {"results/summary.png", "results/summary.html"}
    assert set(results) == set().union(per_run, *per_clip.values()), sorted(results)
    # The entries are the files, byte for byte.
    for path, entry in results.items():
        data = base64.b64decode(entry["data_uri"].split(";base64,", 1)[1])
        assert data == (work / path).read_bytes(), path
    size = {path: len(json.dumps({path: entry}).encode()) for path, entry in results.items()}
    whole = len(page.encode())
    fixed = whole - sum(size.values())
    clip_bytes = max(sum(size[p] for p in paths) for paths in per_clip.values())
    run_scale = max(1.0, DEFAULT_CLIPS * DEFAULT_METHODS / (len(clips) * n_methods))
    run_bytes = sum(size[p] for p in per_run) * run_scale
    estimate = fixed + DEFAULT_CLIPS * clip_bytes + run_bytes
    print(f"report.html {whole / 1e6:.2f} MB for {len(clips)} clips x {n_methods} methods: fixed "
          f"{fixed / 1e6:.2f} MB, largest clip {clip_bytes / 1e6:.3f} MB, summary {run_bytes / 1e6:.3f} MB "
          f"scaled; estimate for {DEFAULT_CLIPS} clips x {DEFAULT_METHODS} methods: {estimate / 1e6:.2f} MB")
    assert 0 < fixed < whole
    assert estimate < REPORT_BUDGET_BYTES
