"""Bad inputs and faults (issue 14): every one is refused with one clear line
that names the file (or the argument) and the problem, nothing half-written
is left, and a fault is survived by a rerun.

Three parts:

* a table of named cases run through the command line in-process (clips,
  configs, command-line misuse, damaged outputs) and a few through Snakemake;
* property-based tests (hypothesis) where a case has a space of values:
  arbitrary text as a clip, one corrupted cell of a clip, truncated or
  bit-flipped output files, command-line numbers, uneven frame durations;
* faults in a subprocess: kill -9 mid-job then rerun, kill -9 mid-write,
  SIGINT, SIGTERM, a read-only results folder, a full disk (a tiny tmpfs in a
  private mount namespace) and the file size limit.

With MOCAP_REFINE_BAD_INPUT_RECORD=path set, every case appends its outcome
(one JSON object per line) to that file; scripts/bad_inputs_table.py runs
this module that way and renders docs/results/bad_inputs.md from it.

Outcomes of a bad input: "clear" (exit 2, every line "mocap-refine: error:",
naming the file or argument and the problem), "unclear" (refused, but the
message lacks them), "accepted" (exit 0), "crashed" (a traceback or exit 1,
the CLI's "unexpected error"), "corrupt_kept" (refused, but an output or a
temporary file was left). Odd-but-valid inputs: "worked" or "refused".
Faults: "survived" (message, nothing half-written, the rerun completes with
the same data) or "failed".
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mocap_refine import pipeline
from mocap_refine.cli import main
from mocap_refine.clip import ClipError, load_clip, write_clip
from mocap_refine.generate import write_generated_clip
from mocap_refine.io import FileProblem, read_h5
from mocap_refine.model import JOINTS, layout, load_model

ROOT = Path(__file__).resolve().parents[1]
RECORD_ENV = "MOCAP_REFINE_BAD_INPUT_RECORD"
PY = sys.executable
CLIP_SECONDS = 0.3          # 10 frames at 30 Hz: every stage runs in well under a second
HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Reading a damaged file takes milliseconds: more examples (25 found a
# metadata-checksum error that escaped as h5py's RuntimeError).
HYPOTHESIS_FILES = settings(HYPOTHESIS, max_examples=150)


# ---------------------------------------------------------------- recording

def record(group: str, case: str, outcome: str, message: str = "", kind: str = "bad input") -> None:
    """Append one outcome to $MOCAP_REFINE_BAD_INPUT_RECORD (when set)."""
    target = os.environ.get(RECORD_ENV)
    if not target:
        return
    line = json.dumps({"kind": kind, "group": group, "case": case, "outcome": outcome,
                       "message": message.strip().splitlines()[0][:300] if message.strip() else ""})
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def prop(name: str, outcome: str, message: str = "") -> None:
    """One example of a property-based test: "refused" (clear error naming
    the file or argument), "valid" (accepted, and checked right), or a
    failure ("unclear", "accepted bad", "left output", "wrong answer")."""
    record(name, "example", outcome, message, kind="property")


def leftovers(folder: Path, before: set) -> list[Path]:
    """Files under `folder` that were not there before: new outputs, and any
    temporary file of an atomic write (.{name}.*.tmp)."""
    now = {p for p in folder.rglob("*") if p.is_file()}
    return sorted(p for p in now - before)


def files_under(folder: Path) -> set:
    return {p for p in folder.rglob("*") if p.is_file()}


def run_cli(argv: list[str], capsys) -> tuple[int | None, str, BaseException | None]:
    """main(argv) in-process -> (exit status, stderr, exception that escaped main)."""
    capsys.readouterr()
    code, exc = None, None
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: usage errors
        code = e.code
    except BaseException as e:  # noqa: BLE001 - a traceback is an outcome here
        exc = e
    out = capsys.readouterr()
    return code, out.err + out.out * (code not in (0, None)), exc


def classify(code, err: str, exc, names, left) -> str:
    if exc is not None or "Traceback" in err or code == 1:
        return "crashed"
    if code == 0:
        return "accepted"
    if left:
        return "corrupt_kept"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    # Ours: "mocap-refine: error: ..."; argparse's: "usage: ..." then "mocap-refine CMD: error: ...".
    errors = [ln for ln in lines if ln.startswith("mocap-refine") and "error:" in ln]
    usage = all(ln.startswith("usage:") or ln.startswith("  ") or ln.startswith("mocap-refine")
                for ln in lines)
    ok = code == 2 and errors and usage and all(n in err for n in names)
    return "clear" if ok else "unclear"


def check_bad(group, case, argv, names, work: Path, capsys) -> None:
    """Run one bad input, record its outcome, assert it is 'clear'."""
    before = files_under(work)
    code, err, exc = run_cli(argv, capsys)
    left = leftovers(work, before)
    outcome = classify(code, err, exc, names, left)
    record(group, case, outcome, err if exc is None else f"{type(exc).__name__}: {exc}")
    assert outcome == "clear", (outcome, code, err, exc, left, names)


# ---------------------------------------------------------------- shared inputs

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A generated 0.3 s clip, its reference, baseline actions and result."""
    d = tmp_path_factory.mktemp("base")
    clip = d / "gen_a.txt"
    write_generated_clip(clip, seconds=CLIP_SECONDS)
    r = d / "results" / "gen_a"
    pipeline.prepare(clip, r / "reference.h5", r / "diagnostics.csv")
    pipeline.compute_actions(r / "reference.h5", "baseline", {}, r / "actions" / "baseline.h5")
    pipeline.evaluate(r / "reference.h5", r / "actions" / "baseline.h5", r / "baseline.h5", r / "baseline.csv")
    other = d / "other.txt"
    write_generated_clip(other, seconds=0.5, seed=5)
    ro = d / "results" / "other"
    pipeline.prepare(other, ro / "reference.h5", ro / "diagnostics.csv")
    pipeline.compute_actions(ro / "reference.h5", "baseline", {}, ro / "actions" / "baseline.h5")
    frames = json.loads(clip.read_text())["Frames"]
    return {"dir": d, "clip": clip, "frames": frames, "ref": r / "reference.h5",
            "actions": r / "actions" / "baseline.h5", "result": r / "baseline.h5", "csv": r / "baseline.csv",
            "other_actions": ro / "actions" / "baseline.h5"}


def _frames(base, edit=None):
    fr = json.loads(json.dumps(base["frames"]))
    if edit:
        edit(fr)
    return fr


def _cell(i, col, value):
    def edit(fr):
        fr[i][col] = value
    return edit


def _teleport(fr):
    fr[5][1] += 1000.0        # 1 km jump of root x between frames 4 and 5


def _uniform_root(value):
    def edit(fr):
        for f in fr:
            f[2] = value
    return edit


def _spin_knee(fr):
    for i, f in enumerate(fr):
        f[20] = -1.0 if i % 2 else 1.0      # 2 rad in 1/30 s: 60 rad/s... below the limit
    fr[5][20] = 5.0                         # 6 rad in 1/30 s: 180 rad/s


# ---------------------------------------------------------------- clips

def _json_clip(frames, loop="none"):
    return json.dumps({"Loop": loop, "Frames": frames})


CLIPS = {
    # id: (file content builder(base) -> str or bytes, substrings the message must hold besides the path)
    "empty_file": (lambda b: "", ["not valid JSON"]),
    "not_json": (lambda b: '{"Loop": "none", "Frames": [[0.1, ', ["not valid JSON", "line 1"]),
    "json_list": (lambda b: json.dumps(b["frames"]), ['"Frames"']),
    "no_frames_key": (lambda b: '{"Loop": "none"}', ['"Frames"']),
    "frames_not_list": (lambda b: '{"Loop": "none", "Frames": 3}', ['"Frames" must be a list']),
    "bad_loop": (lambda b: _json_clip(b["frames"], "forever"), ['"Loop"', "forever"]),
    "one_frame": (lambda b: _json_clip(b["frames"][:1]), ["at least 2 frames"]),
    "frame_43_values": (lambda b: _json_clip(_frames(b, lambda f: f[3].pop())), ["frame 3", "43 values"]),
    "string_value": (lambda b: _json_clip(_frames(b, _cell(2, 20, "x"))), ["frame 2", "right_knee", "'x'"]),
    "bool_value": (lambda b: _json_clip(_frames(b, _cell(2, 20, True))), ["frame 2", "right_knee", "True"]),
    "null_value": (lambda b: _json_clip(_frames(b, _cell(1, 3, None))), ["frame 1", "root z", "None"]),
    "nan_value": (lambda b: _json_clip(_frames(b, _cell(4, 20, float("nan")))), ["frame 4", "right_knee", "nan"]),
    "infinity_value": (lambda b: _json_clip(_frames(b, _cell(4, 1, float("inf")))), ["frame 4", "root x", "inf"]),
    "root_1e308": (lambda b: _json_clip(_frames(b, _cell(3, 1, 1e308))), ["frame 3", "root x", "1e+308 m"]),
    "root_far_away_every_frame": (lambda b: _json_clip(_frames(b, lambda fr: [f.__setitem__(3, 5e4) for f in fr])),
                                  ["frame 0", "root z", "50000 m"]),
    "knee_1e9_rad": (lambda b: _json_clip(_frames(b, _cell(6, 20, 1e9))), ["frame 6", "right_knee", "1e+09 rad"]),
    "root_height_1km": (lambda b: _json_clip(_frames(b, _uniform_root(1000.0))),
                        ["frame 0", "root y", "1000 m"]),
    "root_teleport_1km": (lambda b: _json_clip(_frames(b, _teleport)), ["frame 5", "root position", "m/s"]),
    "knee_spins_180rad_s": (lambda b: _json_clip(_frames(b, _spin_knee)), ["frame 5", "right_knee", "rad/s"]),
    "duration_100s": (lambda b: _json_clip(_frames(b, _cell(2, 0, 100.0))), ["frame 2", "duration", "100.0 s", "1 s limit"]),
    "duration_zero": (lambda b: _json_clip(_frames(b, _cell(2, 0, 0.0))), ["frame 2", "duration", "not positive"]),
    "duration_negative": (lambda b: _json_clip(_frames(b, _cell(0, 0, -0.03))), ["frame 0", "duration", "-0.03"]),
    "quaternion_zero": (lambda b: _json_clip(_frames(b, lambda f: f[3].__setitem__(slice(4, 8), [0, 0, 0, 0]))),
                        ["frame 3", "root quaternion", "norm 0"]),
    "quaternion_norm_2": (lambda b: _json_clip(_frames(b, lambda f: f[3].__setitem__(slice(8, 12), [2, 0, 0, 0]))),
                          ["frame 3", "chest quaternion", "norm 2"]),
    "latin1_text": (lambda b: _json_clip(b["frames"]).replace('"none"', '"n\u00f6ne"').encode("latin-1"),
                    ["not UTF-8"]),
    "binary_bytes": (lambda b: bytes(range(256)) * 4, ["not UTF-8"]),
    "hdf5_as_clip": (lambda b: b["ref"].read_bytes(), ["not UTF-8"]),
}


@pytest.mark.parametrize("case", list(CLIPS))
def test_bad_clip(case, base, tmp_path, capsys):
    """`mocap-refine prepare` on a bad clip: one line naming the file (and the
    frame, column and value where there is one); no reference written."""
    build, needles = CLIPS[case]
    content = build(base)
    clip = tmp_path / f"{case}.txt"
    (clip.write_bytes if isinstance(content, bytes) else clip.write_text)(content)
    out = tmp_path / "out"
    check_bad("clip", case, ["prepare", clip, out / "reference.h5", out / "diagnostics.csv"],
              [str(clip)] + needles, tmp_path, capsys)


def test_clip_missing_or_folder(base, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "nope.txt"
    check_bad("clip", "missing_file", ["prepare", missing, out / "r.h5", out / "d.csv"],
              [str(missing), "No such file"], tmp_path, capsys)
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    check_bad("clip", "folder_as_clip", ["prepare", folder, out / "r.h5", out / "d.csv"],
              [str(folder), "folder"], tmp_path, capsys)


# Odd but valid: these must work (and say what was done where it matters).

def _uneven(fr):
    for i in (2, 6):
        fr[i][0] = 2 / 30        # two frames lasting two frames' time (dropped frames)
    fr[4][0] = 0.02


ODD_CLIPS = {
    "uneven_durations": lambda b: _json_clip(_frames(b, _uneven)),
    "deepmimic_0.0333333015": lambda b: _json_clip(_frames(b, lambda fr: [f.__setitem__(0, 0.0333333015)
                                                                          for f in fr])),
    "unnormalised_quaternions": lambda b: _json_clip(_frames(b, lambda fr: fr[3].__setitem__(
        slice(4, 8), [1.3 * v for v in fr[3][4:8]]))),
    "integers_in_frames": lambda b: _json_clip(_frames(b, _cell(0, 3, 0))),
    "loop_wrap": lambda b: _json_clip(b["frames"], "wrap"),
    "no_loop_key": lambda b: json.dumps({"Frames": b["frames"]}),
    "last_duration_huge": lambda b: _json_clip(_frames(b, _cell(-1, 0, 1e6))),
    "crlf_line_ends": lambda b: _json_clip(b["frames"]).replace("\n", "\r\n"),
}


@pytest.mark.parametrize("case", list(ODD_CLIPS))
def test_odd_but_valid_clip_works(case, base, tmp_path, capsys):
    clip = tmp_path / f"{case}.txt"
    clip.write_text(ODD_CLIPS[case](base))
    out = tmp_path / "out"
    code, err, exc = run_cli(["prepare", clip, out / "reference.h5", out / "diagnostics.csv"], capsys)
    ok = code == 0 and exc is None
    if ok:
        ref, attrs = pipeline.load_reference(out / "reference.h5")
        ok = np.isfinite(ref.qpos).all() and ref.n_frames >= 2
    record("clip", case, "worked" if ok else "refused", err, kind="odd input")
    assert ok, (code, err, exc)


def test_uneven_clip_through_the_cli_resamples_and_says_so(base, tmp_path, capsys):
    """The uneven clip comes back on its median step over the real time axis,
    and -v logs the resampling with the file's name."""
    clip = tmp_path / "uneven.txt"
    clip.write_text(ODD_CLIPS["uneven_durations"](base))
    out = tmp_path / "out"
    import logging
    root = logging.getLogger()
    level = root.level
    try:
        code, err, exc = run_cli(["-v", "prepare", clip, out / "reference.h5", out / "diagnostics.csv"], capsys)
    finally:
        root.setLevel(level)
    assert code == 0 and exc is None
    ref, attrs = pipeline.load_reference(out / "reference.h5")
    durations = np.array([f[0] for f in json.loads(clip.read_text())["Frames"][:-1]])
    span = durations.sum()
    assert attrs["resampled"] and ref.frame_dt == pytest.approx(np.median(durations), rel=1e-12)
    assert ref.n_frames == int(np.floor(span / ref.frame_dt + 1e-6)) + 1


# ---------------------------------------------------------------- configs (mocap-refine run)

GOOD_CONFIG = """\
clips: [gen_a]
methods: [baseline]
baseline: {}
"""


def _config_case(text_or_bytes):
    return text_or_bytes


CONFIGS = {
    # id: (config text or bytes, substrings besides the config's path)
    "not_yaml": ("clips: [gen_a\nmethods: [baseline]\n", ["not valid YAML", "line"]),
    "yaml_list": ("- gen_a\n- baseline\n", ["expected a mapping"]),
    "binary_config": (bytes(range(200, 256)) * 3, ["not a text file"]),
    "unknown_method": (GOOD_CONFIG.replace("[baseline]", "[baseline, magic]"), ["methods/1", "'magic'", "not one of"]),
    "unknown_top_key": (GOOD_CONFIG + "methodz: [baseline]\n", ["methodz"]),
    "unknown_clip": (GOOD_CONFIG, ["'gen_zz'", "unknown clip", "gen_zz.txt"]),
    "misspelt_cycles_clip": (GOOD_CONFIG + "clip_options:\n  cycles: {gen_aa: 2}\n",
                             ["cycles", "'gen_aa'", "misspelt"]),
    "cycles_on_non_looping_clip": (GOOD_CONFIG + "clip_options:\n  cycles: {gen_a: 2}\n",
                                   ["cycles.gen_a", "Loop", "gen_a.txt"]),
    "gradient_iterations_0": ("clips: [gen_a]\nmethods: [gradient]\ngradient: {iterations: 0, init: null}\n",
                              ["gradient/iterations", "0", "minimum of 1"]),
    "gradient_commit_gt_window": ("clips: [gen_a]\nmethods: [gradient]\n"
                                  "gradient: {window_frames: 3, commit_frames: 5, init: null}\n",
                                  ["commit_frames", "window_frames"]),
    "invdyn_cutoff_above_nyquist": ("clips: [gen_a]\nmethods: [invdyn]\n"
                                    "invdyn: {smoothing: butterworth, smoothing_cutoff_hz: 20}\n",
                                    ["smoothing_cutoff_hz", "Nyquist", "gen_a.txt"]),
    "physics_hz_too_low": (GOOD_CONFIG + "physics: {target_hz: 5}\n", ["target_hz", "gen_a", "no whole physics step"]),
    "physics_hz_negative": (GOOD_CONFIG + "physics: {target_hz: -600}\n", ["target_hz"]),
    "physics_hz_string": (GOOD_CONFIG + "physics: {target_hz: fast}\n", ["target_hz", "fast"]),
    "feedback_alpha_negative": ("clips: [gen_a]\nmethods: [feedback]\nfeedback: {alpha: -1, init: null}\n",
                                ["feedback/alpha", "-1", "minimum"]),
    "feedback_unknown_setting": ("clips: [gen_a]\nmethods: [feedback]\nfeedback: {alhpa: 0.5, init: null}\n",
                                 ["alhpa"]),
    "mpc_samples_nan": ("clips: [gen_a]\nmethods: [mpc]\nmpc: {samples: .nan, init: null}\n", ["mpc", "samples"]),
    "init_self": ("clips: [gen_a]\nmethods: [feedback]\nfeedback: {init: feedback}\n",
                  ["feedback/init", "'feedback'", "not one of"]),
    "init_cycle": ("clips: [gen_a]\nmethods: [feedback]\nfeedback: {init: mpc}\nmpc: {init: feedback}\n",
                   ["feedback/init", "'mpc'", "not one of"]),
    "init_unknown": ("clips: [gen_a]\nmethods: [feedback]\nfeedback: {init: magic}\n", ["feedback/init", "'magic'"]),
    "absurd_clip_in_config": ("clips: [gen_bad]\nmethods: [baseline]\n", ["gen_bad.txt", "frame 6", "right_knee"]),
}


@pytest.fixture
def run_dir(base, tmp_path):
    """A work folder with motions/gen_a.txt and motions/gen_bad.txt (a knee at 1e9 rad)."""
    (tmp_path / "motions").mkdir()
    shutil.copyfile(base["clip"], tmp_path / "motions" / "gen_a.txt")
    (tmp_path / "motions" / "gen_bad.txt").write_text(_json_clip(_frames(base, _cell(6, 20, 1e9))))
    return tmp_path


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config(case, run_dir, capsys):
    """`mocap-refine run` with a bad config: every problem one line naming
    the config file, before any work (no results folder)."""
    text, needles = CONFIGS[case]
    cfg = run_dir / "bad.yaml"
    (cfg.write_bytes if isinstance(text, bytes) else cfg.write_text)(text)
    clip = {"absurd_clip_in_config": "gen_bad", "unknown_clip": "gen_zz"}.get(case, "gen_a")
    check_bad("config", case, ["run", clip, "--config", cfg, "--motions", run_dir / "motions",
                               "--results", run_dir / "results"],
              [str(cfg)] + needles, run_dir, capsys)
    assert not (run_dir / "results").exists()


def test_missing_config(run_dir, capsys):
    cfg = run_dir / "none.yaml"
    check_bad("config", "missing_config", ["run", "gen_a", "--config", cfg, "--motions", run_dir / "motions",
                                           "--results", run_dir / "results"],
              [str(cfg), "cannot read"], run_dir, capsys)


# ---------------------------------------------------------------- command-line misuse

def _cli_cases(b, t: Path):
    """id -> (argv, substrings the message must hold)."""
    ref, acts, clip = b["ref"], b["actions"], b["clip"]
    o = t / "o"
    afile = t / "a_file.txt"    # test_cli_misuse writes it
    return {
        "physics_hz_nan": (["prepare", clip, o / "r.h5", o / "d.csv", "--physics-hz", "nan"],
                           ["--physics-hz", "'nan'"]),
        "physics_hz_negative": (["prepare", clip, o / "r.h5", o / "d.csv", "--physics-hz", "-600"],
                                ["--physics-hz", "'-600'"]),
        "physics_hz_inf": (["prepare", clip, o / "r.h5", o / "d.csv", "--physics-hz", "inf"],
                           ["--physics-hz", "'inf'"]),
        "physics_hz_too_low": (["prepare", clip, o / "r.h5", o / "d.csv", "--physics-hz", "1"],
                               [str(clip), "no whole physics step"]),
        "cycles_zero": (["prepare", clip, o / "r.h5", o / "d.csv", "--cycles", "0"], ["--cycles", "'0'"]),
        "cycles_on_non_looping": (["prepare", clip, o / "r.h5", o / "d.csv", "--cycles", "2"],
                                  [str(clip), "Loop: wrap"]),
        "threads_negative": (["actions", ref, "baseline", o / "a.h5", "--threads", "-2"], ["--threads", "'-2'"]),
        "threads_text": (["actions", ref, "baseline", o / "a.h5", "--threads", "many"], ["--threads", "'many'"]),
        "params_not_json": (["actions", ref, "feedback", o / "a.h5", "--params", "{alpha: 1"],
                            ["--params", "not valid JSON"]),
        "params_not_object": (["actions", ref, "feedback", o / "a.h5", "--params", "[1]"],
                              ["--params", "JSON object"]),
        "params_unknown_setting": (["actions", ref, "feedback", o / "a.h5", "--params", '{"alhpa": 1}'],
                                   ["alhpa"]),
        "params_bad_value": (["actions", ref, "feedback", o / "a.h5", "--params", '{"alpha": -1}'],
                             ["alpha", "-1"]),
        "unknown_method": (["actions", ref, "magic", o / "a.h5"], ["'magic'"]),
        "init_without_file": (["actions", ref, "feedback", o / "a.h5", "--params", '{"init": "baseline"}'],
                              ["init", "baseline"]),
        "evaluate_inputs_swapped": (["evaluate", acts, ref, o / "r.h5", o / "r.csv"],
                                    [str(acts), "actions file, not a reference file"]),
        "evaluate_outputs_swapped": (["evaluate", ref, acts, o / "r.csv", o / "r.h5"],
                                     [str(o / "r.csv"), "must end in .h5"]),
        "output_under_a_file": (["prepare", clip, afile / "r.h5", o / "d.csv"], [str(afile), "is a file"]),
        "output_is_a_folder": (["prepare", clip, t / "dir.h5", o / "d.csv"], [str(t / "dir.h5"), "folder"]),
        "output_is_the_input": (["actions", ref, "baseline", ref], [str(ref), "input"]),
        "import_unknown_clip": (["import-clip", "walkk", o / "walkk.txt"], ["'walkk'", "not a DeepMimic clip"]),
        "init_from_another_clip": (["actions", ref, "feedback", o / "a.h5", "--params", '{"init": "baseline"}',
                                    "--init-h5", b["other_actions"]],
                                   [str(b["other_actions"]), "different reference", "run 'baseline'"]),
        "init_of_another_method": (["actions", ref, "feedback", o / "a.h5", "--params", '{"init": "invdyn"}',
                                    "--init-h5", acts], [str(acts), "'baseline'", "expected init method 'invdyn'"]),
        "gather_no_csv": (["gather", o / "c.csv", o / "missing.csv"], [str(o / "missing.csv"), "not found"]),
    }


CLI_CASES = list(_cli_cases({"ref": Path("r"), "actions": Path("a"), "clip": Path("c"), "other_actions": Path("o")},
                             Path("/nonexistent")))


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_misuse(case, base, tmp_path, capsys):
    (tmp_path / "a_file.txt").write_text("x")
    (tmp_path / "dir.h5").mkdir()
    argv, needles = _cli_cases(base, tmp_path)[case]
    before = files_under(base["dir"])
    check_bad("command line", case, argv, needles, tmp_path, capsys)
    assert files_under(base["dir"]) == before


# ---------------------------------------------------------------- damaged outputs

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _flip_chunk_byte(path: Path, dataset: str) -> None:
    """Flip one byte inside the stored chunk of `dataset` (data, not metadata)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _nan_copy(src: Path, dst: Path, dataset: str) -> None:
    """A hand-made copy of src with NaN in `dataset` (h5py writes it; write_h5 refuses to)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        arr = f[dataset][()]
        arr[:] = np.nan
        del f[dataset]
        f[dataset] = arr


def _drop(src: Path, dst: Path, dataset: str) -> None:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        del f[dataset]


def _damaged_cases(b, t: Path):
    """id -> (prepare(dst) making the damaged file, which argument it is, substrings).

    'ref' cases are given to `actions`, 'actions' cases to `evaluate`, 'csv' to `gather`."""
    ref, acts, csv = b["ref"], b["actions"], b["csv"]
    trunc = lambda src, keep=0.5: (lambda dst: (shutil.copyfile(src, dst), _truncate(dst, keep)))  # noqa: E731
    return {
        "reference_truncated": ("ref", trunc(ref), ["cannot be opened as HDF5", "snakemake --forcerun"]),
        "reference_truncated_to_1k": ("ref", trunc(ref, 0.02), ["cannot be opened as HDF5"]),
        "reference_empty": ("ref", lambda dst: dst.write_bytes(b""), ["cannot be opened as HDF5"]),
        "reference_garbage": ("ref", lambda dst: dst.write_bytes(os.urandom(4096)), ["cannot be opened as HDF5"]),
        "reference_text": ("ref", lambda dst: dst.write_text("qpos,qvel\n1,2\n"), ["cannot be opened as HDF5"]),
        "reference_bit_flip": ("ref", lambda dst: (shutil.copyfile(ref, dst), _flip_chunk_byte(dst, "qpos")),
                               ["/qpos", "damaged"]),
        "reference_nan": ("ref", lambda dst: _nan_copy(ref, dst, "qvel"), ["/qvel", "non-finite"]),
        "reference_lacks_qvel": ("ref", lambda dst: _drop(ref, dst, "qvel"), ["lacks dataset /qvel"]),
        "reference_is_folder": ("ref", lambda dst: dst.mkdir(), ["folder"]),
        "actions_truncated": ("actions", trunc(acts), ["cannot be opened as HDF5"]),
        "actions_nan": ("actions", lambda dst: _nan_copy(acts, dst, "actions"), ["/actions", "non-finite"]),
        "actions_bit_flip": ("actions", lambda dst: (shutil.copyfile(acts, dst), _flip_chunk_byte(dst, "actions")),
                             ["/actions", "damaged"]),
        "actions_of_another_clip": ("actions", lambda dst: shutil.copyfile(b["other_actions"], dst),
                                    ["different reference"]),
        "actions_out_of_range": ("actions", lambda dst: _scaled_actions(acts, dst), ["outside [-1, 1]"]),
        "actions_lack_dataset": ("actions", lambda dst: _drop(acts, dst, "actions"), ["/actions"]),
        "csv_garbage": ("csv", lambda dst: dst.write_bytes(os.urandom(2048)), ["metric table"]),
        "csv_truncated": ("csv", trunc(csv, 0.5), ["metric table"]),
        "csv_header_only": ("csv", lambda dst: dst.write_text(csv.read_text().splitlines()[0] + "\n"), ["no rows"]),
        "csv_nan": ("csv", lambda dst: dst.write_text(csv.read_text().replace(",ok,", ",ok,").replace(
            csv.read_text().splitlines()[1].split(",")[4], "nan", 1)), ["not a finite number"]),
        "csv_is_hdf5": ("csv", lambda dst: shutil.copyfile(ref, dst), ["metric table"]),
    }


def _scaled_actions(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        arr = f["actions"][()] * 0 + 3.0
        del f["actions"]
        f["actions"] = arr


DAMAGED = list(_damaged_cases({"ref": Path("r"), "actions": Path("a"), "csv": Path("c")}, Path("/x")))


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_output_is_refused(case, base, tmp_path, capsys):
    """A damaged file the workflow made, read by the next stage: one line
    naming the file, what is wrong and how to remake it; nothing written."""
    role, make, needles = _damaged_cases(base, tmp_path)[case]
    o = tmp_path / "o"
    if role == "ref":
        bad = tmp_path / "reference.h5"
        make(bad)
        argv = ["actions", bad, "baseline", o / "baseline.h5"]
    elif role == "actions":
        bad = tmp_path / "baseline.h5"
        make(bad)
        argv = ["evaluate", base["ref"], bad, o / "result.h5", o / "result.csv"]
    else:
        bad = tmp_path / "baseline.csv"
        make(bad)
        argv = ["gather", o / "comparison.csv", base["csv"], bad]
    check_bad("damaged output", case, argv, [str(bad)] + needles, tmp_path, capsys)


# ---------------------------------------------------------------- property-based

@HYPOTHESIS
@given(text=st.text(max_size=300))
def test_any_text_as_clip_is_refused_by_name_or_loads(tmp_path_factory, text):
    """Arbitrary text: ClipError naming the file, never another exception."""
    path = tmp_path_factory.mktemp("text") / "clip.txt"
    path.write_text(text, encoding="utf-8")
    try:
        clip = load_clip(path)
    except ClipError as e:
        ok = str(e).startswith(f"{path}") and "\n" not in str(e)
        prop("any text as a clip (load_clip)", "refused" if ok else "unclear", str(e))
        assert ok, str(e)
    else:
        ok = bool(np.isfinite(clip.frames).all())
        prop("any text as a clip (load_clip)", "valid" if ok else "accepted bad")
        assert ok


BAD_NUMBERS = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
                        st.floats(min_value=-1e308, max_value=1e308, allow_nan=False),
                        st.sampled_from([1e9, -1e9, 1e3, 0.0, -0.5, 50.0, 7.0]))


@HYPOTHESIS
@given(frame=st.integers(0, 9), column=st.integers(0, 43), value=BAD_NUMBERS)
def test_one_corrupted_cell_is_refused_or_gives_a_finite_reference(base, tmp_path_factory, frame, column, value):
    """Any single cell of a good clip set to any number: either refused with
    the file and the frame named, or prepared into a finite reference."""
    d = tmp_path_factory.mktemp("cell")
    frames = _frames(base)
    frames[frame][column] = value
    path = d / "clip.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": frames}, allow_nan=True))
    name = "one clip cell set to any number (prepare)"
    try:
        pipeline.prepare(path, d / "reference.h5", d / "diagnostics.csv")
    except ClipError as e:
        msg = str(e)
        ok = msg.startswith(f"{path}: frame {frame}") and "\n" not in msg
        left = (d / "reference.h5").exists() or list(d.glob(".*.tmp"))
        prop(name, "left output" if left else "refused" if ok else "unclear", msg)
        assert ok and not left, msg
    else:
        ref, _ = pipeline.load_reference(d / "reference.h5")
        ok = bool(np.isfinite(ref.qpos).all() and np.isfinite(ref.qvel).all())
        prop(name, "valid" if ok else "accepted bad")
        assert ok


@HYPOTHESIS_FILES
@given(cut=st.floats(0.0, 0.999), flip=st.one_of(st.none(), st.floats(0.0, 0.999)))
def test_truncated_or_flipped_h5_is_refused_or_identical(base, tmp_path_factory, cut, flip):
    """A reference file cut short anywhere, or with any one byte flipped:
    FileProblem naming it, or (a byte nobody reads) the same data."""
    src = base["ref"]
    data = bytearray(src.read_bytes())
    if flip is None:
        data = data[:int(len(data) * cut)]
    else:
        data[int(len(data) * flip)] ^= 0x5A
    path = tmp_path_factory.mktemp("h5") / "reference.h5"
    path.write_bytes(bytes(data))
    name = "reference.h5 cut short or one byte flipped (read_h5)"
    try:
        c = read_h5(path, "reference file", ("qpos", "qvel"), pipeline.REFERENCE_ATTRS)
    except FileProblem as e:
        ok = str(e).startswith(f"{path}: ") and "\n" not in str(e)
        prop(name, "refused" if ok else "unclear", str(e))
        assert ok, str(e)
    else:
        good = read_h5(src, "reference file", ("qpos", "qvel"), pipeline.REFERENCE_ATTRS)
        ok = all(np.array_equal(c[n], good[n]) for n in ("qpos", "qvel"))
        prop(name, "valid" if ok else "accepted bad")
        assert ok


@HYPOTHESIS_FILES
@given(cut=st.floats(0.0, 1.0))
def test_truncated_csv_is_refused_or_complete(base, tmp_path_factory, cut):
    """A metric table cut anywhere: FileProblem naming it, or (cut at its
    very end) the whole table. A cut inside a row is caught even where the
    row still parses (0.333333 cut to 0.33): the file lacks its final line
    break."""
    text = base["csv"].read_bytes()
    path = tmp_path_factory.mktemp("csv") / "baseline.csv"
    path.write_bytes(text[:int(len(text) * cut)])
    name = "metric CSV cut short anywhere (read_metrics)"
    try:
        table = pipeline.read_metrics(path)
    except FileProblem as e:
        ok = str(e).startswith(f"{path}: ") and "\n" not in str(e)
        prop(name, "refused" if ok else "unclear", str(e))
        assert ok, str(e)
    else:
        ok = table.equals(pipeline.read_metrics(base["csv"]))
        prop(name, "valid" if ok else "accepted bad")
        assert ok


@HYPOTHESIS
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                       st.text(max_size=8)))
def test_cli_numbers_accepted_only_when_valid(value, capsys):
    """--physics-hz and --threads: argparse accepts only finite positive
    numbers (whole numbers for threads); anything else is a one-line usage error."""
    from mocap_refine.cli import build_parser
    for flag, ok in (("--physics-hz", lambda v: np.isfinite(v) and v > 0),
                     ("--threads", lambda v: v >= 1 and float(v).is_integer())):
        argv = (["prepare", "c.txt", "r.h5", "d.csv", flag, str(value)] if flag == "--physics-hz"
                else ["actions", "r.h5", "baseline", "a.h5", flag, str(value)])
        name = f"any value of {flag}"
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            err = capsys.readouterr().err
            clear = e.code == 2 and f"argument {flag}" in err and "error:" in err
            prop(name, "refused" if clear else "unclear", err.strip().splitlines()[-1])
            assert clear, err
        else:
            got = args.physics_hz if flag == "--physics-hz" else args.threads
            prop(name, "valid" if ok(got) else "accepted bad")
            assert ok(got), (flag, value, got)


@HYPOTHESIS
@example(durations=[0.05, 0.05002, 0.04999, 0.05])   # within FRAME_DT_REL_TOL: used as it is
@given(durations=st.lists(st.floats(0.01, 0.1), min_size=3, max_size=25))
def test_any_uneven_durations_resample_on_the_real_time_axis(tmp_path_factory, durations):
    """Known answer: root x moving at 0.5 m/s and a knee angle linear in time,
    sampled at any uneven times, come back exactly (linear interpolation of a
    linear function) on the uniform grid of the median step."""
    from mocap_refine.reference import build_reference, uniform_frame_dt
    d = np.asarray(durations)
    t = np.concatenate([[0.0], np.cumsum(d)])
    frames = np.zeros((len(t), 44))
    frames[:-1, 0] = d
    frames[-1, 0] = d[-1]
    frames[:, 1] = 0.5 * t
    frames[:, 2] = 0.9
    frames[:, 20] = -1.0 + 0.2 * t
    for c in (4, 8, 12, 16, 21, 25, 30, 35, 39):
        frames[:, c] = 1.0
    path = tmp_path_factory.mktemp("uneven") / "clip.txt"
    write_clip(path, frames)
    clip = load_clip(path)
    ref, diag = build_reference(clip, ground_correction=False, physics_hz=1200.0)
    from mocap_refine.reference import FRAME_DT_REL_TOL
    dt, resampled = uniform_frame_dt(clip)
    grid = np.arange(ref.n_frames) * dt
    # Resampled: exact. Durations all within FRAME_DT_REL_TOL of their median
    # are used as they are (step = their mean): off by at most the summed
    # deviations, 2 x tol x median per frame.
    tol = 1e-9 if resampled else 2 * FRAME_DT_REL_TOL * np.median(d) * len(d) + 1e-9
    knee = layout(load_model()).qpos_adr[JOINTS.index("right_knee")]
    ok = (ref.frame_dt == dt and grid[-1] <= clip.frame_dt.sum() + 1e-9
          and np.abs(ref.qpos[:, 0] - 0.5 * grid).max() <= 0.5 * tol
          and np.abs(ref.qpos[:, knee] - (-1.0 + 0.2 * grid)).max() <= 0.2 * tol
          and diag["summary"]["resampled"] == resampled)
    prop("any uneven frame durations (known answer)", "valid" if ok else "wrong answer")
    np.testing.assert_allclose(ref.qpos[:, 0], 0.5 * grid, atol=0.5 * tol)
    np.testing.assert_allclose(ref.qpos[:, knee], -1.0 + 0.2 * grid, atol=0.2 * tol)
    assert ok


# ---------------------------------------------------------------- faults (subprocesses)

CLI = [PY, "-m", "mocap_refine.cli"]


def _env(**extra):
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


FEEDBACK = json.dumps({"iterations": 2, "windowed": False, "alpha": 0.5, "init": None})


def _start_stalled_job(base, out: Path, started: Path) -> subprocess.Popen:
    """`mocap-refine actions REF feedback OUT` in a subprocess whose method,
    once running, writes `started` and stalls (so a signal lands mid-job,
    after the reference is read and before anything is written)."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        import mocap_refine.methods.feedback as fb
        orig = fb.feedback
        def stalled(*a, **k):
            Path({str(started)!r}).write_text("running")
            time.sleep(120)
            return orig(*a, **k)
        fb.feedback = stalled
        from mocap_refine.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    return subprocess.Popen([PY, "-c", code, "actions", str(base["ref"]), "feedback", str(out),
                             "--params", FEEDBACK], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """In the job's process before it starts: SIGINT as a terminal's Ctrl-C
    delivers it. A test run in a background shell job inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _fault(case: str, ok: bool, message: str = "") -> None:
    record("fault", case, "survived" if ok else "failed", message, kind="fault")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM],
                         ids=["kill_9_mid_job", "sigint_mid_job", "sigterm_mid_job"])
def test_signal_mid_job_then_rerun(sig, base, tmp_path, capsys):
    """A job stopped mid-computation leaves no output and no temporary file;
    SIGINT/SIGTERM say so in one line (exit 130/143); the same command rerun
    completes with the actions an uninterrupted run gives, bit for bit."""
    out = tmp_path / "actions" / "feedback.h5"
    started = tmp_path / "started"
    proc = _start_stalled_job(base, out, started)
    try:
        assert _wait_for(started.exists), proc.communicate(timeout=5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    expected = {signal.SIGKILL: -9, signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    clean = not out.exists() and not _tmp_files(tmp_path)
    said = sig == signal.SIGKILL or (err.count("\n") == 1 and err.startswith("mocap-refine: ")
                                     and "rerun" in err)
    code, rerun_err, exc = run_cli(["actions", base["ref"], "feedback", out, "--params", FEEDBACK], capsys)
    rerun_ok = code == 0 and exc is None and out.is_file() and not _tmp_files(tmp_path)
    if rerun_ok:
        fresh = tmp_path / "uninterrupted.h5"
        pipeline.compute_actions(base["ref"], "feedback", json.loads(FEEDBACK), fresh)
        with h5py.File(out) as f, h5py.File(fresh) as g:
            rerun_ok = np.array_equal(f["actions"][()], g["actions"][()])
    name = {signal.SIGKILL: "kill_9_mid_job", signal.SIGINT: "sigint_mid_job",
            signal.SIGTERM: "sigterm_mid_job"}[sig]
    _fault(name, proc.returncode == expected and clean and said and rerun_ok, err)
    assert proc.returncode == expected, (proc.returncode, err)
    assert clean and said and rerun_ok, (err, _tmp_files(tmp_path), rerun_err)


def test_kill_9_mid_write_then_rerun(base, tmp_path, capsys):
    """kill -9 while an output is being written (after the temporary file is
    made, before it is renamed): the output is absent, and the next write of
    the same output removes the dead writer's temporary file."""
    out = tmp_path / "res" / "reference.h5"
    code = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        import mocap_refine.io as io
        real = io.os.replace
        def stalled(src, dst):
            Path({str(tmp_path / 'writing')!r}).write_text(src)
            time.sleep(600)
        io.os.replace = stalled
        from mocap_refine import pipeline
        pipeline.prepare({str(base['clip'])!r}, {str(out)!r}, {str(tmp_path / 'res' / 'd.csv')!r})
    """)
    proc = subprocess.Popen([PY, "-c", code], env=_env())
    try:
        assert _wait_for((tmp_path / "writing").exists)
        stale = Path((tmp_path / "writing").read_text())
        assert stale.exists() and stale.stat().st_size > 0
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    absent = not out.exists()
    code, err, exc = run_cli(["prepare", base["clip"], out, tmp_path / "res" / "d.csv"], capsys)
    same = code == 0 and exc is None and out.is_file() and np.array_equal(
        read_h5(out, "reference file", ("qpos",))["qpos"], read_h5(base["ref"], "reference file", ("qpos",))["qpos"])
    left = _tmp_files(tmp_path)
    _fault("kill_9_mid_write", absent and same and not left, err)
    assert absent and same, err
    assert not left, left


@functools.cache
def _private_mount_prefix() -> list[str] | None:
    """A command prefix that runs a shell in a private mount namespace where
    `mount` works (root: unshare --mount; otherwise a user namespace), or
    None when this machine has no such facility."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run(prefix + ["sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {d}"],
                               capture_output=True, text=True)
    return prefix if probe.returncode == 0 else None


def _prepare_in(prefix_script: str, base, out_dir: Path) -> subprocess.CompletedProcess:
    """`mocap-refine prepare` into out_dir after `prefix_script` (mounts) in a
    private mount namespace."""
    prefix = _private_mount_prefix()
    cmd = (f"{prefix_script} && exec {PY} -m mocap_refine.cli prepare {base['clip']} "
           f"{out_dir / 'reference.h5'} {out_dir / 'diagnostics.csv'}; ")
    return subprocess.run(prefix + ["sh", "-c", cmd], capture_output=True, text=True, env=_env())


def test_disk_full(base, tmp_path):
    """A results folder on a 16 KB file system: one line naming the file and
    saying the disk is full; nothing (not even a temporary file) left."""
    if _private_mount_prefix() is None:
        reason = ("no private mount namespace here (unshare missing or not permitted): "
                  "a full disk cannot be simulated without changing the machine's mounts")
        record("fault", "disk_full", "skipped", reason, kind="fault")
        pytest.skip(reason)
    out = tmp_path / "full"
    out.mkdir()
    # The file system exists only in the namespace: what is left on it is
    # listed there (stdout), after the command's own exit status.
    script = (f"mount -t tmpfs -o size=16k tmpfs {out} && dd if=/dev/zero of={out}/filler bs=1k count=12 "
              f"2>/dev/null && {{ {PY} -m mocap_refine.cli prepare {base['clip']} {out / 'reference.h5'} "
              f"{out / 'diagnostics.csv'}; echo \"status $?\"; ls -A {out}; }}")
    proc = subprocess.run(_private_mount_prefix() + ["sh", "-c", script], capture_output=True, text=True,
                          env=_env())
    msg = proc.stderr
    ok = (proc.stdout.split() == ["status", "2", "filler"] and str(out / "reference.h5") in msg
          and "disk is full" in msg and msg.count("\n") == 1)
    _fault("disk_full", ok, msg)
    assert ok, (proc.stdout, msg)


def test_read_only_results(base, tmp_path):
    """A read-only results folder (a read-only bind mount as root, chmod
    otherwise): one line naming the file and the reason; nothing written."""
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:
        if _private_mount_prefix() is None:
            reason = ("running as root without a private mount namespace: a read-only folder "
                      "cannot be made (root ignores permissions)")
            record("fault", "read_only_results", "skipped", reason, kind="fault")
            pytest.skip(reason)
        proc = _prepare_in(f"mount --bind {out} {out} && mount -o remount,ro,bind {out}", base, out)
        need = "read-only"
    else:
        out.chmod(0o555)
        try:
            proc = subprocess.run(CLI + ["prepare", str(base["clip"]), str(out / "reference.h5"),
                                         str(out / "diagnostics.csv")], capture_output=True, text=True, env=_env())
        finally:
            out.chmod(0o755)
        need = "permission"
    msg = proc.stderr
    ok = (proc.returncode == 2 and str(out / "reference.h5") in msg and need in msg
          and msg.count("\n") == 1 and not any(out.iterdir()))
    _fault("read_only_results", ok, msg)
    assert ok, (proc.returncode, msg, list(out.iterdir()))


def test_file_size_limit(base, tmp_path, capsys):
    """ulimit -f (RLIMIT_FSIZE) below the output's size: one line naming the
    file and the limit; nothing left; the rerun without the limit works."""
    import resource
    out = tmp_path / "lim"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = subprocess.run(CLI + ["prepare", str(base["clip"]), str(out / "reference.h5"),
                                 str(out / "diagnostics.csv")], capture_output=True, text=True, env=_env(),
                          preexec_fn=limit)
    msg = proc.stderr
    ok = (proc.returncode == 2 and str(out / "reference.h5") in msg and "size limit" in msg
          and msg.count("\n") == 1 and not (out.exists() and any(out.iterdir())))
    code, err, exc = run_cli(["prepare", base["clip"], out / "reference.h5", out / "diagnostics.csv"], capsys)
    ok = ok and code == 0 and exc is None and not _tmp_files(tmp_path)
    _fault("file_size_limit", ok, msg)
    assert ok, (proc.returncode, msg, err)


# ---------------------------------------------------------------- through Snakemake

TINY = "clips: [gen_a]\nmethods: [baseline]\nbaseline: {}\n"


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(PY).parent / "snakemake"
    if not exe.exists():
        pytest.skip("snakemake executable not found next to the interpreter")
    env = _env(PATH=str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([str(exe), "--configfile", "config/tiny.yaml", "--cores", "1", *args], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workflow_dir(base, tmp_path_factory):
    """The workflow in a temporary folder: config/tiny.yaml (baseline on
    gen_a), motions/gen_a.txt, gen_bad.txt (a knee at 1e9 rad) and
    gen_uneven.txt (frames lasting 1/30, 2/30 and 0.02 s)."""
    work = tmp_path_factory.mktemp("workflow")
    shutil.copy2(ROOT / "Snakefile", work / "Snakefile")
    shutil.copy2(ROOT / "environment.yml", work / "environment.yml")
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "config", work / "config")
    (work / "config" / "tiny.yaml").write_text(TINY)
    (work / "motions").mkdir()
    shutil.copyfile(base["clip"], work / "motions" / "gen_a.txt")
    (work / "motions" / "gen_bad.txt").write_text(_json_clip(_frames(base, _cell(6, 20, 1e9))))
    (work / "motions" / "gen_uneven.txt").write_text(ODD_CLIPS["uneven_durations"](base))
    return work


def _snakemake_outcome(proc, names) -> str:
    text = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return "accepted"
    if "Traceback" in text or "Exception in rule" in text and "mocap-refine: error:" not in text:
        return "crashed"
    return "clear" if all(n in text for n in names) else "unclear"


WORKFLOW_CONFIGS = {
    # id: (--config arguments, substrings of the message)
    "absurd_clip": (["clips=[gen_bad]"], ["motions/gen_bad.txt", "frame 6", "right_knee", "1e+09 rad"]),
    "gradient_iterations_0": (["methods=[gradient]", "gradient={iterations: 0}"],
                              ["gradient/iterations", "minimum of 1"]),
    "misspelt_cycles_clip": (["clip_options={cycles: {gen_aa: 2}}"], ["cycles", "'gen_aa'", "misspelt"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(WORKFLOW_CONFIGS))
def test_workflow_refuses_at_parse_time(case, workflow_dir):
    """`snakemake -n` stops before planning any job, naming the file or key."""
    args, names = WORKFLOW_CONFIGS[case]
    proc = _snakemake(workflow_dir, "-n", "--config", *args)
    outcome = _snakemake_outcome(proc, names)
    record("snakemake", case, outcome, (proc.stderr.strip().splitlines() or [""])[0])
    assert outcome == "clear", proc.stdout + proc.stderr
    assert "Job stats" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_workflow_uneven_clip_then_damaged_reference(workflow_dir):
    """An uneven clip runs through Snakemake (resampled); its reference then
    cut short: the next run stops with one line naming the file and saying
    how to remake it; doing as told remakes it, with the same data."""
    target = "results/gen_uneven/baseline.csv"
    proc = _snakemake(workflow_dir, "--config", "clips=[gen_uneven]", "--", target)
    ok = proc.returncode == 0
    ref = workflow_dir / "results" / "gen_uneven" / "reference.h5"
    if ok:
        _, attrs = pipeline.load_reference(ref)
        ok = bool(attrs["resampled"])
    record("snakemake", "uneven_durations", "worked" if ok else "refused", proc.stderr, kind="odd input")
    assert ok, proc.stdout + proc.stderr
    good = read_h5(ref, "reference file", ("qpos",))["qpos"]
    actions = workflow_dir / "results" / "gen_uneven" / "actions" / "baseline.h5"
    with h5py.File(actions) as f:
        expected = f["actions"][()]
    _truncate(ref)
    proc = _snakemake(workflow_dir, "--config", "clips=[gen_uneven]", "--", target)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mocap-refine: error:")]
    outcome = _snakemake_outcome(proc, ["results/gen_uneven/reference.h5", "cannot be opened as HDF5",
                                        "snakemake --forcerun results/gen_uneven/reference.h5"])
    if outcome == "clear" and len(lines) != 1:
        outcome = "unclear"
    if outcome == "clear" and actions.exists():  # the job's output from the damaged file
        outcome = "corrupt_kept"
    record("snakemake", "damaged_reference", outcome, lines[0] if lines else proc.stderr)
    assert outcome == "clear", proc.stdout + proc.stderr
    # What the message says to do remakes it (and what was made from it).
    proc = _snakemake(workflow_dir, "--config", "clips=[gen_uneven]", "--forcerun", str(ref.relative_to(workflow_dir)),
                      "--", target)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(actions) as f:
        assert np.array_equal(f["actions"][()], expected)
    assert np.array_equal(read_h5(ref, "reference file", ("qpos",))["qpos"], good)


def test_nonfinite_method_summary_is_left_out_not_fatal(base, tmp_path, monkeypatch, caplog):
    """A method whose summary numbers are Inf/NaN (a diverged replay) still
    gets its actions written: those attributes are left out, named in
    nonfinite_info and logged (it cost `mocap-refine run dance_a` its mpc
    step: 'attribute mpc_init_loss is inf')."""
    from mocap_refine.methods import MethodResult
    real = pipeline.get_method

    def with_inf(name):
        fn = real(name)

        def wrapped(*args, **kwargs):
            res = fn(*args, **kwargs)
            return MethodResult(res.actions, res.history, res.datasets,
                                dict(res.info, x_loss=float("inf"), x_err=float("nan"), x_ok=1.5))
        return wrapped

    monkeypatch.setattr(pipeline, "get_method", with_inf)
    out = tmp_path / "baseline.h5"
    import logging
    with caplog.at_level(logging.WARNING, logger="mocap_refine.pipeline"):
        pipeline.compute_actions(base["ref"], "baseline", {}, out)
    attrs = read_h5(out, "actions file", ("actions",)).attrs
    assert attrs["nonfinite_info"] == "x_err, x_loss" and attrs["x_ok"] == 1.5
    assert "x_loss" not in attrs and "x_err" not in attrs
    assert any("x_err, x_loss" in r.getMessage() and str(out) in r.getMessage() for r in caplog.records)


# Big enough that the job still computes a second after its log appears on
# an idle machine (16 samples x 3 iterations finished first in CI).
MPC_BUDGET = {"init": None, "samples": 64, "iterations": 8}
MPC_SMALL = "mpc={init: null, samples: 64, iterations: 8}"


@pytest.mark.slow
def test_kill_9_snakemake_mid_job_then_rerun(workflow_dir, base, capsys):
    """kill -9 of Snakemake and its job while the job computes: no output,
    no temporary file; the rerun (after `snakemake --unlock`, which Snakemake
    asks for in one line when its lock was left) makes the same actions as
    an uninterrupted run."""
    exe = Path(PY).parent / "snakemake"
    target = "results/gen_a/actions/mpc.h5"
    args = [str(exe), "--configfile", "config/tiny.yaml", "--cores", "1", "--config", "methods=[mpc]",
            MPC_SMALL, "--", target]
    env = _env(PATH=str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", ""))
    log = workflow_dir / "logs" / "actions" / "gen_a" / "mpc.log"
    proc = subprocess.Popen(args, cwd=workflow_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        # The job's log is created when its script starts (logs.log_to).
        assert _wait_for(lambda: log.exists() or proc.poll() is not None, timeout=300)
        time.sleep(1.0)
        running = proc.poll() is None and not (workflow_dir / target).exists()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = workflow_dir / target
    clean = running and not out.exists() and not _tmp_files(workflow_dir / "results")
    rerun = subprocess.run(args, cwd=workflow_dir, env=env, capture_output=True, text=True)
    message = ""
    if rerun.returncode != 0 and "--unlock" in rerun.stdout + rerun.stderr:
        message = next(ln for ln in (rerun.stdout + rerun.stderr).splitlines() if "unlock" in ln)
        subprocess.run(args[:-2] + ["--unlock"], cwd=workflow_dir, env=env, capture_output=True, text=True)
        rerun = subprocess.run(args, cwd=workflow_dir, env=env, capture_output=True, text=True)
    same = rerun.returncode == 0 and out.is_file()
    if same:
        fresh = workflow_dir / "uninterrupted_mpc.h5"
        code, err, exc = run_cli(["actions", workflow_dir / "results" / "gen_a" / "reference.h5", "mpc", fresh,
                                  "--params", json.dumps(MPC_BUDGET)], capsys)
        with h5py.File(out) as f, h5py.File(fresh) as g:
            same = code == 0 and np.array_equal(f["actions"][()], g["actions"][()])
    _fault("kill_9_snakemake_mid_job", clean and same, message or "(rerun needed no unlock)")
    assert running and clean, "the kill did not land while the job ran, or it left files"
    assert same, rerun.stdout + rerun.stderr
