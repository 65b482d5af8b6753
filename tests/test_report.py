"""Comparison reports: figures, markdown/HTML tables, and the Snakemake report.

Unit part: a 0.5 s generated clip evaluated with two sets of actions built
through the pipeline functions: the PD baseline, and zero torque (the
humanoid collapses, so it certainly falls; its actions file also carries a
history table and an inverse-dynamics root wrench so every panel has data).
Slow part: the workflow in a temporary copy, then `snakemake --report`.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mocap_refine import pipeline, report
from mocap_refine.generate import write_generated_clip
from mocap_refine.metrics import METRIC_COLUMNS

REPO = Path(__file__).resolve().parents[1]
CLIP = "gen_r"
METRICS = [c for c in METRIC_COLUMNS if c not in ("clip", "method", "status", "frames", "frame_dt",
                                                  "physics_dt")]
HISTORY_LOSS = np.array([8.0, 4.0, 2.5, 2.0])
WRENCH_FORCE_N = 1234.0


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_real_image(path: Path, size: tuple[int, int]) -> None:
    assert png_size(path) == size
    pixels = plt.imread(path)
    assert pixels.shape[:2] == (size[1], size[0])
    # Not a blank canvas: a drawn figure has many distinct colours.
    assert pixels.std() > 0.05
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """results/gen_r/{baseline,zero_torque}.h5 + .csv, comparison.csv,
    summary.csv (a second clip copy gen_s with zero_torque FAILED)."""
    root = tmp_path_factory.mktemp("report")
    clip_txt = root / "motions" / f"{CLIP}.txt"
    write_generated_clip(clip_txt, seconds=0.5, frame_dt=1 / 30, seed=3)
    out = root / "results" / CLIP
    pipeline.prepare(clip_txt, out / "reference.h5", out / "diagnostics.csv")
    pipeline.compute_actions(out / "reference.h5", "baseline", {}, out / "actions" / "baseline.h5")
    with h5py.File(out / "actions" / "baseline.h5", "r") as f:
        T, nu = f["actions"].shape
    with h5py.File(out / "actions" / "zero_torque.h5", "w") as f:
        f["actions"] = np.zeros((T, nu))
        f.attrs["method"] = "zero_torque"
        f.attrs["wall_s"] = 0.5
        f.attrs["reference_sha256"] = pipeline._sha256(out / "reference.h5")
        f["history/iteration"] = np.arange(len(HISTORY_LOSS), dtype=float)
        f["history/loss"] = HISTORY_LOSS
        wrench = np.zeros((T, 6))
        wrench[:, 0] = WRENCH_FORCE_N
        wrench[:, 3] = 20.0
        f["invdyn/root_wrench"] = wrench
        f["invdyn/root_wrench_nocontact"] = wrench / 10
    for m in ("baseline", "zero_torque"):
        pipeline.evaluate(out / "reference.h5", out / "actions" / f"{m}.h5", out / f"{m}.h5", out / f"{m}.csv")
    pipeline.gather([out / "baseline.csv", out / "zero_torque.csv"], out / "comparison.csv")
    # Second clip for the summary: same rows under another name, with
    # zero_torque failed (status "failed", no metrics).
    rows = pd.read_csv(out / "comparison.csv")
    other = rows.copy()
    other["clip"] = "gen_s"
    other.loc[other["method"] == "zero_torque", "status"] = "failed"
    pd.concat([rows, other]).to_csv(root / "results" / "summary.csv", index=False)
    return root / "results"


def h5s(results: Path, methods=("baseline", "zero_torque")) -> dict:
    return {m: results / CLIP / f"{m}.h5" for m in methods}


def clip_md(comparison_csv, clip, methods=None) -> str:
    t = report.clip_tables(comparison_csv, clip, methods)
    return report.clip_markdown(t["title"], t["context"], t["view"])


def summary_md(summary_csv, methods=None, clips=None) -> str:
    t = report.summary_tables(summary_csv, methods, clips)
    return report.summary_markdown(t["title"], t["intro"], t["overview_view"], t["full"])


def test_clip_figure_has_expected_size_and_marks_every_fall(results, tmp_path):
    info = report.plot_clip(h5s(results), tmp_path / "comparison.png")
    w, h = (int(v * report.DPI) for v in report.CLIP_FIGSIZE_IN)
    assert info["size_px"] == (w, h)
    assert_real_image(tmp_path / "comparison.png", (w, h))
    falls = {}
    for m, p in h5s(results).items():
        with h5py.File(p, "r") as f:
            falls[m] = int(f.attrs["fall_frame"])
    # The open-loop PD baseline falls within a few frames on generated clips
    # (measured: frame 5-8); the figure must mark exactly the recorded frames.
    assert falls["baseline"] >= 1
    assert info["fall_frames"] == {m: k for m, k in falls.items() if k >= 0}


def test_fall_marker_sits_on_the_fall_frame(results, tmp_path):
    # A copy of zero_torque's result that falls at frame 7 (known answer,
    # independent of the physics).
    fallen = tmp_path / "fallen.h5"
    shutil.copy2(results / CLIP / "zero_torque.h5", fallen)
    with h5py.File(fallen, "r+") as f:
        f.attrs["method"] = "fallen"
        f.attrs["fall_frame"] = 7
        f.attrs["status"] = "ok"
    runs = report.load_runs({"baseline": results / CLIP / "baseline.h5", "fallen": fallen})
    fig, ax = plt.subplots()
    try:
        marked = report.plot_joint_error(ax, runs)
        markers = {line.get_gid(): line for line in ax.lines if line.get_gid()}
        assert marked["fallen"] == 7
        assert list(markers["fall:fallen"].get_xdata()) == [7]
        assert markers["fall:fallen"].get_color() == report.method_color("fallen")
        assert any(np.allclose(v.get_xdata(), 7) for v in ax.lines if v.get_linestyle() == "--")
        for run in runs:
            if run.fall_frame >= 0:
                assert list(markers[f"fall:{run.method}"].get_xdata()) == [run.fall_frame]
    finally:
        plt.close(fig)


def test_panels_draw_history_and_invdyn_and_note_missing_data(results):
    runs = report.load_runs(h5s(results))
    fig, axes = plt.subplots(1, 3)
    try:
        report.plot_history(axes[0], runs)
        (hist_line,) = axes[0].lines
        np.testing.assert_allclose(hist_line.get_ydata(), HISTORY_LOSS)
        report.plot_invdyn(axes[1], axes[2], runs)
        force_lines = [ln for ln in axes[1].lines if ln.get_label().startswith("zero_torque")]
        np.testing.assert_allclose(force_lines[0].get_ydata(), WRENCH_FORCE_N)
        weight = [ln for ln in axes[1].lines if ln.get_label().startswith("body weight")]
        np.testing.assert_allclose(weight[0].get_ydata(), 45.0 * 9.81)
    finally:
        plt.close(fig)
    # Baseline alone: no history, no invdyn -> a note, not an exception.
    only = report.load_runs(h5s(results, ("baseline",)))
    fig, axes = plt.subplots(1, 3)
    try:
        report.plot_history(axes[0], only)
        report.plot_invdyn(axes[1], axes[2], only)
        for ax in axes:
            assert any(t.get_text().startswith("no data") for t in ax.texts)
            assert not ax.lines
    finally:
        plt.close(fig)


def test_identical_replays_are_named(results, tmp_path):
    # A warm start that did not move its init's actions replays identically
    # and would hide the init's curve: the figure must say so.
    copy = tmp_path / "copy.h5"
    shutil.copy2(results / CLIP / "baseline.h5", copy)
    runs = report.load_runs({"baseline": results / CLIP / "baseline.h5", "copy": copy,
                             "zero_torque": results / CLIP / "zero_torque.h5"})
    assert report.same_replay_as(runs) == {"copy": "baseline"}
    fig, ax = plt.subplots()
    try:
        report.plot_joint_error(ax, runs)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(lbl.startswith("copy") and "same replay as baseline" in lbl for lbl in labels)
    finally:
        plt.close(fig)


def test_colours_are_fixed_per_method():
    assert report.method_color("baseline") == report.METHOD_COLORS["baseline"]
    colours = [report.method_color(m) for m in ("baseline", "feedback", "gradient", "mpc", "invdyn")]
    assert len(set(colours)) == 5
    # An unknown name gets the same colour whatever else is configured.
    assert report.method_color("zero_torque") == report.method_color("zero_torque")


def test_clip_table_has_every_method_and_metric_and_marks_best(results):
    text = clip_md(results / CLIP / "comparison.csv", CLIP, ["baseline", "zero_torque"])
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["method", "status", *METRICS]
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert set(rows) == {"baseline", "zero_torque"}
    table = pd.read_csv(results / CLIP / "comparison.csv")
    ok = table[table["status"] == "ok"]
    if len(ok):
        best = ok.loc[ok["err50_rad"].idxmin(), "method"]
        err_col = 2 + METRICS.index("err50_rad")
        assert rows[best].split("|")[1 + err_col].strip().startswith("**")


def test_missing_and_failed_methods_show_as_failed(results, tmp_path):
    methods = ["baseline", "zero_torque", "mpc"]
    paths = h5s(results, methods)  # mpc.h5 does not exist
    info = report.plot_clip(paths, tmp_path / "comparison.png")
    assert "mpc" not in info["fall_frames"]
    report.write_clip_tables(results / CLIP / "comparison.csv", tmp_path / "comparison.html",
                             tmp_path / "comparison.md", CLIP, methods, paths)
    text = (tmp_path / "comparison.md").read_text()
    mpc_row = next(line for line in text.splitlines() if line.startswith("| mpc "))
    assert "**FAILED**" in mpc_row
    assert mpc_row.count("| - ") == len(METRICS)
    html = (tmp_path / "comparison.html").read_text()
    assert '<tr class="failed">' in html and "<b>FAILED: no result</b>" in html

    # summary.csv: gen_s/zero_torque has status "failed"; gen_s/mpc no row at all.
    text = summary_md(results / "summary.csv", methods, [CLIP, "gen_s"])
    rows = [line for line in text.splitlines() if line.startswith("| gen_")]
    assert len(rows) == 2 * len(methods)
    for clip, m in ((CLIP, "mpc"), ("gen_s", "zero_torque"), ("gen_s", "mpc")):
        (row,) = [r for r in rows if r.startswith(f"| {clip} | {m} |")]
        assert "**FAILED**" in row
    info = report.plot_summary(results / "summary.csv", tmp_path / "summary.png", methods, [CLIP, "gen_s"])
    assert_real_image(tmp_path / "summary.png", info["size_px"])


def test_best_value_rules():
    table = pd.DataFrame({
        "clip": "c", "method": ["a", "b", "c", "d"],
        "status": ["ok", "ok", "diverged at frame 3", "failed"],
        "err50_rad": [0.5, 0.2, 0.01, np.nan],
        "tracked_fraction": [1.0, 0.4, 1.0, np.nan],
        "fall_frame": [-1, 12, 3, np.nan],
        "wall_s": [2.0, 2.0, 0.1, np.nan],
    })
    assert report.best_rows(table, "err50_rad") == {1}  # diverged c is lower but not eligible
    assert report.best_rows(table, "tracked_fraction") == {0}
    assert report.best_rows(table, "fall_frame") == {0}  # never falls beats any frame
    assert report.best_rows(table, "wall_s") == {0, 1}  # ties both win
    # When every method diverged, the best diverged one is marked.
    all_div = table.assign(status=["diverged at frame 1"] * 3 + ["failed"])
    assert report.best_rows(all_div, "err50_rad") == {2}


def test_cost_and_root_rotation_columns(results):
    """cost_replays and root_rot_err50_deg are in every table (lower is
    better), cost_replays next to the wall time; the overview gives their
    medians next to the total wall time."""
    assert METRICS.index("cost_replays") == METRICS.index("wall_s") + 1
    assert "root_rot_err50_deg" in METRICS and "fall_reason" in METRICS
    table = pd.DataFrame({
        "clip": ["c1", "c2", "c3", "c1", "c2", "c3"], "method": ["a"] * 3 + ["b"] * 3,
        "status": ["ok"] * 6, "err50_rad": [0.1] * 6, "tracked_fraction": [1.0] * 6,
        "wall_s": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0],
        "cost_replays": [2.0, 4.0, 100.0, 7.0, np.nan, 9.0],
        "root_rot_err50_deg": [5.0, 1.0, 3.0, 10.0, 10.0, 10.0],
    })
    assert report.best_rows(table[table["clip"] == "c1"], "cost_replays") == {0}
    assert report.best_rows(table[table["clip"] == "c1"], "root_rot_err50_deg") == {0}
    ov = report.method_overview(report.complete_table(table)).set_index("method")
    assert list(ov.columns).index("median_cost_replays") == list(ov.columns).index("total_wall_s") + 1
    assert ov.loc["a", "median_cost_replays"] == 4.0 and ov.loc["b", "median_cost_replays"] == 8.0
    assert ov.loc["a", "median_root_rot_err50_deg"] == 3.0
    assert ov.loc["a", "total_wall_s"] == 6.0
    # The result files of the fixture: the computed baseline has a measured
    # cost, the hand-written zero_torque actions file has none.
    comparison = pd.read_csv(results / CLIP / "comparison.csv").set_index("method")
    assert comparison.loc["baseline", "cost_replays"] > 0
    assert np.isnan(comparison.loc["zero_torque", "cost_replays"])
    assert comparison.loc["zero_torque", "fall_reason"] in ("height", "orientation", "contact", "diverged")
    text = clip_md(results / CLIP / "comparison.csv", CLIP, ["baseline", "zero_torque"])
    row = next(line for line in text.splitlines() if line.startswith("| zero_torque"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2 + METRICS.index("fall_reason")] == comparison.loc["zero_torque", "fall_reason"]


def test_old_tables_without_new_columns_still_report(results, tmp_path):
    """A summary.csv written before cost_replays, root_rot_err50_deg and
    fall_reason existed: tables and figure come out, those cells "-"."""
    old = pd.read_csv(results / "summary.csv").drop(columns=["cost_replays", "root_rot_err50_deg",
                                                             "fall_reason"])
    path = tmp_path / "summary.csv"
    old.to_csv(path, index=False)
    methods, clips = ["baseline", "zero_torque"], [CLIP, "gen_s"]
    text = summary_md(path, methods, clips)
    header = next(line for line in text.splitlines() if line.startswith("| clip"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in text.splitlines() if line.startswith(f"| {CLIP} | baseline |"))
    cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
    assert cells["cost_replays"] == cells["root_rot_err50_deg"] == cells["fall_reason"] == "-"
    assert cells["wall_s"] != "-"
    comp = tmp_path / "comparison.csv"
    old[old["clip"] == CLIP].to_csv(comp, index=False)
    assert "| baseline |" in clip_md(comp, CLIP, methods)
    info = report.plot_summary(path, tmp_path / "summary.png", methods, clips)
    assert_real_image(tmp_path / "summary.png", info["size_px"])


def test_fall_reason_in_labels(results, tmp_path):
    fallen = tmp_path / "fallen.h5"
    shutil.copy2(results / CLIP / "zero_torque.h5", fallen)
    with h5py.File(fallen, "r+") as f:
        f.attrs["fall_frame"] = 7
        f.attrs["fall_reason"] = "contact"
        f.attrs["status"] = "ok"
    run = report.load_run(fallen, "fallen")
    assert run.fall_reason == "contact"
    assert report.fate(run) == "falls at 7 (contact)"
    with h5py.File(fallen, "r+") as f:
        del f.attrs["fall_reason"]  # a file from before fall_reason existed
    assert report.fate(report.load_run(fallen, "fallen")) == "falls at 7"


def test_summary_figure_and_tables(results, tmp_path):
    methods, clips = ["baseline", "zero_torque"], [CLIP, "gen_s"]
    info = report.plot_summary(results / "summary.csv", tmp_path / "summary.png", methods, clips)
    w, h = report.summary_figsize(len(clips), len(methods))
    assert info["size_px"] == (int(w * report.DPI), int(h * report.DPI))
    assert_real_image(tmp_path / "summary.png", info["size_px"])
    report.write_summary_tables(results / "summary.csv", tmp_path / "summary.html", tmp_path / "summary.md",
                                methods, clips)
    text = (tmp_path / "summary.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| clip"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["clip", "method", "status", "frames",
                                                                 *METRICS]
    for m in methods:
        assert f"| {m} |" in text
    html = (tmp_path / "summary.html").read_text()
    assert html.count("<tr") == 1 + len(methods) + 1 + len(methods) * len(clips)


def test_animation_has_subsampled_frames_in_the_method_colour(results, tmp_path):
    from PIL import Image

    info = report.animate_replay(results / CLIP / "baseline.h5", tmp_path / "a.gif", max_frames=5, dpi=40)
    w_in, h_in = report.ANIMATION_FIGSIZE_IN
    with h5py.File(results / CLIP / "baseline.h5", "r") as f:
        n = f["replay/qpos"].shape[0]
    stride = -(-n // 5)
    assert info["frames"] == list(range(0, n, stride))
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == len(info["frames"])
        assert im.size == (int(w_in * 40), int(h_in * 40))
        # The replay skeleton is drawn in the method's colour.
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")).astype(int))
    target = np.array([int(report.method_color("baseline")[k:k + 2], 16) for k in (1, 3, 5)])
    # Every frame (drawn over one background, quantised by the first
    # frame's palette) shows the replay skeleton in the method's colour,
    # and only this frame's: skeletons drawn over the last frame's instead
    # of the background would pile up (walk: 643 pixels, then 1000 .. 1713).
    coloured = [(np.abs(rgb.reshape(-1, 3) - target).sum(axis=1) < 30).sum() for rgb in frames]
    assert min(coloured) > 20 and max(coloured) < 1.5 * coloured[0]
    assert all((a != b).any() for a, b in zip(frames, frames[1:]))
    report.animate_replay(results / CLIP / "baseline.h5", tmp_path / "b.gif", max_frames=5, dpi=40)
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()


def test_unreadable_table_names_the_file(tmp_path):
    bad = tmp_path / "comparison.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="comparison.csv"):
        report.clip_tables(bad, "x")


# ---------------------------------------------------------------- Snakemake report

@pytest.fixture(scope="module")
def snakemake_report(test_workflow_report):
    """The session's .test run (every method on two clips) and its `snakemake
    --report results/report.html`: (work dir, clips, methods)."""
    import yaml

    work = test_workflow_report.workdir
    cfg = yaml.safe_load((work / "config" / "config.yaml").read_text())
    return work, list(cfg["clips"]), list(cfg["methods"])


def embedded_files(page: str) -> dict:
    """{file name: [(mime, bytes), ...]} of everything report.html embeds."""
    embedded = {}
    for mime, name, data in re.findall(
            r"data:([\w/+.-]+);charset=[\w-]+;filename=([\w.-]+);base64,([A-Za-z0-9+/=]+)", page):
        embedded.setdefault(name, []).append((mime, base64.b64decode(data)))
    return embedded


@pytest.mark.slow
def test_snakemake_report_embeds_every_figure_and_table(snakemake_report):
    tmp_path, clips, methods = snakemake_report
    page = (tmp_path / "results" / "report.html").read_text()
    embedded = embedded_files(page)
    # Every registered figure is embedded byte for byte.
    figures = [tmp_path / "results" / "summary.png"] + [tmp_path / "results" / c / "comparison.png"
                                                        for c in clips]
    for path in figures:
        assert any(blob == path.read_bytes() for _, blob in embedded.get(path.name, ())), path
    tables = {blob.decode() for mime, blob in embedded.get("comparison.html", ()) if mime == "text/html"}
    assert len(tables) == len(clips)
    (summary,) = [blob.decode() for mime, blob in embedded.get("summary.html", ())]
    assert summary == (tmp_path / "results" / "summary.html").read_text()
    for clip in clips:
        assert f'<td class="">{clip}</td>' in summary
    for m in methods:
        assert f'<td class="">{m}</td>' in summary
    # Replays: each clip's key frames (replays.png); the animations stay
    # files, named in its caption, not embedded (they made the report 60 MB).
    for clip in clips:
        png = (tmp_path / "results" / clip / "replays.png").read_bytes()
        assert any(blob == png for _, blob in embedded.get("replays.png", ())), f"{clip}: replays.png"
    assert not [name for name in embedded if name.endswith((".gif", "_replay.html"))]
    for clip in clips:
        for m in methods:
            assert f"results/{clip}/{m}.gif" in page
    assert "problematic" not in page, "a caption has reStructuredText errors"
    # Captions say how to read the figures.
    assert "Which method should I use?" in page
    assert "joint error per frame" in page


def test_history_panel_draws_the_second_pass_as_its_own_line():
    from types import SimpleNamespace
    hist = {"iteration": np.arange(6.0), "loss": np.array([9.0, 5.0, 4.0, 8.0, 3.0, 2.0]),
            "pass": np.array([1, 1, 1, 2, 2, np.nan])}
    fig, ax = plt.subplots()
    try:
        report.plot_history(ax, [SimpleNamespace(method="gradient", history=hist)])
        lines = {ln.get_label(): ln for ln in ax.lines}
        np.testing.assert_allclose(lines["gradient"].get_xdata(), [0, 1, 2, 5])
        np.testing.assert_allclose(lines["gradient (second pass)"].get_ydata(), [8.0, 3.0])
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- what a reviewer ran into (issue 15)

def _fake_run(method: str, per_joint: np.ndarray):
    from types import SimpleNamespace
    err = np.tile(per_joint, (11, 1))
    return SimpleNamespace(method=method, has_replay=True, joint_err=err, joint_names=(),
                           history={}, invdyn={})


def test_joint_bars_use_a_log_axis_so_a_good_method_stays_visible():
    good = _fake_run("good", np.full(12, 0.005))   # 0.3 degrees
    bad = _fake_run("bad", np.full(12, 1.5))       # lying on the floor
    fig, ax = plt.subplots()
    try:
        report.plot_joint_bars(ax, [bad, good])
        fig.canvas.draw()
        assert ax.get_yscale() == "log"
        heights = {p.get_facecolor(): p.get_height() for p in ax.patches}
        lo, hi = ax.get_ylim()
        assert lo < 0.005 and hi >= 1.5
        # On a log axis the good bar takes a real share of the height (about
        # a third here); on a linear one it would be 0.3 % of it.
        share = (np.log(0.005) - np.log(lo)) / (np.log(hi) - np.log(lo))
        assert share > 0.1
        assert sorted(heights.values()) == pytest.approx([0.005, 1.5])
    finally:
        plt.close(fig)


def _extents(fig):
    renderer = fig.canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        boxes.append(("axes", ax, ax.get_window_extent(renderer)))
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            if label.get_text():
                boxes.append(("tick label", ax, label.get_window_extent(renderer)))
    return boxes


def test_clip_figure_legends_cover_no_data_or_labels(results):
    """Every legend of comparison.png lies outside every panel and clear of
    every tick label (it used to sit on the curves)."""
    runs = report.load_runs(h5s(results))
    fig, _ = report.clip_figure(runs, CLIP)
    try:
        fig.canvas.draw()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) >= 5  # joint error, path, joint bars, progress, both invdyn panels
        renderer = fig.canvas.get_renderer()
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for kind, ax, other in _extents(fig):
                assert not box.overlaps(other), (f"legend of '{legend.axes.get_title()[:40]}' covers a {kind} "
                                                 f"of '{ax.get_title()[:40]}'")
    finally:
        plt.close(fig)


def test_progress_panel_says_what_a_row_is(results):
    runs = report.load_runs(h5s(results))
    fig, ax = plt.subplots()
    try:
        report.plot_history(ax, runs)
        title = ax.get_title()
        assert "one window (gradient, track)" in title and "full clip's loss" in title
    finally:
        plt.close(fig)


def test_summary_figure_is_readable_at_page_width(tmp_path):
    """15 clips x 6 methods (the default run's size): summary.png fits a
    1366-pixel screen (it was 2590 x 450) and every heat-map cell is at least
    70 x 20 pixels, so its number is legible without zooming."""
    clips = [f"clip_{k:02d}" for k in range(15)]
    methods = ["baseline", "feedback", "gradient", "mpc", "invdyn", "track"]
    rng = np.random.default_rng(0)
    rows = [{"clip": c, "method": m, "status": "ok", "err50_rad": rng.uniform(0.02, 1.5),
             "root_drift50_m": rng.uniform(0.01, 1.0), "tracked_fraction": rng.uniform(0, 1),
             "wall_s": rng.uniform(1, 100), "cost_replays": 10.0} for c in clips for m in methods]
    csv = tmp_path / "summary.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    info = report.plot_summary(csv, tmp_path / "summary.png", methods, clips)
    w, h = info["size_px"]
    assert w <= 1366 and w / h < 1.5
    assert_real_image(tmp_path / "summary.png", (w, h))
    fig_w, fig_h = report.summary_figsize(len(clips), len(methods))
    assert (int(fig_w * report.DPI), int(fig_h * report.DPI)) == (w, h)
    # Cell size: redraw and measure the first heat map's axes.
    import matplotlib
    from mocap_refine.report import summary_figure
    fig, axes = plt.subplots(2, 2, figsize=(fig_w, fig_h), dpi=report.DPI, layout="constrained")
    try:
        table = report.complete_table(pd.DataFrame(rows), methods, clips)
        summary_figure._heatmap(axes[0, 0], table, clips, methods, "err50_rad", "t",
                                matplotlib.colors.LogNorm(0.02, 1.5), "RdYlGn_r", lambda v: f"{v:.2g}")
        fig.canvas.draw()
        box = axes[0, 0].get_window_extent()
        assert box.width / len(methods) >= 70 and box.height / len(clips) >= 20
    finally:
        plt.close(fig)


def test_html_tables_come_from_the_table_not_from_markdown(results, tmp_path):
    """comparison.html is rendered from the DataFrame: no Markdown syntax
    left in it, the best cell carries class "best", every cell of the table
    is there in the CSV's order."""
    report.write_clip_tables(results / CLIP / "comparison.csv", tmp_path / "c.html", tmp_path / "c.md", CLIP,
                             ["baseline", "zero_torque"])
    page = (tmp_path / "c.html").read_text()
    assert "**" not in page and "|---" not in page and "`" not in page
    # Column names may wrap after an underscore (long tables fit the screen).
    assert "<th>root_<wbr>drift50_<wbr>m</th>" in page and "<th>method</th>" in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    t = report.clip_tables(results / CLIP / "comparison.csv", CLIP, ["baseline", "zero_torque"])
    rows = re.findall(r"<tr class=\"(\w+)\">(.*?)</tr>", page)
    assert [state for state, _ in rows] == [state for state, _ in t["view"].rows]
    for (_, cells_html), (_, cells) in zip(rows, t["view"].rows):
        texts = [re.sub(r"<.*?>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", cells_html)]
        assert texts == [c.text for c in cells]
    best = [c.text for _, cells in t["view"].rows for c in cells if c.best]
    assert best and page.count('best">') == len(best)


# ---------------------------------------------------------------- a real browser

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "chromium-headless-shell", "headless_shell")
PAGE_WIDTH_PX = 1366


def _chromium() -> str | None:
    return next((shutil.which(n) for n in CHROMIUM if shutil.which(n)), None)


def _headless(exe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=300)


def _image_sizes_in_browser(exe: str, data_urls: list, work: Path) -> list:
    """[width, height] of each data URL as the browser decodes it ([0, 0]:
    it failed to load)."""
    import json

    page = work / "image_check.html"
    page.write_text(
        "<!DOCTYPE html><html><body><pre id='out'>pending</pre><script>"
        f"const srcs = {json.dumps(data_urls)}; const out = new Array(srcs.length); let left = srcs.length;"
        "function done() { if (--left === 0) document.getElementById('out').textContent = JSON.stringify(out); }"
        "srcs.forEach((src, i) => { const im = new Image();"
        " im.onload = () => { out[i] = [im.naturalWidth, im.naturalHeight]; done(); };"
        " im.onerror = () => { out[i] = [0, 0]; done(); }; im.src = src; });"
        "</script></body></html>")
    proc = _headless(exe, "--virtual-time-budget=60000", "--dump-dom", page.as_uri())
    m = re.search(r"<pre id=\"out\">(.*?)</pre>", proc.stdout, re.S)
    assert m and m.group(1) != "pending", proc.stderr[-2000:]
    return json.loads(m.group(1))


def _table_right_edge(exe: str, page: Path, work: Path) -> float:
    """Right edge (CSS px) of the widest table of `page` in a window
    PAGE_WIDTH_PX wide."""
    probe = work / f"width_of_{page.name}"
    probe.write_text(page.read_text().replace("</body>", (
        "<script>const r = Math.max(...[...document.querySelectorAll('table')]"
        ".map(t => t.getBoundingClientRect().right));"
        "document.body.insertAdjacentHTML('beforeend', `<pre id=\"right\">${r}</pre>`);</script></body>")))
    proc = _headless(exe, f"--window-size={PAGE_WIDTH_PX},1400", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="right">([\d.]+)</pre>', proc.stdout)
    assert m, proc.stderr[-2000:]
    return float(m.group(1))


@pytest.mark.slow
def test_report_in_a_real_browser(request, tmp_path):
    """Headless Chromium: every figure the report embeds decodes at its
    file's size, and screenshots at 1366 px wide of the report, the summary
    and clip tables, and the summary, comparison and replays figures at page
    width are written under tmp_path/screenshots (look at them: `pytest
    --basetemp DIR`, or MOCAP_REFINE_SCREENSHOTS=DIR copies them there).
    Skipped without Chromium unless MOCAP_REFINE_REQUIRE_BROWSER=1 (CI),
    which makes a missing browser a failure."""
    from PIL import Image

    exe = _chromium()
    if exe is None:
        if os.environ.get("MOCAP_REFINE_REQUIRE_BROWSER") == "1":
            pytest.fail("MOCAP_REFINE_REQUIRE_BROWSER=1 but no Chromium found (Debian: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    work, clips, methods = request.getfixturevalue("snakemake_report")
    results = work / "results"
    page = (results / "report.html").read_text()
    embedded = embedded_files(page)
    urls, expected = [], []
    for name, items in embedded.items():
        for mime, blob in items:
            if mime.startswith("image/"):
                urls.append(f"data:{mime};base64," + base64.b64encode(blob).decode())
                if mime == "image/svg+xml":  # the report's logo: any size, but it must load
                    expected.append((name, None))
                    continue
                with Image.open(__import__("io").BytesIO(blob)) as im:
                    expected.append((name, list(im.size)))
    names = [name for name, _ in expected]
    assert names.count("replays.png") == names.count("comparison.png") == len(clips)
    assert "summary.png" in names
    sizes = _image_sizes_in_browser(exe, urls, tmp_path)
    for (name, size), got in zip(expected, sizes):
        if size is None:
            assert min(got) > 0, f"{name}: the browser could not load it"
        else:
            assert got == size, f"{name}: the browser decoded {got}, the file is {size}"

    # The metric tables fit the screen: no column hidden past its right edge
    # (their column names wrap at underscores).
    for table in (results / "summary.html", results / clips[0] / "comparison.html"):
        assert _table_right_edge(exe, table, tmp_path) <= PAGE_WIDTH_PX, f"{table} is wider than the screen"

    shots = tmp_path / "screenshots"
    shots.mkdir()
    pages = {"report": results / "report.html", "summary_tables": results / "summary.html",
             "comparison_tables": results / clips[0] / "comparison.html"}
    for name, figure in (("summary_figure", results / "summary.png"),
                         ("comparison_figure", results / clips[0] / "comparison.png"),
                         ("replays_figure", results / clips[0] / "replays.png")):
        pages[name] = tmp_path / f"{name}_at_page_width.html"
        pages[name].write_text(f"<!DOCTYPE html><html><body style='margin:0'><img style='width:100%' "
                               f"src='{figure.as_uri()}'></body></html>")
    for name, path in pages.items():
        out = shots / f"{name}.png"
        proc = _headless(exe, f"--window-size={PAGE_WIDTH_PX},1400", "--virtual-time-budget=20000",
                         f"--screenshot={out}", path.as_uri())
        assert out.is_file(), f"no screenshot of {path}: {proc.stderr[-2000:]}"
        assert png_size(out)[0] == PAGE_WIDTH_PX
        pixels = plt.imread(out)
        assert pixels.std() > 0.02, f"{out} is blank"
    keep = os.environ.get("MOCAP_REFINE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy2(shot, Path(keep) / shot.name)
