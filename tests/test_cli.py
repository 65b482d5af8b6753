"""The command line mirrors the workflow's stages."""

import shutil
from pathlib import Path

import h5py
import pandas as pd
import pytest

from mocap_refine.cli import main
from mocap_refine.generate import write_generated_clip
from mocap_refine.metrics import METRIC_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def test_stages_by_hand(tmp_path):
    clip = tmp_path / "gen.txt"
    write_generated_clip(clip, seconds=0.3)
    ref, diag = tmp_path / "r" / "reference.h5", tmp_path / "r" / "diagnostics.csv"
    assert main(["prepare", str(clip), str(ref), str(diag)]) == 0
    acts = tmp_path / "r" / "actions" / "baseline.h5"
    assert main(["actions", str(ref), "baseline", str(acts)]) == 0
    out_h5, out_csv = tmp_path / "r" / "baseline.h5", tmp_path / "r" / "baseline.csv"
    assert main(["evaluate", str(ref), str(acts), str(out_h5), str(out_csv)]) == 0
    assert main(["gather", str(tmp_path / "r" / "comparison.csv"), str(out_csv)]) == 0
    table = pd.read_csv(tmp_path / "r" / "comparison.csv")
    assert list(table.columns) == list(METRIC_COLUMNS) and table.method.tolist() == ["baseline"]


def test_run_one_clip_with_the_workflow_config(tmp_path, monkeypatch):
    """`run` writes the workflow's files for one clip, with the config's
    parameters (here the CI test config's methods, in its order)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "motions").mkdir()
    write_generated_clip(tmp_path / "motions" / "gen_a.txt", seconds=0.3)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "gen_a", "--config", "config/test_config.yaml", "--threads", "1"]) == 0
    table = pd.read_csv("results/gen_a/comparison.csv")
    import yaml
    methods = yaml.safe_load(Path("config/test_config.yaml").read_text())["methods"]
    assert table.method.tolist() == methods
    for m in table.method:
        assert Path(f"results/gen_a/{m}.h5").is_file()


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"Loop": "none", "Frames": [[1, 2, 3]]}')
    code = main(["prepare", str(bad), str(tmp_path / "ref.h5"), str(tmp_path / "d.csv")])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "at least 2 frames" in err
    assert not (tmp_path / "ref.h5").exists()
    code = main(["actions", str(tmp_path / "ref.h5"), "baseline", str(tmp_path / "a.h5"), "--params", "[1]"])
    assert code == 2 and "JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["actions"])


MPC_FROM_INVDYN = """\
clips: [gen_a]
methods: [mpc, invdyn]
invdyn:
  smoothing: none
  frame_solve: false
mpc:
  horizon_frames: 2
  samples: 4
  iterations: 1
  init: invdyn
"""


def _stale_invdyn(tmp_path) -> Path:
    """invdyn actions of another, longer clip: what an earlier run leaves behind."""
    from mocap_refine import pipeline
    other = tmp_path / "other"
    write_generated_clip(other / "other.txt", seconds=0.5, seed=5)
    pipeline.prepare(other / "other.txt", other / "reference.h5", other / "diagnostics.csv")
    out = other / "invdyn.h5"
    pipeline.compute_actions(other / "reference.h5", "invdyn", {"smoothing": "none", "frame_solve": False}, out)
    return out


def test_run_computes_init_methods_first(tmp_path, monkeypatch):
    """methods [mpc, invdyn] with mpc.init invdyn: `run` computes invdyn, then
    mpc from it, even with a stale invdyn.h5 of another clip in results/."""
    from mocap_refine import pipeline
    stale = _stale_invdyn(tmp_path)
    work = tmp_path / "work"
    (work / "motions").mkdir(parents=True)
    write_generated_clip(work / "motions" / "gen_a.txt", seconds=0.3)
    (work / "mini.yaml").write_text(MPC_FROM_INVDYN)
    actions = work / "results" / "gen_a" / "actions"
    actions.mkdir(parents=True)
    shutil.copyfile(stale, actions / "invdyn.h5")
    order = []
    compute = pipeline.compute_actions

    def recording(reference_h5, method, *args, **kwargs):
        order.append(method)
        return compute(reference_h5, method, *args, **kwargs)

    monkeypatch.setattr(pipeline, "compute_actions", recording)
    monkeypatch.chdir(work)
    assert main(["run", "gen_a", "--config", "mini.yaml", "--threads", "1"]) == 0
    assert order == ["invdyn", "mpc"]
    table = pd.read_csv("results/gen_a/comparison.csv")
    assert table.method.tolist() == ["mpc", "invdyn"]
    sha = pipeline._sha256("results/gen_a/reference.h5")
    for m in ("invdyn", "mpc"):
        with h5py.File(f"results/gen_a/actions/{m}.h5", "r") as f:
            assert f.attrs["reference_sha256"] == sha


def test_stale_init_file_is_one_clear_line(tmp_path, capsys):
    """`actions` warm-started from another clip's file: exit 2, one line
    naming the file, nothing written."""
    stale = _stale_invdyn(tmp_path)
    clip = tmp_path / "gen.txt"
    write_generated_clip(clip, seconds=0.3)
    ref = tmp_path / "r" / "reference.h5"
    assert main(["prepare", str(clip), str(ref), str(tmp_path / "r" / "diagnostics.csv")]) == 0
    out = tmp_path / "r" / "actions" / "mpc.h5"
    code = main(["actions", str(ref), "mpc", str(out), "--params", '{"init": "invdyn"}',
                 "--init-h5", str(stale)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("mocap-refine: error: init actions file ")
    assert f"{stale} was computed from a different reference than {ref}" in err
    assert "run 'invdyn'" in err
    assert not out.exists()
